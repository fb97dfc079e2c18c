//go:build !race

// Clusters of several members in one process run one protoactor remote per
// member; protoactor's Remote.Start replaces gRPC's process-wide logger
// without synchronisation, which the race detector reports whenever two
// remotes start in one process. These tests therefore run without -race;
// the single-member tests cover the actors under it.

package node

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/troupedb/troupe/actors/core"
	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/internal/polltest"
)

// testCluster is n members in this process on loopback ports.
type testCluster struct {
	t     *testing.T
	cfgs  []Config
	nodes []*Node
	ids   []uint64 // member ids, fixed at the first start
	mu    sync.Mutex
	cut   map[[2]uint64]bool       // directed links that drop everything
	delay map[uint64]time.Duration // messages from a member wait this long
}

func newTestCluster(t *testing.T, n int, tune func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, cut: map[[2]uint64]bool{}, delay: map[uint64]time.Duration{}}
	var initial []string
	for i := 0; i < n; i++ {
		cfg := testConfig(t, t.TempDir())
		cfg.Name = fmt.Sprintf("m%d", i)
		if tune != nil {
			tune(&cfg)
		}
		cfg.PeerFilter = c.filter
		c.cfgs = append(c.cfgs, cfg)
		initial = append(initial, cfg.Name+"="+cfg.InitialAdvertisePeerURLs[0].String())
	}
	for i := range c.cfgs {
		c.cfgs[i].InitialCluster = strings.Join(initial, ",")
	}
	c.nodes = make([]*Node, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range c.cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.nodes[i], errs[i] = Start(c.cfgs[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start member %d: %v", i, err)
		}
	}
	for _, nd := range c.nodes {
		c.ids = append(c.ids, nd.MemberID())
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd != nil {
				_ = nd.Stop()
			}
		}
	})
	c.waitLeader()
	return c
}

func (c *testCluster) filter(from, to uint64, _ *raftpb.Message) (bool, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut[[2]uint64{from, to}], c.delay[from]
}

// setDelay delays every message member id sends by d (0: none).
func (c *testCluster) setDelay(id uint64, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.delay[id] = d
}

// isolate cuts member i off from every other member, both ways.
func (c *testCluster) isolate(i int, cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.ids[i]
	for j, other := range c.ids {
		if j == i {
			continue
		}
		c.cut[[2]uint64{id, other}] = cut
		c.cut[[2]uint64{other, id}] = cut
	}
}

// waitLeader waits until the running members agree on a leader and
// returns its index.
func (c *testCluster) waitLeader() int {
	c.t.Helper()
	idx := -1
	polltest.Eventually(c.t, 20*time.Second, "members agree on a leader", func() (bool, string) {
		var lead uint64
		for _, nd := range c.nodes {
			if nd == nil {
				continue
			}
			l := nd.view.Leader()
			if l == 0 || (lead != 0 && l != lead) {
				return false, ""
			}
			lead = l
		}
		for i, nd := range c.nodes {
			if nd != nil && lead != 0 && nd.MemberID() == lead {
				idx = i
				return true, ""
			}
		}
		return false, ""
	})
	return idx
}

// joinConfig is the configuration of a member named name that joins c
// (--initial-cluster-state existing).
func (c *testCluster) joinConfig(name string) Config {
	cfg := testConfig(c.t, c.t.TempDir())
	cfg.Name = name
	cfg.InitialClusterState = ClusterStateExisting
	cfg.InitialCluster = c.cfgs[0].InitialCluster + "," + name + "=" + cfg.InitialAdvertisePeerURLs[0].String()
	cfg.PeerFilter = c.filter
	return cfg
}

// addMember asks member via to add cfg's member, as a learner if learner
// is set. As etcd, a member is added only once the others have been
// connected for a while (5 s): "unhealthy cluster" is retried until then.
func (c *testCluster) addMember(ctx context.Context, via int, cfg Config, learner bool) *clientv3.MemberAddResponse {
	t := c.t
	t.Helper()
	cli := c.client(via)
	urls := []string{cfg.InitialAdvertisePeerURLs[0].String()}
	var added *clientv3.MemberAddResponse
	var err error
	polltest.Eventually(t, 10*time.Second, cfg.Name+" add accepted", func() (bool, string) {
		if learner {
			added, err = cli.MemberAddAsLearner(ctx, urls)
		} else {
			added, err = cli.MemberAdd(ctx, urls)
		}
		return err == nil || !strings.Contains(err.Error(), "unhealthy cluster"), fmt.Sprint(err)
	})
	if err != nil {
		t.Fatalf("add %s: %v", cfg.Name, err)
	}
	return added
}

// startJoined starts cfg's member, added already, as member len(c.nodes)
// and returns that index.
func (c *testCluster) startJoined(cfg Config) int {
	c.t.Helper()
	n, err := Start(cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", cfg.Name, err)
	}
	c.cfgs, c.nodes, c.ids = append(c.cfgs, cfg), append(c.nodes, n), append(c.ids, n.MemberID())
	return len(c.nodes) - 1
}

