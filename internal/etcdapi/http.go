package etcdapi

import (
	"encoding/json"
	"net/http"

	"github.com/troupedb/troupe/internal/etcdversion"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/metrics"
)

// versions is etcd 3.6's /version answer, fields in etcd's order.
type versions struct {
	Server  string `json:"etcdserver"`
	Cluster string `json:"etcdcluster"`
	Storage string `json:"storage"`
}

// newClientHTTPHandler serves etcd 3.6's HTTP endpoints of a client URL:
// /health, /livez, /readyz (health.go), /version, /metrics, /debug/pprof/
// with --enable-pprof, and gateway, the JSON gateway, at /v3/ and /v3beta/
// unless it is nil (--enable-grpc-gateway=false).
func newClientHTTPHandler(state *memberview.View, kv *KV, gateway http.Handler, opts HTTPOptions) http.Handler {
	mux := http.NewServeMux()
	if opts.EnablePprof {
		registerPprof(mux)
	}
	if gateway != nil {
		mux.Handle("/v3/", gateway)
		mux.Handle("/v3beta/", gateway)
	}
	mux.Handle("/version", getOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		b, _ := json.Marshal(versions{Server: etcdversion.Server, Cluster: etcdversion.Cluster, Storage: etcdversion.Storage})
		_, _ = w.Write(b)
	})))
	mux.Handle("/metrics", metrics.Handler(kv.cfg.Raft))
	handleHealth(mux, newProber(state, kv))
	return opts.access(mux)
}

// newMetricsHTTPHandler serves a --listen-metrics-urls address: /metrics,
// /health, /livez and /readyz, as etcd 3.6 does there.
func newMetricsHTTPHandler(state *memberview.View, kv *KV) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(kv.cfg.Raft))
	handleHealth(mux, newProber(state, kv))
	return mux
}

func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}
