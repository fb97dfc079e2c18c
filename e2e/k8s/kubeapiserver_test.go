//go:build k8s

package k8s

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestKubeAPIServer runs the scenario against one member, then against
// three, and logs a summary of each for the comparison with etcd.
func TestKubeAPIServer(t *testing.T) {
	var summaries []string
	for _, size := range []int{1, 3} {
		t.Run(fmt.Sprintf("members=%d", size), func(t *testing.T) {
			summaries = append(summaries, runScenario(t, size, nil))
		})
	}
	t.Log("summary\n" + strings.Join(summaries, "\n"))
}

// TestKubeAPIServerMTLS runs the scenario against three members with
// client and peer mTLS (--client-cert-auth, --peer-client-cert-auth, https
// URLs), the apiserver reaching them with --etcd-cafile, --etcd-certfile
// and --etcd-keyfile, as kubeadm sets it up.
func TestKubeAPIServerMTLS(t *testing.T) {
	t.Log("summary\n" + runScenario(t, 3, newMTLS(t)))
}

// run is the state one scenario's steps share.
type run struct {
	api *apiServer
	st  *store
	ns  string

	created []int64  // resourceVersions of cm-00..cm-24, as created
	history []change // every change to configmaps in ns, in order

	// outage is the part of the apiserver log written while the restart
	// step had a member down: errors there are expected.
	outageFrom, outageTo int
}

// change is one write to a configmap as a watch must report it.
type change struct {
	typ  string // ADDED, MODIFIED, DELETED
	name string
	rv   int64
}

type step struct {
	name string
	fn   func(*testing.T)
}

// runScenario runs every step against a store of size members, over mTLS
// when m is not nil.
func runScenario(t *testing.T, size int, m *mtls) string {
	st := startStore(t, size, m)
	r := &run{st: st, ns: "e2e", api: startAPIServer(t, st.endpoints, m.apiserverFlags()...)}
	steps := []step{
		{"readyz-livez", r.stepReadiness},
		{"create", r.stepCreate},
		{"list-pagination-exact-rv", r.stepList},
		{"update-conflict", r.stepUpdateConflict},
		{"watch-from-rv", r.stepWatchFromRV},
		{"watch-without-rv", r.stepWatchWithoutRV},
		{"crd", r.stepCRD},
		{"lease-backed-objects", r.stepLeases},
		{"compaction", r.stepCompaction},
		{"member-restart", r.stepRestart},
		{"log-free-of-storage-timeouts", r.stepLogs},
	}
	var failed []string
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			failed = append(failed, s.name)
		}
	}
	return r.summary(t, len(steps), failed)
}

// summary is the block the lead compares between stores: steps passed,
// "Too large resource version" counts, and the p50 of the apiserver's
// storage requests per operation.
func (r *run) summary(t *testing.T, steps int, failed []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "kube-apiserver on %s: steps passed %d/%d", r.st, steps-len(failed), steps)
	if len(failed) > 0 {
		fmt.Fprintf(&b, " (failed: %s)", strings.Join(failed, ", "))
	}
	log := r.api.log()
	fmt.Fprintf(&b, "\n  %q in the apiserver log: %d; in answers the harness got: %d",
		tooLargeRV, strings.Count(log, tooLargeRV), r.api.tooLarge.Load())
	fmt.Fprintf(&b, "\n  storage timeout lines in the log: %d (outside the restart outage: %d)",
		len(timeoutLines(log)), len(timeoutLines(r.outsideOutage(log))))
	code, body, err := r.api.try(http.MethodGet, "/metrics", nil)
	if err != nil || code != http.StatusOK {
		fmt.Fprintf(&b, "\n  /metrics: %d %v", code, err)
		return b.String()
	}
	fams, err := parseMetrics(strings.NewReader(string(body)))
	if err != nil {
		t.Errorf("parse /metrics: %v", err)
		return b.String()
	}
	fmt.Fprintf(&b, "\n  consistent reads served from the watch cache: %.0f, fallen back to etcd: %.0f",
		counterSum(fams, "apiserver_watch_cache_consistent_read_total", map[string]string{"success": "true", "fallback": "false"}),
		counterSum(fams, "apiserver_watch_cache_consistent_read_total", map[string]string{"fallback": "true"}))
	fmt.Fprintf(&b, "\n  etcd_request_duration_seconds p50 per operation:\n%s", formatLatencies(storageLatencies(fams)))
	return b.String()
}

// timeoutLines returns the log lines that report a storage timeout.
func timeoutLines(log string) []string {
	var out []string
	for line := range strings.Lines(log) {
		for _, pat := range []string{tooLargeRV, "request timed out", "context deadline exceeded", "DeadlineExceeded"} {
			if strings.Contains(line, pat) {
				out = append(out, strings.TrimSpace(line))
				break
			}
		}
	}
	return out
}

func (r *run) outsideOutage(log string) string {
	if r.outageTo <= r.outageFrom || r.outageTo > len(log) {
		return log
	}
	return log[:r.outageFrom] + log[r.outageTo:]
}

func (r *run) stepLogs(t *testing.T) {
	log := r.api.log()
	if n := strings.Count(log, tooLargeRV); n > 0 {
		t.Errorf("the apiserver log has %d %q errors", n, tooLargeRV)
	}
	if lines := timeoutLines(r.outsideOutage(log)); len(lines) > 0 {
		const show = 10
		t.Errorf("the apiserver log has %d storage timeout lines outside the restart outage, first ones:\n%s",
			len(lines), strings.Join(lines[:min(show, len(lines))], "\n"))
	}
}

// storeCtx bounds one request to the store.
func storeCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// requireModRevision checks that key's ModRevision in the store is rv: the
// apiserver's resourceVersion is etcd's revision, exactly.
func (r *run) requireModRevision(t *testing.T, key string, rv int64) *clientv3.GetResponse {
	t.Helper()
	resp := r.storeGet(t, key)
	if got := resp.Kvs[0].ModRevision; got != rv {
		t.Fatalf("key %s: mod revision %d in the store, resourceVersion %d from the apiserver", key, got, rv)
	}
	return resp
}

// requireCreateRevision is requireModRevision for an object that others
// may have changed since: its create revision is the create's
// resourceVersion.
func (r *run) requireCreateRevision(t *testing.T, key string, rv int64) {
	t.Helper()
	if got := r.storeGet(t, key).Kvs[0].CreateRevision; got != rv {
		t.Fatalf("key %s: create revision %d in the store, resourceVersion %d from the apiserver's create", key, got, rv)
	}
}

// storeGet reads key from the store, which must hold it.
func (r *run) storeGet(t *testing.T, key string) *clientv3.GetResponse {
	t.Helper()
	resp, err := r.st.cli.Get(storeCtx(t), key)
	if err != nil {
		t.Fatalf("get %s from the store: %v", key, err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("key %s is not in the store", key)
	}
	return resp
}