func (c *testCluster) client(i int) *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{c.cfgs[i].ListenClientURLs[0].Host}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

func (c *testCluster) stop(i int) {
	if err := c.nodes[i].Stop(); err != nil {
		c.t.Fatal(err)
	}
	c.nodes[i] = nil
}

func (c *testCluster) restart(i int) {
	c.t.Helper()
	nd, err := Start(c.cfgs[i])
	if err != nil {
		c.t.Fatalf("restart member %d: %v", i, err)
	}
	c.nodes[i] = nd
}

// waitValue polls a serializable read on member i until key has value.
// waitOthersSnapshot waits until every member but behind saved a snapshot
// at index min or later (its raft log is compacted in the same step).
func (c *testCluster) waitOthersSnapshot(behind int, min uint64) {
	c.t.Helper()
	for i := range c.nodes {
		if i != behind {
			c.waitSnapshot(i, min)
		}
	}
}

// waitSnapshot waits until member i saved a snapshot at index min or later.
func (c *testCluster) waitSnapshot(i int, min uint64) {
	c.t.Helper()
	polltest.Eventually(c.t, 30*time.Second, fmt.Sprintf("member %d saves a snapshot at index %d or later", i, min), func() (bool, string) {
		// Only file names: snap.New would tidy the live member's directory.
		names, _ := filepath.Glob(filepath.Join(core.SnapDir(c.cfgs[i].DataDir), "*.snap"))
		for _, name := range names {
			var term, index uint64
			if _, err := fmt.Sscanf(filepath.Base(name), "%016x-%016x.snap", &term, &index); err == nil && index >= min {
				return true, ""
			}
		}
		return false, ""
	})
}

func (c *testCluster) waitValue(i int, key, value string) {
	c.t.Helper()
	cli := c.client(i)
	var last string
	polltest.Eventually(c.t, 20*time.Second, fmt.Sprintf("member %d: %s = %q", i, key, value), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := cli.Get(ctx, key, clientv3.WithSerializable())
		cancel()
		if err == nil && len(resp.Kvs) == 1 {
			last = string(resp.Kvs[0].Value)
		}
		return last == value, fmt.Sprintf("last %q", last)
	})
}

func put(t *testing.T, cli *clientv3.Client, k, v string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Put(ctx, k, v)
	if err != nil {
		t.Fatalf("put %s: %v", k, err)
	}
	return resp.Header.Revision
}

func TestClusterReplicatesAndReadsLinearizably(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.waitLeader()
	follower := (lead + 1) % 3
	// A write through a follower is forwarded to the leader.
	put(t, c.client(follower), "k", "v1")
	for i := 0; i < 3; i++ {
		// Linearizable reads on every member see it at once.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := c.client(i).Get(ctx, "k")
		cancel()
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
			t.Fatalf("member %d linearizable get: %v %v", i, resp, err)
		}
	}
}

func TestClusterLeaderFailover(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.waitLeader()
	put(t, c.client((lead+1)%3), "before", "1")
	c.stop(lead)
	newLead := c.waitLeader()
	if newLead == lead {
		t.Fatal("stopped member still leads")
	}
	put(t, c.client(newLead), "after", "2")
	c.restart(lead)
	c.waitValue(lead, "after", "2")
}

func TestClusterPartitionedLeaderStepsDown(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.waitLeader()
	c.isolate(lead, true)
	newLead := -1
	polltest.Eventually(t, 20*time.Second, "the majority elects a new leader", func() (bool, string) {
		for i, nd := range c.nodes {
			if i != lead && nd.view.Leader() != 0 && nd.view.Leader() != c.nodes[lead].MemberID() {
				newLead = i
			}
		}
		return newLead >= 0, ""
	})
	put(t, c.client(newLead), "majority", "yes")
	c.isolate(lead, false)
	c.waitValue(lead, "majority", "yes")
}

// TestClusterSnapshotCatchUp: a member down while the others compact their
// log past it catches up from a snapshot streamed to it.
func TestClusterSnapshotCatchUp(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.SnapshotCount = 50 })
	lead := c.waitLeader()
	behind := (lead + 1) % 3
	c.snapshotCatchUp(behind, func() *clientv3.Client { return c.client(lead) }, func(key, value string) { c.waitValue(behind, key, value) })
}

