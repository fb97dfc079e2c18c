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
// /health, /livez, /readyz (health.go), /version, /metrics, and gateway,
// the JSON gateway, at /v3/ and /v3beta/.
func newClientHTTPHandler(state *memberview.View, kv *KV, gateway http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v3/", gateway)
	mux.Handle("/v3beta/", gateway)
	mux.Handle("/version", getOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		b, _ := json.Marshal(versions{Server: etcdversion.Server, Cluster: etcdversion.Cluster, Storage: etcdversion.Storage})
		_, _ = w.Write(b)
	})))
	mux.Handle("/metrics", metrics.Handler(kv.cfg.Raft))
	handleHealth(mux, newProber(state, kv))
	return cors(mux)
}

// newMetricsHTTPHandler serves a --listen-metrics-urls address: /metrics,
// /health, /livez and /readyz, as etcd 3.6 does there.
func newMetricsHTTPHandler(state *memberview.View, kv *KV) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(kv.cfg.Raft))
	handleHealth(mux, newProber(state, kv))
	return mux
}

// cors sets the headers etcd's client HTTP handler sets on every answer.
func cors(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Headers", "accept, content-type, authorization")
		w.Header().Set("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		h.ServeHTTP(w, r)
	})
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
