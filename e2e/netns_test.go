package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/chaos"
	"github.com/troupedb/troupe/e2e/e2etest"
)

// netnsChaosCluster is a NetnsCluster for the chaos harness: kills,
// restarts, SIGTERM, SIGSTOP/SIGCONT from the embedded Cluster, the
// isolation-aware Leader, partitions, and (troupe) fault points.
type netnsChaosCluster struct{ *e2etest.NetnsCluster }

var (
	_ chaos.Cluster     = netnsChaosCluster{}
	_ chaos.Pauser      = netnsChaosCluster{}
	_ chaos.Stopper     = netnsChaosCluster{}
	_ chaos.Partitioner = netnsChaosCluster{}
)

type netnsTroupeChaosCluster struct{ netnsChaosCluster }

func (c netnsTroupeChaosCluster) RestartWithFailpoints(i int, failpoints string) error {
	if c.Alive(i) {
		if err := c.Kill(i); err != nil {
			return err
		}
	}
	return c.RestartEnv(i, []string{"TROUPE_FAILPOINTS=" + failpoints})
}

func netnsLeader(t testing.TB, c *e2etest.NetnsCluster) int {
	t.Helper()
	lctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	l, err := c.Leader(lctx)
	must(t, err)
	return l
}

// TestNetnsCluster runs three members, each in a network namespace of its
// own: writes through any member are seen by all; the leader cut from the
// others by the network (not frozen: it keeps running and answering
// clients) cannot commit while the other two elect a new leader and go on;
// once healed it catches up.
func TestNetnsCluster(t *testing.T) {
	c := e2etest.StartNetnsCluster(t, 3)
	clis := make([]*clientv3.Client, c.Size())
	for i := range clis {
		clis[i] = c.MemberClient(t, i)
	}
	for w, wc := range clis {
		key, val := fmt.Sprintf("k%d", w), fmt.Sprintf("from-m%d", w)
		_, err := wc.Put(ctx(t), key, val)
		must(t, err)
		for r, rc := range clis {
			resp, err := rc.Get(ctx(t), key)
			must(t, err)
			if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != val {
				t.Fatalf("put %s=%s via m%d; linearizable get via m%d = %v", key, val, w, r, toKVs(resp.Kvs))
			}
		}
	}

	old := netnsLeader(t, c)
	must(t, c.Isolate(old))
	t.Logf("isolated the leader m%d (%s) from the others with blackhole routes", old, c.Address(old))
	next := netnsLeader(t, c) // asks the connected members only
	if next == old {
		t.Fatalf("m%d is still the leader of the connected members", old)
	}
	t.Logf("m%d is the new leader", next)
	maj := clis[next]
	putRetry(t, maj, "during", "majority")
	for i := range 5 {
		putRetry(t, maj, fmt.Sprintf("during/%d", i), "v")
	}

	// The isolated member still answers clients but has no quorum.
	pctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	_, err := clis[old].Put(pctx, "isolated-attempt", "x")
	cancel()
	if err == nil {
		t.Fatalf("a put through the isolated m%d succeeded", old)
	}
	t.Logf("put through the isolated m%d failed as it must: %v", old, err)
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	resp, err := clis[old].Get(sctx, "during", clientv3.WithSerializable())
	cancel()
	if err == nil && len(resp.Kvs) != 0 {
		t.Fatalf("isolated m%d already has during=%s", old, resp.Kvs[0].Value)
	}

	must(t, c.Heal(old))
	deadline := time.Now().Add(15 * time.Second)
	for {
		gctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := clis[old].Get(gctx, "during", clientv3.WithSerializable())
		cancel()
		if err == nil && len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == "majority" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("m%d did not catch up within 15s of the heal: %v %v", old, resp, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("healed: m%d reads during=majority serializably", old)
	putRetry(t, clis[old], "healed", "v")
	requireSameData(t, c.Cluster, "")
}

// TestNetnsChaos runs a chaos schedule (-chaos.seed, -chaos.duration) on
// three members in network namespaces of their own, with a seeded partition
// injector next to the harness's own faults: a random member, the leader or
// a pair cut by blackhole routes, or a member's link set down, for a few
// seconds each.
func TestNetnsChaos(t *testing.T) {
	c := e2etest.StartNetnsCluster(t, 3)
	var cl chaos.Cluster = netnsChaosCluster{c}
	if c.Kind() == e2etest.Troupe {
		cl = netnsTroupeChaosCluster{netnsChaosCluster{c}}
	}
	seed := chaos.FlagSeed()
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	dur := chaos.FlagDuration()
	ctx, cancel := context.WithTimeout(context.Background(), dur+3*time.Minute)
	defer cancel()

	// The partitions stop (healed) a little before the workload, so that
	// the harness's final checks run on a connected cluster.
	pin := &partitionInjector{c: c, rng: rand.New(rand.NewPCG(uint64(seed), 2)), logf: t.Logf, counts: map[string]int{}, start: time.Now()}
	pctx, pcancel := context.WithTimeout(ctx, dur-dur/10)
	defer pcancel()
	var wg sync.WaitGroup
	wg.Go(func() { pin.run(pctx) })
	r := chaos.Run(ctx, cl, chaos.Config{Seed: seed, Duration: dur, Logf: t.Logf})
	pcancel()
	wg.Wait()
	t.Logf("partitions injected (seed %d): %s", seed, pin.summary())
	if r.Failed() {
		t.Fatalf("chaos schedule failed; replay with -chaos.seed=%d\n%s", r.Seed, r)
	}
	if len(pin.errs) > 0 {
		t.Fatalf("partition injector: %v", pin.errs)
	}
	if pin.total == 0 {
		t.Fatal("no partition was injected")
	}
	if r.Ops["put ok"] == 0 || r.Ops["get ok"] == 0 || r.Ops["cas ok"] == 0 {
		t.Fatalf("the workload did not get every kind of operation through: %v", r.Ops)
	}
}

// partitionInjector cuts members apart for seeded hold times, one cut at a
// time, healing each before the next.
type partitionInjector struct {
	c     *e2etest.NetnsCluster
	rng   *rand.Rand
	logf  func(string, ...any)
	start time.Time

	counts map[string]int
	total  int
	errs   []error
}

func (p *partitionInjector) run(ctx context.Context) {
	defer func() {
		if err := p.c.HealAll(); err != nil {
			p.errs = append(p.errs, fmt.Errorf("final heal: %w", err))
		}
	}()
	n := p.c.Size()
	for {
		// Draw everything first, so the draws do not depend on timing.
		pause := 500*time.Millisecond + time.Duration(p.rng.Int64N(int64(1500*time.Millisecond)))
		hold := time.Second + time.Duration(p.rng.Int64N(int64(3*time.Second)))
		kind := []string{"isolate", "isolate-leader", "pair", "link-down"}[p.rng.IntN(4)]
		a, b := p.rng.IntN(n), p.rng.IntN(n-1)
		if b >= a {
			b++
		}
		if !sleepCtx(ctx, pause) {
			return
		}
		at := time.Since(p.start).Round(time.Millisecond)
		var desc string
		var err error
		switch kind {
		case "isolate":
			desc, err = fmt.Sprintf("m%d", a), p.c.Isolate(a)
		case "isolate-leader":
			lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			l, lerr := p.c.Leader(lctx)
			cancel()
			if lerr != nil {
				p.logf("partition: at %v isolate-leader skipped: %v", at, lerr)
				continue
			}
			a = l
			desc, err = fmt.Sprintf("m%d (leader)", a), p.c.Isolate(a)
		case "pair":
			desc, err = fmt.Sprintf("m%d<->m%d", a, b), p.c.PartitionPair(a, b)
		case "link-down":
			desc, err = fmt.Sprintf("m%d", a), p.c.Disconnect(a)
		}
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("%s %s at %v: %w", kind, desc, at, err))
			return
		}
		p.counts[kind]++
		p.total++
		sleepCtx(ctx, hold)
		if err := p.c.HealAll(); err != nil {
			p.errs = append(p.errs, fmt.Errorf("heal %s %s: %w", kind, desc, err))
			return
		}
		p.logf("partition: at %v %s %s, held %v, healed at %v", at, kind, desc,
			hold.Round(time.Millisecond), time.Since(p.start).Round(time.Millisecond))
	}
}

func (p *partitionInjector) summary() string {
	ks := make([]string, 0, len(p.counts))
	for k := range p.counts {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	fmt.Fprintf(&b, "%d:", p.total)
	for _, k := range ks {
		fmt.Fprintf(&b, " %s=%d", k, p.counts[k])
	}
	return b.String()
}

// sleepCtx sleeps for d or until ctx is done; it reports whether the whole
// d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