// snapshotCatchUp stops member behind, writes through cli (a client of
// another member) until the others compacted their logs past it, and
// restarts it, the snapshot install crashing once; waitValue(key, value)
// waits until the member behind reads value at key.
func (c *testCluster) snapshotCatchUp(behind int, client func() *clientv3.Client, waitValue func(key, value string)) {
	t := c.t
	t.Helper()
	c.stop(behind)
	// Nothing may reach the stopped member's address meanwhile: appends
	// sent before the leader notices it is down wait in the remote's
	// endpoint and reach the restarted member, which then holds the
	// entries it needs and catches up without the snapshot.
	c.isolate(behind, true)
	cli := client()
	for i := 0; i < 5200; i++ { // past the 5000 catch-up entries kept after a snapshot
		put(t, cli, fmt.Sprintf("s%05d", i), "x")
	}
	put(t, cli, "last", "done")
	// Snapshots are saved in the background: restart the member only once
	// the others have compacted their logs past everything it has.
	c.waitOthersSnapshot(behind, 5100)
	// The install crashes once between closing the old backend and
	// renaming the new one in: the core restarts and finishes it.
	if err := failpoint.Enable("snapshotInstallPanic", "1*panic"); err != nil {
		t.Fatal(err)
	}
	defer failpoint.Disable("snapshotInstallPanic")
	c.isolate(behind, false)
	c.restart(behind)
	waitValue("last", "done")
	waitValue("s00000", "x")
	if failpoint.Hits("snapshotInstallPanic") == 0 {
		t.Fatal("the member caught up without installing a snapshot")
	}
}

// TestClusterMembership: a member added with MemberAdd joins with
// --initial-cluster-state existing and catches up, a learner is added and
// promoted once caught up, and a removed member stops for good.
func TestClusterMembership(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.waitLeader()
	cli := c.client(lead)
	put(t, cli, "before-join", "1")

	cfg := c.joinConfig("m3")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	added := c.addMember(ctx, lead, cfg, false)
	if len(added.Members) != 4 || added.Member.Name != "" {
		t.Fatalf("member add answered %v", added)
	}
	n4 := c.nodes[c.startJoined(cfg)]
	if n4.MemberID() != added.Member.ID {
		t.Fatalf("joined as %x, added as %x", n4.MemberID(), added.Member.ID)
	}
	c.waitValue(3, "before-join", "1")
	put(t, cli, "after-join", "2")
	c.waitValue(3, "after-join", "2")
	polltest.Eventually(t, 10*time.Second, "member list shows 4 started members", func() (bool, string) {
		list, err := cli.MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		named := 0
		for _, m := range list.Members {
			if m.Name != "" && len(m.ClientURLs) > 0 {
				named++
			}
		}
		return named == 4, fmt.Sprint(list.Members)
	})

	// Remove the added member: it stops, the others go on.
	if _, err := cli.MemberRemove(ctx, added.Member.ID); err != nil {
		t.Fatalf("member remove: %v", err)
	}
	select {
	case err := <-n4.Done():
		if err == nil || !strings.Contains(err.Error(), "removed") {
			t.Fatalf("removed member stopped with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("removed member still running")
	}
	c.nodes[3] = nil
	put(t, cli, "after-remove", "3")
	list, err := cli.MemberList(ctx)
	if err != nil || len(list.Members) != 3 {
		t.Fatalf("member list after remove: %v %v", list, err)
	}
}

// TestClusterLearnerAndMoveLeader: a learner serves only serializable
// reads and is promoted once caught up; MoveLeader hands leadership over.
func TestClusterLearnerAndMoveLeader(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.waitLeader()
	cli := c.client(lead)
	put(t, cli, "k", "v")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// MoveLeader to a follower.
	target := (lead + 1) % 3
	if _, err := cli.MoveLeader(ctx, c.nodes[target].MemberID()); err != nil {
		t.Fatalf("move leader: %v", err)
	}
	if got := c.waitLeader(); got != target {
		t.Fatalf("leader is member %d after moving it to %d", got, target)
	}
	cli = c.client(target)

	cfg := c.joinConfig("learner")
	added := c.addMember(ctx, target, cfg, true)
	if !added.Member.IsLearner {
		t.Fatalf("added %v, want a learner", added.Member)
	}
	n := c.nodes[c.startJoined(cfg)]
	c.waitValue(3, "k", "v")
	lc := c.client(3)
	if _, err := lc.Get(ctx, "k"); err == nil || !strings.Contains(err.Error(), "not supported for learner") {
		t.Fatalf("linearizable read on a learner: %v", err)
	}
	// Promote once it caught up (the leader's check); retry while not ready.
	polltest.Eventually(t, 20*time.Second, "learner promoted", func() (bool, string) {
		_, err := cli.MemberPromote(ctx, added.Member.ID)
		if err != nil && !strings.Contains(err.Error(), "in sync with leader") {
			t.Fatalf("promote: %v", err)
		}
		return err == nil, fmt.Sprint(err)
	})
	polltest.Eventually(t, 10*time.Second, "the promoted member knows it votes", func() (bool, string) {
		return !n.view.IsLearner(), ""
	})
	gctx, gcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer gcancel()
	if resp, err := lc.Get(gctx, "k"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("linearizable read after promotion: %v %v", resp, err)
	}
}
