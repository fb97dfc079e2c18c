package e2e

// The chaos harness's watch and lease checkers on a real server without
// faults: they must find nothing wrong with it, and find a dropped event.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/chaos"
)

// TestChaosWatchChecker: writers put, delete and write in transactions
// while watchers of several ranges, started at several revisions, collect
// events; both ways of reading the committed history agree and every
// watcher matches it.
func TestChaosWatchChecker(t *testing.T) {
	_, cli := startServer(t)
	const writers, writes = 3, 40
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first, err := cli.Put(c, "w/start", "")
	must(t, err)
	from := first.Header.Revision

	specs := []chaos.Watched{
		{Name: "all", Key: "w/", End: clientv3.GetPrefixRangeEnd("w/"), StartRev: from},
		{Name: "k1", Key: "w/k1", StartRev: from},
		{Name: "k2-k4", Key: "w/k2", End: "w/k4", StartRev: from + 10},
		{Name: "from-key", Key: "w/k3", End: "\x00", StartRev: from + 25},
	}
	var mu sync.Mutex
	received := make([][]chaos.Event, len(specs))
	var wwg sync.WaitGroup
	wctx, stopWatch := context.WithCancel(c)
	defer stopWatch()
	for i, w := range specs {
		opts := []clientv3.OpOption{clientv3.WithRev(w.StartRev)}
		if w.End != "" {
			opts = append(opts, clientv3.WithRange(w.End))
		}
		wch := cli.Watch(wctx, w.Key, opts...)
		wwg.Go(func() {
			for wr := range wch {
				mu.Lock()
				received[i] = append(received[i], chaos.WatchEvents(wr)...)
				mu.Unlock()
			}
		})
	}

	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for i := range writes {
				k := fmt.Sprintf("w/k%d", rng.IntN(5))
				var err error
				switch r := rng.IntN(10); {
				case r < 6:
					_, err = cli.Put(c, k, fmt.Sprintf("%d-%d", w, i))
				case r < 8:
					_, err = cli.Delete(c, k)
				default: // a put and (if k exists) a delete in one revision
					k2 := fmt.Sprintf("w/k%d", 5+rng.IntN(2))
					_, err = cli.Txn(c).Then(clientv3.OpPut(k2, fmt.Sprintf("txn-%d-%d", w, i)), clientv3.OpDelete(k)).Commit()
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	last, err := cli.Put(c, "w/end", "")
	must(t, err)
	to := last.Header.Revision

	fromReads, err := chaos.ReadHistory(c, cli, "w/", clientv3.GetPrefixRangeEnd("w/"), from, to)
	must(t, err)
	fromWatch, err := chaos.HistoryFromWatch(c, cli, "w/", clientv3.GetPrefixRangeEnd("w/"), from, to)
	must(t, err)
	if len(fromReads) < writers*writes/2 {
		t.Fatalf("history from reads has %d events for %d writes", len(fromReads), writers*writes)
	}
	if v := chaos.CheckWatches(fromReads, []chaos.Watched{{Name: "history-watch", Key: "w/", End: clientv3.GetPrefixRangeEnd("w/"), StartRev: from, Events: fromWatch, UpTo: to}}); len(v) > 0 {
		t.Fatalf("the two histories differ:\n%s", strings.Join(v, "\n"))
	}

	// the watchers catch up on their own: wait (bounded) until they all
	// match the history, then check them once more after stopping them
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		for i := range specs {
			specs[i].Events, specs[i].UpTo = append([]chaos.Event(nil), received[i]...), to
		}
		mu.Unlock()
		if len(chaos.CheckWatches(fromReads, specs)) == 0 {
			break
		}
	}
	stopWatch()
	wwg.Wait()
	for i := range specs {
		specs[i].Events = received[i]
	}
	if v := chaos.CheckWatches(fromReads, specs); len(v) > 0 {
		t.Fatalf("watchers differ from the history:\n%s", strings.Join(v, "\n"))
	}
	for _, w := range specs {
		if len(w.Events) == 0 {
			t.Fatalf("watcher %s received nothing: the workload is too small to check it", w.Name)
		}
	}
	t.Logf("history %d events in revisions %d..%d; watchers received %d, %d, %d, %d", len(fromReads), from, to,
		len(specs[0].Events), len(specs[1].Events), len(specs[2].Events), len(specs[3].Events))
	// and the checker sees a dropped event
	dropped := specs[0]
	dropped.Events = append(append([]chaos.Event(nil), dropped.Events[:5]...), dropped.Events[6:]...)
	if v := chaos.CheckWatches(fromReads, []chaos.Watched{dropped}); len(v) != 1 || !strings.Contains(v[0], "gap") {
		t.Fatalf("a dropped event: violations %q, want one gap", v)
	}
}

// TestChaosLeaseChecker: leases kept alive, revoked and left to expire,
// their keys read all along, pass the lease checker; a key reported gone
// while its lease was kept alive does not.
//
// Only lease 2 may end on its own. The others stay alive until the test
// acts on them, however slowly a loaded machine runs its steps: lease 1 is
// granted a TTL as long as the test's whole bound, so that it is there when
// the test revokes it, and clientv3 keeps lease 0 alive in the background
// besides the keepalives the test records (which are what the checker
// counts).
func TestChaosLeaseChecker(t *testing.T) {
	_, cli := startServer(t)
	h := chaos.NewLeaseHistory(chaos.NewHistory())
	const bound = 60 * time.Second
	c, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	const ttl = defaultMinLeaseTTL // seconds: 3/2 of the election timeout
	record := func(op chaos.LeaseOp, err error) chaos.LeaseOp {
		op.Return = h.Now()
		if err != nil {
			t.Fatalf("%v: %v", op.Kind, err)
		}
		op.Outcome = chaos.OK
		h.Add(op)
		return op
	}
	ttls := [3]int64{ttl, int64(bound / time.Second), ttl}
	var leases [3]int64 // kept alive, revoked, expiring
	for i := range leases {
		op := chaos.LeaseOp{Kind: chaos.LeaseGrant, Call: h.Now()}
		g, err := cli.Grant(c, ttls[i])
		if err == nil {
			op.Lease, op.TTL = int64(g.ID), time.Duration(g.TTL)*time.Second
		}
		leases[i] = record(op, err).Lease
		op = chaos.LeaseOp{Kind: chaos.LeasePut, Lease: leases[i], Key: fmt.Sprintf("lease/%d", i), Call: h.Now()}
		_, err = cli.Put(c, op.Key, "v", clientv3.WithLease(clientv3.LeaseID(leases[i])))
		record(op, err)
		if i == 0 {
			kach, err := cli.KeepAlive(c, clientv3.LeaseID(leases[0]))
			must(t, err)
			go func() {
				for range kach { // drain, as clientv3 wants; ends with c
				}
			}()
		}
	}
	readAll := func() {
		for i, id := range leases {
			op := chaos.LeaseOp{Kind: chaos.LeaseRead, Lease: id, Key: fmt.Sprintf("lease/%d", i), Call: h.Now()}
			resp, err := cli.Get(c, op.Key)
			if err == nil {
				op.Present = len(resp.Kvs) == 1
			}
			record(op, err)
		}
	}
	// for about 2 TTLs: keep lease 0 alive, revoke lease 1 half way,
	// let lease 2 expire
	for step := range 16 {
		readAll()
		op := chaos.LeaseOp{Kind: chaos.LeaseKeepAlive, Lease: leases[0], Call: h.Now()}
		ka, err := cli.KeepAliveOnce(c, clientv3.LeaseID(leases[0]))
		if err == nil {
			op.TTL = time.Duration(ka.TTL) * time.Second
		}
		record(op, err)
		if step == 8 {
			op := chaos.LeaseOp{Kind: chaos.LeaseRevoke, Lease: leases[1], Call: h.Now()}
			_, err := cli.Revoke(c, clientv3.LeaseID(leases[1]))
			record(op, err)
		}
		time.Sleep(time.Duration(ttl) * time.Second / 8)
	}
	// lease 2 expires within its TTL plus the leader's expiry checks
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		readAll()
		ops := h.Ops()
		if last := ops[len(ops)-1]; !last.Present {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease %x's key still there 15s after its last renewal", leases[2])
		}
	}
	ops := h.Ops()
	if v := chaos.CheckLeases(ops); len(v) > 0 {
		t.Fatalf("lease violations on a healthy server:\n%s", strings.Join(v, "\n"))
	}
	gone := 0
	for _, op := range ops {
		if op.Kind == chaos.LeaseRead && !op.Present {
			gone++
			if op.Lease == leases[0] {
				t.Fatalf("the kept-alive lease's key went: %v", op)
			}
		}
	}
	if gone == 0 {
		t.Fatal("no read saw a revoked or expired key")
	}
	// a read of the kept-alive key made to look absent is caught: one
	// that returned after the grant's TTL ran out, within the TTL of a
	// recorded keepalive (wherever the machine's speed put the reads)
	faked := keptAliveRead(ops, leases[0])
	if faked < 0 {
		t.Fatalf("no read of lease %x's key within a recorded keepalive's TTL and after the grant's", leases[0])
	}
	ops[faked].Present = false
	if v := chaos.CheckLeases(ops); len(v) != 1 || !strings.Contains(v[0], "ended early") {
		t.Fatalf("a key gone while kept alive (%v): violations %q, want one", ops[faked], v)
	}
}

// keptAliveRead returns the index in ops of the first read of lease id's
// key that only a keepalive keeps alive: it returned after the grant's TTL
// ran out, and within the TTL of a recorded keepalive. -1 if none did.
func keptAliveRead(ops []chaos.LeaseOp, id int64) int {
	var grantEnd time.Duration
	var kas []chaos.LeaseOp
	for _, op := range ops {
		switch {
		case op.Lease != id || op.Outcome != chaos.OK:
		case op.Kind == chaos.LeaseGrant:
			grantEnd = op.Call + op.TTL
		case op.Kind == chaos.LeaseKeepAlive && op.TTL > 0:
			kas = append(kas, op)
		}
	}
	for i, op := range ops {
		if op.Kind != chaos.LeaseRead || op.Lease != id || op.Outcome != chaos.OK || op.Return <= grantEnd {
			continue
		}
		if slices.ContainsFunc(kas, func(ka chaos.LeaseOp) bool { return op.Return < ka.Call+ka.TTL }) {
			return i
		}
	}
	return -1
}
