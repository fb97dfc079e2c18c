package e2e

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/troupedb/troupe/e2e/e2etest"
)

var failoverKills = flag.Int("failover.kills", 3, "TestFailover: how many times the leader is killed")

// Failover bounds: a put gives up after failoverPutTimeout and is retried at
// once; a failover longer than failoverBound fails the test.
const (
	failoverPutTimeout = 200 * time.Millisecond
	failoverBound      = 10 * time.Second
)

// TestFailover measures how long writes are unavailable when the leader of a
// 3-member cluster dies. Each round finds the leader, kill -9s it and times
// from the kill until the first put that succeeds, from a client whose
// endpoints are the two surviving members (connected and warmed up before the
// kill) putting back to back with a 200 ms timeout per request. Then it
// restarts the killed member and waits until it has caught up (its
// serializable view reaches the cluster's revision) and the members agree on
// a leader before the next round. It logs every round and, at the end, the
// median and max with the prefix "failover:", and fails if any failover
// takes failoverBound or more.
//
// -failover.kills=20 runs the full measurement (default 3, for CI); with
// -e2e.server=etcd it measures etcd 3.4:
//
//	go test ./e2e -run TestFailover -failover.kills=20 -v
//	go test ./e2e -run TestFailover -failover.kills=20 -v -e2e.server=etcd
func TestFailover(t *testing.T) {
	kills := *failoverKills
	if kills < 1 {
		t.Fatalf("-failover.kills=%d: want at least 1", kills)
	}
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{})
	putRetry(t, c.Client(t), "failover/start", "v")
	var took []time.Duration
	for round := range kills {
		leader := c.Leader(t)
		var survivors []string
		for i, ep := range c.Endpoints() {
			if i != leader {
				survivors = append(survivors, ep)
			}
		}
		cli := failoverClient(t, survivors)
		// Warm up: connections to both survivors are open before the kill,
		// so that the measurement holds no dialing.
		for range 2 * len(survivors) {
			putRetry(t, cli, fmt.Sprintf("failover/%d/warm", round), "v")
		}

		killed := time.Now()
		must(t, c.Kill(leader))
		d, n, err := firstPut(cli, fmt.Sprintf("failover/%d", round), killed, failoverBound)
		if err != nil {
			t.Fatalf("round %d: no put succeeded within %v after killing leader m%d (%d attempts): %v", round, failoverBound, leader, n, err)
		}
		took = append(took, d)
		t.Logf("failover round %d: killed leader m%d; first put ok after %v (%d attempts)", round, leader, d.Round(time.Millisecond), n)

		must(t, c.Restart(leader))
		waitCaughtUp(t, c, leader)
		cli.Close()
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	median := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	all := make([]string, len(took))
	for i, d := range took {
		all[i] = ms(d)
	}
	t.Logf("failover: %s, %d kills: median %s, max %s, min %s (all: %v)",
		c.Kind(), len(took), ms(median), ms(sorted[len(sorted)-1]), ms(sorted[0]), all)
}

// failoverClient returns a client on eps (closed at cleanup too) that, like
// the benchmark's, spreads its requests round-robin over them.
func failoverClient(t *testing.T, eps []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   eps,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	must(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli
}

// firstPut puts prefix/<n> back to back, each with failoverPutTimeout,
// until one succeeds or bound has passed since since, and returns the time
// from since to that success and the number of attempts.
func firstPut(cli *clientv3.Client, prefix string, since time.Time, bound time.Duration) (time.Duration, int, error) {
	var last error
	for n := 1; ; n++ {
		ctx, cancel := context.WithTimeout(context.Background(), failoverPutTimeout)
		_, err := cli.Put(ctx, fmt.Sprintf("%s/%d", prefix, n), "v")
		cancel()
		if err == nil {
			return time.Since(since), n, nil
		}
		last = err
		if time.Since(since) >= bound {
			return 0, n, last
		}
		// An error returned at once (no leader yet, connection refused)
		// must not turn this into a busy loop.
		if ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// waitCaughtUp waits until member i's serializable view has the revision a
// linearizable read through the cluster returns (no writes go on meanwhile)
// and the members agree on a leader.
func waitCaughtUp(t *testing.T, c *e2etest.Cluster, i int) {
	t.Helper()
	resp, err := c.Client(t).Get(ctx(t), "failover/start")
	must(t, err)
	want := resp.Header.Revision
	mc := c.MemberClient(t, i)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := mc.Get(ctx(t), "failover/start", clientv3.WithSerializable())
		if err == nil && r.Header.Revision >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("m%d did not catch up to revision %d in 30s (last: %v, err %v)", i, want, r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Leader(t)
}
