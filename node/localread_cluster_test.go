//go:build !race

// Several members in one process: see cluster_test.go for why not -race.

package node

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/internal/polltest"
)

// localReadIndex is the read index member i's raft actor publishes for
// reads without a round, 0 when none.
func (c *testCluster) localReadIndex(i int) uint64 {
	if co := c.nodes[i].raft.Core(); co != nil {
		return co.LocalReads.Load()
	}
	return 0
}

// addLearner adds a learner to the cluster through member via and starts
// it; it returns its index in c.
func (c *testCluster) addLearner(via int) int {
	c.t.Helper()
	cfg := c.joinConfig(fmt.Sprintf("learner%d", len(c.nodes)))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.addMember(ctx, via, cfg, true)
	return c.startJoined(cfg)
}

// TestSingleVoterReadsSeeWhatALearnerApplied: a single voter answers
// linearizable reads without a raft round, with its commit index as the
// read index, not its applied index: a write its learner has applied (so
// committed) while the leader's applier lags is seen by a linearizable
// read on the leader that starts after the learner showed it.
func TestSingleVoterReadsSeeWhatALearnerApplied(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	cli := c.client(0)
	put(t, cli, "k", "v1")
	learner := c.addLearner(0)
	c.waitValue(learner, "k", "v1")
	polltest.Eventually(t, 10*time.Second, "leader publishes a read index", func() (bool, string) {
		return c.localReadIndex(0) != 0, ""
	})

	// The first applier to apply next, the leader's (its Apply leaves
	// with the commit, the learner hears of the commit over the network),
	// sleeps.
	if err := failpoint.Enable("applierPanic", "1*sleep(2s)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { failpoint.Disable("applierPanic") })
	putDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := cli.Put(ctx, "k", "v2")
		putDone <- err
	}()
	c.waitValue(learner, "k", "v2")
	leaderApplied, learnerApplied := c.nodes[0].raft.AppliedIndex(), c.nodes[learner].raft.AppliedIndex()
	if leaderApplied >= learnerApplied {
		t.Fatalf("leader applied %d, learner %d: the leader's applier was not the one held back", leaderApplied, learnerApplied)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v2" {
		t.Fatalf("linearizable read on the leader after the learner applied v2: %v %v", resp, err)
	}
	if err := <-putDone; err != nil {
		t.Fatalf("put v2: %v", err)
	}
}

// TestSingleVoterReadsAcrossASecondVoter: linearizable reads stay
// linearizable while a second voter joins (the leader stops answering
// without a round), leadership moves to it, and the first member is
// removed (the other, now the single voter, answers without a round). A
// reader on each member checks every read against the last write
// acknowledged before it began.
func TestSingleVoterReadsAcrossASecondVoter(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	put(t, c.client(0), "n", "0")

	var acked atomic.Int64 // the last value of n acknowledged
	var mu sync.Mutex
	clis := []*clientv3.Client{c.client(0)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	wg.Add(1)
	go func() { // the writer, through each member in turn
		defer wg.Done()
		for i := int64(1); !stopped(); i++ {
			mu.Lock()
			cli := clis[int(i)%len(clis)]
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := cli.Put(ctx, "n", strconv.FormatInt(i, 10))
			cancel()
			if err == nil {
				acked.Store(i)
			}
			// A failed put (no quorum yet, a leader change) may still be
			// applied later: later values only grow.
		}
	}()
	read := func(m int, cli *clientv3.Client) { // a reader on member m
		defer wg.Done()
		for !stopped() {
			before := acked.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			resp, err := cli.Get(ctx, "n")
			cancel()
			if err != nil || len(resp.Kvs) != 1 {
				continue // no quorum yet, a leader change, a removed member
			}
			if got, _ := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64); got < before {
				errs <- fmt.Errorf("member %d read n = %d after %d was acknowledged", m, got, before)
				return
			}
		}
	}
	wg.Add(1)
	go read(0, clis[0])
	defer func() {
		close(stop)
		wg.Wait()
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
	}()
	waitAcked := func(what string) {
		t.Helper()
		from := acked.Load()
		polltest.Eventually(t, 20*time.Second, what, func() (bool, string) {
			return acked.Load() >= from+20, fmt.Sprint(acked.Load())
		})
	}
	waitAcked("writes acknowledged by the single voter")
	if c.localReadIndex(0) == 0 {
		t.Fatal("the single voter publishes no read index")
	}

	cfg := c.joinConfig("m1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	added := c.addMember(ctx, 0, cfg, false)
	// MemberAdd is answered by the applier; the raft actor takes the new
	// configuration (and withdraws the index) when the applier tells it,
	// before it sends anything in it.
	polltest.Eventually(t, 5*time.Second, "the leader of two voters withdraws its read index", func() (bool, string) {
		return c.localReadIndex(0) == 0, fmt.Sprint(c.localReadIndex(0))
	})
	cli1 := c.client(c.startJoined(cfg))
	mu.Lock()
	clis = append(clis, cli1)
	mu.Unlock()
	wg.Add(1)
	go read(1, cli1)
	waitAcked("writes acknowledged by two voters")

	if _, err := c.client(0).MoveLeader(ctx, added.Member.ID); err != nil {
		t.Fatalf("move leader: %v", err)
	}
	if got := c.waitLeader(); got != 1 {
		t.Fatalf("leader is member %d after moving it to 1", got)
	}
	waitAcked("writes acknowledged after the leader moved")
	if got := c.localReadIndex(1); got != 0 {
		t.Fatalf("leader of two voters publishes read index %d", got)
	}
	// "unhealthy cluster" until the peers are connected for 5 s, as etcd.
	polltest.Eventually(t, 10*time.Second, "member 0 removed", func() (bool, string) {
		_, err := cli1.MemberRemove(ctx, c.ids[0])
		if err != nil && !strings.Contains(err.Error(), "unhealthy cluster") {
			t.Fatalf("remove member 0: %v", err)
		}
		return err == nil, fmt.Sprint(err)
	})
	mu.Lock()
	clis = []*clientv3.Client{cli1} // member 0 stops
	mu.Unlock()
	polltest.Eventually(t, 10*time.Second, "the remaining voter publishes a read index", func() (bool, string) {
		return c.localReadIndex(1) != 0, ""
	})
	waitAcked("writes acknowledged by the remaining voter")
}

// TestMembershipChangesBackToBack: a membership change proposed as soon
// as the one before was answered is applied, not lost. raft turns a
// change proposed while another is pending (not yet applied in raft) into
// an empty entry that nobody answers; the applier answers a change only
// once raft has been told it is applied, so the next one, proposed after
// the answer, finds none pending. The failpoint widens the gap between
// the applier's apply and raft's hearing of it, which a loaded machine
// opens by chance (a single voter's read index no longer orders the two
// through the raft actor).
func TestMembershipChangesBackToBack(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	cli := c.client(0)
	if err := failpoint.Enable("applierBeforeApplied", "sleep(300ms)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { failpoint.Disable("applierBeforeApplied") })
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		added, err := cli.MemberAddAsLearner(ctx, []string{fmt.Sprintf("http://127.0.0.1:%d", i+1)})
		if err != nil {
			cancel()
			t.Fatalf("round %d: add learner: %v", i, err)
		}
		_, err = cli.MemberRemove(ctx, added.Member.ID)
		cancel()
		if err != nil {
			t.Fatalf("round %d: remove the learner just added: %v", i, err)
		}
	}
}
