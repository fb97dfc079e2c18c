package etcdapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/status"

	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/metrics"
)

// healthStatus is etcd 3.6's /health answer, fields in etcd's order.
type healthStatus struct {
	Health string `json:"health"`
	Reason string `json:"reason"`
}

// prober runs etcd 3.6's health checks of one member.
type prober struct {
	state *memberview.View
	kv    *KV
	// requestTimeout bounds /health's read, as etcd's request timeout
	// (5 s plus two election timeouts) does.
	requestTimeout time.Duration
}

func newProber(state *memberview.View, kv *KV) *prober {
	p := &prober{state: state, kv: kv, requestTimeout: 7 * time.Second}
	if kv != nil && kv.cfg.Raft != nil {
		p.requestTimeout = kv.cfg.Raft.RequestTimeout()
	}
	return p
}

// check is one named check of /livez or /readyz; a nil error passes.
type check struct {
	name string
	run  func(context.Context) error
}

// handleHealth registers /health, /livez and /readyz with a path per
// check (/readyz/non_learner), as etcd 3.6's etcdhttp.HandleHealth.
func handleHealth(mux *http.ServeMux, p *prober) {
	mux.Handle("/health", getOnly(http.HandlerFunc(p.serveHealth)))
	// etcd lists its checks in Go map order, a new one each request;
	// troupe keeps the order they are registered in etcd's source.
	livez := []check{{"serializable_read", p.readCheck(true)}}
	readyz := []check{
		{"data_corruption", p.corruptCheck},
		{"serializable_read", p.readCheck(true)},
		{"linearizable_read", p.readCheck(false)},
		{"non_learner", p.learnerCheck},
	}
	for kind, checks := range map[string][]check{"livez": livez, "readyz": readyz} {
		mux.Handle("/"+kind, getOnly(checksHandler(kind, checks, true)))
		for _, c := range checks {
			mux.Handle("/"+kind+"/"+c.name, getOnly(checksHandler(kind, []check{c}, false)))
		}
	}
}

// serveHealth answers 200 {"health":"true","reason":""}, or 503 with
// health "false" and the reason of the first failed step: an alarm not
// excluded by ?exclude=NOSPACE (or CORRUPT), no leader (unless
// ?serializable=true), then a read of one key (serializable with
// ?serializable=true) within the request timeout.
func (p *prober) serveHealth(w http.ResponseWriter, r *http.Request) {
	h := p.health(r.Context(), excluded(r), r.URL.Query().Get("serializable") == "true")
	metrics.CountHealth(h.Health == "true")
	b, _ := json.Marshal(h)
	if h.Health != "true" {
		http.Error(w, string(b), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func (p *prober) health(ctx context.Context, exclude map[string]bool, serializable bool) healthStatus {
	for _, a := range p.state.Alarms().Get(pb.AlarmType_NONE) {
		if exclude[a.Type.String()] {
			continue
		}
		switch a.Type {
		case pb.AlarmType_NOSPACE:
			return healthStatus{Health: "false", Reason: "ALARM NOSPACE"}
		case pb.AlarmType_CORRUPT:
			return healthStatus{Health: "false", Reason: "ALARM CORRUPT"}
		default:
			return healthStatus{Health: "false", Reason: "ALARM UNKNOWN"}
		}
	}
	if !serializable && p.state.Leader() == 0 {
		return healthStatus{Health: "false", Reason: "RAFT NO LEADER"}
	}
	ctx, cancel := context.WithTimeout(ctx, p.requestTimeout)
	defer cancel()
	if err := p.read(ctx, serializable); err != nil {
		return healthStatus{Health: "false", Reason: "RANGE ERROR:" + err.Error()}
	}
	return healthStatus{Health: "true"}
}

// checksHandler runs checks (less the ones ?exclude= names, if
// excludable) and answers as etcd 3.6: 200 "ok", after a line per check
// with ?verbose; 503 with a line per check, always.
func checksHandler(kind string, checks []check, excludable bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var skip map[string]bool
		if excludable {
			skip = excluded(r)
		}
		var report strings.Builder
		failed := false
		for _, c := range checks {
			if skip[c.name] {
				continue
			}
			err := c.run(r.Context())
			metrics.CountCheck(kind, c.name, err == nil)
			if err != nil {
				failed = true
				fmt.Fprintf(&report, "[-]%s failed: %v\n", c.name, err)
			} else {
				fmt.Fprintf(&report, "[+]%s ok\n", c.name)
			}
		}
		if failed {
			http.Error(w, report.String(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if _, ok := r.URL.Query()["verbose"]; ok {
			_, _ = w.Write([]byte(report.String()))
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}

// excluded is the set of names in the request's exclude parameters.
func excluded(r *http.Request) map[string]bool {
	set := map[string]bool{}
	for _, v := range r.URL.Query()["exclude"] {
		if v != "" {
			set[v] = true
		}
	}
	return set
}

func (p *prober) readCheck(serializable bool) func(context.Context) error {
	return func(ctx context.Context) error { return p.read(ctx, serializable) }
}

// read reads one key as etcd's checks do, returning the error with
// etcd's text (its message, not gRPC's "rpc error: ..." wrapping).
func (p *prober) read(ctx context.Context, serializable bool) error {
	if !serializable {
		if err := p.kv.linearizableRead(ctx); err != nil {
			return errors.New(status.Convert(err).Message())
		}
	}
	st := p.kv.cfg.Raft.Store()
	if st == nil {
		return errors.New(status.Convert(errCoreDown).Message())
	}
	if _, err := st.Range(&pb.RangeRequest{Key: []byte{0}, KeysOnly: true, Limit: 1}); err != nil {
		return errors.New(status.Convert(toGRPC(err)).Message())
	}
	return nil
}

func (p *prober) corruptCheck(context.Context) error {
	if p.state.Alarms().Has(pb.AlarmType_CORRUPT) {
		return fmt.Errorf("alarm activated: %s", pb.AlarmType_CORRUPT)
	}
	return nil
}

func (p *prober) learnerCheck(context.Context) error {
	if p.state.IsLearner() {
		return errors.New("not supported for learner")
	}
	return nil
}
