package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/troupedb/troupe/chaos"
	"github.com/troupedb/troupe/e2e/e2etest"
)

// chaosCluster drives an e2etest.Cluster for the chaos harness: kill,
// restart, SIGTERM, SIGSTOP/SIGCONT.
type chaosCluster struct{ *e2etest.Cluster }

func (c chaosCluster) Leader(ctx context.Context) (int, error) { return c.Cluster.WaitLeader(ctx) }

// troupeChaosCluster adds restarts with fault points armed, which only
// troupe has.
type troupeChaosCluster struct{ chaosCluster }

func (c troupeChaosCluster) RestartWithFailpoints(i int, failpoints string) error {
	if c.Alive(i) {
		if err := c.Kill(i); err != nil {
			return err
		}
	}
	return c.RestartEnv(i, []string{"TROUPE_FAILPOINTS=" + failpoints})
}

// TestChaosProcesses runs one seeded chaos schedule (-chaos.seed to replay,
// -chaos.duration for its length) against a 3-member cluster: concurrent
// gets, puts and CAS while members are killed, stopped and frozen (and, for
// troupe, restarted with fault points armed), then checks linearizability,
// that no acknowledged write was lost and that members converged.
func TestChaosProcesses(t *testing.T) {
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{SnapshotCount: 200})
	var cl chaos.Cluster = chaosCluster{c}
	if c.Kind() == e2etest.Troupe {
		cl = troupeChaosCluster{chaosCluster{c}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), chaos.FlagDuration()+3*time.Minute)
	defer cancel()
	r := chaos.Run(ctx, cl, chaos.Config{Logf: t.Logf})
	if r.Failed() {
		t.Fatalf("chaos schedule failed; replay with -chaos.seed=%d\n%s", r.Seed, r)
	}
	if r.Ops["put ok"] == 0 || r.Ops["get ok"] == 0 || r.Ops["cas ok"] == 0 {
		t.Fatalf("the workload did not get every kind of operation through: %v", r.Ops)
	}
}

// TestChaosProcessesTLS is TestChaosProcesses for half as long with client
// and peer mTLS on every member (--client-cert-auth,
// --peer-client-cert-auth): the TLS connections that kills, restarts and
// freezes break must come back without losing or reordering anything.
func TestChaosProcessesTLS(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, dir, "ca")
	_, cli, clientTLS := p.clientMTLS()
	peer := p.localhost("peer", "member")
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{SnapshotCount: 200, ClientTLS: clientTLS, PeerTLS: serverTLS(peer, p, true)})
	var cl chaos.Cluster = chaosCluster{c}
	if c.Kind() == e2etest.Troupe {
		cl = troupeChaosCluster{chaosCluster{c}}
	}
	d := chaos.FlagDuration() / 2
	ctx, cancel := context.WithTimeout(context.Background(), d+3*time.Minute)
	defer cancel()
	r := chaos.Run(ctx, cl, chaos.Config{Duration: d, TLS: p.tlsConfig(cli), Logf: t.Logf})
	if r.Failed() {
		t.Fatalf("chaos schedule over TLS failed; replay with -chaos.seed=%d\n%s", r.Seed, r)
	}
	if r.Ops["put ok"] == 0 || r.Ops["get ok"] == 0 || r.Ops["cas ok"] == 0 {
		t.Fatalf("the workload did not get every kind of operation through: %v", r.Ops)
	}
}
