package etcdapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/metrics"
)

// clusterVersion is what etcd 3.4.23 reports as etcdcluster in /version.
const clusterVersion = "3.4.0"

// healthTimeout bounds the linearizable read /health makes, as etcd's.
const healthTimeout = time.Second

// versions is etcd's /version answer, fields in etcd's order.
type versions struct {
	Server  string `json:"etcdserver"`
	Cluster string `json:"etcdcluster"`
}

// newClientHTTPHandler serves etcd 3.4's HTTP endpoints of a client URL:
// /health, /version, /metrics, and /readyz and /livez as etcd 3.5 serves
// them (3.4 has neither), and gateway, the JSON gateway, at /v3/ and
// /v3beta/ unless it is nil.
func newClientHTTPHandler(state *memberview.View, kv *KV, gateway http.Handler, opts HTTPOptions) http.Handler {
	mux := http.NewServeMux()
	if opts.EnablePprof {
		registerPprof(mux)
	}
	if gateway != nil { // nil with --enable-grpc-gateway=false
		mux.Handle("/v3/", gateway)
		mux.Handle("/v3beta/", gateway)
	}
	mux.Handle("/health", healthHandler(state, kv))
	mux.Handle("/version", getOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		b, _ := json.Marshal(versions{Server: ServerVersion, Cluster: clusterVersion})
		_, _ = w.Write(b)
	})))
	mux.Handle("/metrics", metrics.Handler(kv.cfg.Raft))
	mux.Handle("/readyz", probeHandler(state, kv, "readyz"))
	mux.Handle("/livez", probeHandler(state, kv, "livez"))
	return opts.access(mux)
}

// newMetricsHTTPHandler serves a --listen-metrics-urls address: /metrics
// and /health, as etcd does there.
func newMetricsHTTPHandler(state *memberview.View, kv *KV) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/health", healthHandler(state, kv))
	mux.Handle("/metrics", metrics.Handler(kv.cfg.Raft))
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

// healthy is etcd 3.4's health check: no alarm is active, a leader is
// known and a linearizable read (through raft) succeeds within a second.
func healthy(ctx context.Context, state *memberview.View, kv *KV) bool {
	if state.Alarms().Len() > 0 || state.Leader() == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	return kv.linearizableRead(ctx) == nil
}

// healthHandler answers {"health":"true"} with 200, or {"health":"false"}
// with 503, byte for byte as etcd 3.4 (which sends the failure with
// http.Error: a newline after it, and no reason; 3.5 added "reason").
func healthHandler(state *memberview.View, kv *KV) http.Handler {
	return getOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy(r.Context(), state, kv) {
			http.Error(w, `{"health":"false"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"health":"true"}`))
	}))
}

// probeHandler answers as etcd 3.5's /readyz and /livez: "ok" with 200, or
// "<name> check failed" with 503.
func probeHandler(state *memberview.View, kv *KV, name string) http.Handler {
	return getOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if name == "readyz" && !healthy(r.Context(), state, kv) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(name + " check failed\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
}
