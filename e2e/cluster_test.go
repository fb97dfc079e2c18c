package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// TestClusterWritesVisibleEverywhere: a write through any member is seen by
// a linearizable read through every member right after it is acknowledged.
func TestClusterWritesVisibleEverywhere(t *testing.T) {
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{})
	clis := make([]*clientv3.Client, c.Size())
	for i := range clis {
		clis[i] = c.MemberClient(t, i)
	}
	for w, wc := range clis {
		for round := range 3 {
			key := fmt.Sprintf("k%d", round)
			val := fmt.Sprintf("from-%d-%d", w, round)
			put, err := wc.Put(ctx(t), key, val)
			must(t, err)
			for r, rc := range clis {
				resp, err := rc.Get(ctx(t), key)
				must(t, err)
				if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != val {
					t.Fatalf("put %s=%s via m%d; linearizable get via m%d = %v", key, val, w, r, toKVs(resp.Kvs))
				}
				if got := resp.Kvs[0].ModRevision; got != put.Header.Revision {
					t.Fatalf("get via m%d: mod revision %d, put revision %d", r, got, put.Header.Revision)
				}
			}
		}
	}
	requireSameData(t, c, "")
}

// TestClusterLeaderKill: kill -9 the leader; the others elect a new one and
// writes continue; the old leader restarts, rejoins and catches up.
func TestClusterLeaderKill(t *testing.T) {
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{})
	cli := c.Client(t)
	for i := range 10 {
		_, err := cli.Put(ctx(t), fmt.Sprintf("before/%d", i), "v")
		must(t, err)
	}
	old := c.Leader(t)
	must(t, c.Kill(old))
	next := c.Leader(t)
	if next == old {
		t.Fatalf("leader is still m%d after it was killed", old)
	}
	for i := range 10 {
		putRetry(t, cli, fmt.Sprintf("after/%d", i), "v")
	}
	must(t, c.Restart(old))
	// The restarted member serves linearizable reads (Restart waited for
	// that); its own serializable view must converge to the others'.
	requireSameData(t, c, "")
	resp, err := c.MemberClient(t, old).Get(ctx(t), "after/", clientv3.WithPrefix(), clientv3.WithSerializable())
	must(t, err)
	if len(resp.Kvs) != 10 {
		t.Fatalf("old leader m%d has %d of the 10 keys written while it was down", old, len(resp.Kvs))
	}
	putRetry(t, c.MemberClient(t, old), "rejoined", "v")
}

// TestClusterFollowerRestart: a follower killed while writes go on restarts
// and catches up.
func TestClusterFollowerRestart(t *testing.T) {
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{})
	cli := c.Client(t)
	f := (c.Leader(t) + 1) % c.Size()
	must(t, c.Kill(f))
	if c.Alive(f) {
		t.Fatalf("m%d alive after Kill", f)
	}
	for i := range 50 {
		putRetry(t, cli, fmt.Sprintf("k/%02d", i), fmt.Sprint(i))
	}
	must(t, c.Restart(f))
	requireSameData(t, c, "")
	resp, err := c.MemberClient(t, f).Get(ctx(t), "k/", clientv3.WithPrefix(), clientv3.WithSerializable())
	must(t, err)
	if len(resp.Kvs) != 50 {
		t.Fatalf("restarted follower m%d has %d of 50 keys", f, len(resp.Kvs))
	}
}

// putRetry puts until it succeeds (bounded), for writes issued while the
// cluster may be electing a leader. Values are idempotent here, so a retry
// after an ambiguous failure is harmless.
func putRetry(t testing.TB, cli *clientv3.Client, k, v string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Put(c, k, v)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("put %s: %v", k, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requireSameData waits (bounded) until a serializable Range of prefix ("" =
// everything) on every member returns the same keys, values and revisions,
// and fails the test otherwise.
func requireSameData(t testing.TB, c *e2etest.Cluster, prefix string) {
	t.Helper()
	clis := make([]*clientv3.Client, c.Size())
	for i := range clis {
		clis[i] = c.MemberClient(t, i)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		views, err := memberViews(clis, prefix)
		if err == nil {
			same := true
			for i := 1; i < len(views); i++ {
				same = same && views[i] == views[0]
			}
			if same {
				return
			}
			err = fmt.Errorf("members differ:\n%s", joinViews(views))
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func memberViews(clis []*clientv3.Client, prefix string) ([]string, error) {
	key, opts := prefix, []clientv3.OpOption{clientv3.WithSerializable(), clientv3.WithPrefix()}
	if prefix == "" {
		key, opts = "\x00", []clientv3.OpOption{clientv3.WithSerializable(), clientv3.WithFromKey()}
	}
	views := make([]string, len(clis))
	for i, cli := range clis {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := cli.Get(c, key, opts...)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("m%d: %w", i, err)
		}
		views[i] = fmt.Sprintf("rev=%d %v", resp.Header.Revision, toKVs(resp.Kvs))
	}
	return views, nil
}

func joinViews(views []string) string {
	s := ""
	for i, v := range views {
		s += fmt.Sprintf("  m%d: %.400s\n", i, v)
	}
	return s
}
