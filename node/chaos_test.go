//go:build !race

package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupedb/troupe/chaos"
	"github.com/troupedb/troupe/failpoint"
)

// inprocCluster drives a testCluster for the chaos harness. In one process
// a member cannot be killed -9: Kill stops it (its requests in flight fail,
// its files close as at a crash of the core), and faults the process
// variant cannot make come from the in-process network instead: cut links,
// isolated members, delayed messages, and actor panics through failpoints.
type inprocCluster struct {
	c  *testCluster
	mu sync.Mutex // guards c.nodes
}

func (ic *inprocCluster) Size() int { return len(ic.c.cfgs) }

func (ic *inprocCluster) Endpoints() []string {
	eps := make([]string, len(ic.c.cfgs))
	for i, cfg := range ic.c.cfgs {
		eps[i] = cfg.ListenClientURLs[0].Host
	}
	return eps
}

func (ic *inprocCluster) Alive(i int) bool {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	return ic.c.nodes[i] != nil
}

func (ic *inprocCluster) Kill(i int) error {
	ic.mu.Lock()
	n := ic.c.nodes[i]
	ic.c.nodes[i] = nil
	ic.mu.Unlock()
	if n == nil {
		return nil
	}
	return n.Stop()
}

// Restart starts member i again with every fault point disarmed: armed
// points hold for one run of a member, as in the process variant.
func (ic *inprocCluster) Restart(i int) error {
	for _, p := range chaosPoints {
		failpoint.Disable(p)
	}
	n, err := Start(ic.c.cfgs[i])
	if err != nil {
		return err
	}
	ic.mu.Lock()
	ic.c.nodes[i] = n
	ic.mu.Unlock()
	return nil
}

// RestartWithFailpoints arms the points process-wide (whichever member
// reaches one first takes the panic or the slow fsync) and restarts i.
func (ic *inprocCluster) RestartWithFailpoints(i int, spec string) error {
	if err := ic.Kill(i); err != nil {
		return err
	}
	n, err := Start(ic.c.cfgs[i])
	if err != nil {
		return err
	}
	ic.mu.Lock()
	ic.c.nodes[i] = n
	ic.mu.Unlock()
	return failpoint.LoadSpec(spec)
}

func (ic *inprocCluster) Leader(ctx context.Context) (int, error) {
	for {
		ic.mu.Lock()
		var lead uint64
		agree, idx := true, -1
		for i, n := range ic.c.nodes {
			if n == nil {
				continue
			}
			l := n.view.Leader()
			if l == 0 || (lead != 0 && l != lead) {
				agree = false
			}
			lead = l
			if n.MemberID() == l {
				idx = i
			}
		}
		ic.mu.Unlock()
		if agree && idx >= 0 {
			return idx, nil
		}
		select {
		case <-ctx.Done():
			return -1, errors.New("no agreed leader")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

var chaosPoints = []string{"raftPanic", "walPanic", "applierPanic", "snapshotterPanic", "kvRangePanic", "walBeforeFsync"}

// netFaults isolates a member or delays its messages for a while, seeded,
// until ctx ends, alongside the harness's own faults.
func netFaults(ctx context.Context, t *testing.T, ic *inprocCluster, seed int64, counts map[string]int) {
	r := rand.New(rand.NewPCG(uint64(seed), 7))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(300+r.IntN(700)) * time.Millisecond):
		}
		i := r.IntN(ic.Size())
		hold := time.Duration(300+r.IntN(2000)) * time.Millisecond
		if r.IntN(2) == 0 {
			counts["isolate"]++
			ic.c.isolate(i, true)
			sleepCtx(ctx, hold)
			ic.c.isolate(i, false)
		} else {
			counts["delay"]++
			ic.c.setDelay(ic.c.ids[i], time.Duration(5+r.IntN(40))*time.Millisecond)
			sleepCtx(ctx, hold)
			ic.c.setDelay(ic.c.ids[i], 0)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// TestChaosInProcess runs a seeded chaos schedule on 3 members in this
// process: the harness's stops, restarts and fault-point panics, plus cut
// and delayed links from the in-process network; then linearizability,
// lost writes and convergence (HashKV) are checked.
func TestChaosInProcess(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.SnapshotCount = 200 })
	ic := &inprocCluster{c: c}
	ctx, cancel := context.WithTimeout(context.Background(), chaos.FlagDuration()+3*time.Minute)
	defer cancel()
	defer func() {
		for _, p := range chaosPoints {
			failpoint.Disable(p)
		}
	}()
	netCtx, stopNet := context.WithTimeout(ctx, chaos.FlagDuration())
	counts := map[string]int{}
	var wg sync.WaitGroup
	cfg := chaos.Config{Logf: t.Logf}
	seed := chaos.FlagSeed()
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	cfg.Seed = seed
	wg.Add(1)
	go func() { defer wg.Done(); netFaults(netCtx, t, ic, seed, counts) }()
	r := chaos.Run(ctx, ic, cfg)
	stopNet()
	wg.Wait()
	t.Logf("in-process network faults: %v", counts)
	if r.Failed() {
		t.Fatalf("chaos schedule failed; replay with -chaos.seed=%d\n%s\nmembers at the end:\n%s", r.Seed, r, ic.state())
	}
}

// state describes each member as it ended, for a failed schedule: whether
// it stopped by itself (and why), its raft view, its store and its peers.
// CI prints only the tail of a failed run, so this travels in the failure.
func (ic *inprocCluster) state() string {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	var b strings.Builder
	for i, n := range ic.c.nodes {
		if n == nil {
			fmt.Fprintf(&b, "  m%d: stopped by the schedule\n", i)
			continue
		}
		stopped := "running"
		select {
		case err := <-n.Done():
			stopped = fmt.Sprintf("STOPPED BY ITSELF: %v", err)
		default:
		}
		fmt.Fprintf(&b, "  m%d %x: %s; leader=%x term=%d raft-index=%d restarts=%d", i, n.MemberID(), stopped,
			n.view.Leader(), n.view.Term(), n.view.RaftIndex(), n.view.Restarts())
		if st := n.raft.Store(); st != nil {
			fmt.Fprintf(&b, " rev=%d consistent-index=%d", st.Rev(), st.ConsistentIndex())
		} else {
			b.WriteString(" store=none (core down)")
		}
		for _, id := range ic.c.ids {
			if id == n.MemberID() {
				continue
			}
			match, commit, ok := n.view.Progress(id)
			fmt.Fprintf(&b, " peer %x: active-since=%s", id, n.view.PeerActiveSince(id).Format("15:04:05.000"))
			if ok {
				fmt.Fprintf(&b, " match=%d commit=%d", match, commit)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
