package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// loadConfig bounds a put load: puts distinct keys prefix+index from
// clients goroutines, each with a clientv3 client of its own.
type loadConfig struct {
	prefix  string
	clients int
	puts    int
	// retries per put on error (0: none); a put that needed a retry is
	// marked, since an attempt that timed out may still have been applied.
	retries int
	// abort, when it returns true, makes workers return at their next error
	// instead of retrying or going on.
	abort func() bool
	// acked is called after every acknowledged put with the total so far.
	acked func(total int64)
}

// ack is one acknowledged put.
type ack struct {
	key, value string
	rev        int64
	retried    bool
}

func loadValue(i int) string { return fmt.Sprintf("value-%05d-%s", i, strings.Repeat("x", 32)) }

// runLoad runs cfg against s and returns every acknowledged put and the
// count of puts given up.
func runLoad(t *testing.T, s *e2etest.Server, cfg loadConfig) (acks []ack, failed int64) {
	t.Helper()
	var (
		next  atomic.Int64
		total atomic.Int64
		fails atomic.Int64
		mu    sync.Mutex
		wg    sync.WaitGroup
	)
	acks = make([]ack, 0, cfg.puts)
	clis := make([]*clientv3.Client, cfg.clients)
	for i := range clis {
		clis[i] = s.Client(t)
	}
	for w := range cfg.clients {
		wg.Add(1)
		go func(cli *clientv3.Client) {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.puts {
					return
				}
				a := ack{key: fmt.Sprintf("%s%05d", cfg.prefix, i), value: loadValue(i)}
				var err error
				for attempt := 0; attempt <= cfg.retries; attempt++ {
					if attempt > 0 {
						a.retried = true
						time.Sleep(time.Duration(attempt) * 20 * time.Millisecond)
					}
					c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					var resp *clientv3.PutResponse
					resp, err = cli.Put(c, a.key, a.value)
					cancel()
					if err == nil {
						a.rev = resp.Header.Revision
						break
					}
					if cfg.abort != nil && cfg.abort() {
						return
					}
				}
				if err != nil {
					fails.Add(1)
					t.Logf("put %s given up: %v", a.key, err)
					continue
				}
				mu.Lock()
				acks = append(acks, a)
				mu.Unlock()
				n := total.Add(1)
				if cfg.acked != nil {
					cfg.acked(n)
				}
			}
		}(clis[w])
	}
	wg.Wait()
	return acks, fails.Load()
}

// verifyAcks reads the prefix and checks every acknowledged put: value as
// written and mod_revision equal to the acknowledged revision (at least that
// revision for a put that was retried).
func verifyAcks(t *testing.T, cli *clientv3.Client, prefix string, acks []ack) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cli.Get(c, prefix, clientv3.WithPrefix())
	must(t, err)
	got := make(map[string]kv, len(resp.Kvs))
	for _, p := range resp.Kvs {
		got[string(p.Key)] = toKV(p)
	}
	revs := make(map[int64]string, len(acks))
	bad := 0
	for _, a := range acks {
		if other, dup := revs[a.rev]; dup {
			t.Errorf("puts %s and %s acknowledged with one revision %d", other, a.key, a.rev)
		}
		revs[a.rev] = a.key
		k, ok := got[a.key]
		switch {
		case !ok:
			t.Errorf("acknowledged put %s (revision %d) lost", a.key, a.rev)
		case k.Value != a.value:
			t.Errorf("key %s: value %q, want %q", a.key, k.Value, a.value)
		case k.Mod != a.rev && !(a.retried && k.Mod > a.rev):
			t.Errorf("key %s: mod_revision %d, acknowledged %d (retried %v)", a.key, k.Mod, a.rev, a.retried)
		default:
			continue
		}
		if bad++; bad >= 20 {
			t.Fatalf("stopping after %d bad keys of %d acknowledged", bad, len(acks))
		}
	}
}

// TestDurabilityKill9 kills the server with SIGKILL in the middle of a
// concurrent put load, restarts it on the same data dir and requires every
// acknowledged put to be there with its acknowledged revision.
func TestDurabilityKill9(t *testing.T) {
	const puts, clients = 4000, 24
	s := e2etest.Start(t, e2etest.Config{})
	var killed atomic.Bool
	killDone := make(chan struct{})
	var once sync.Once
	acks, _ := runLoad(t, s, loadConfig{
		prefix: "dur/", clients: clients, puts: puts,
		abort: killed.Load,
		acked: func(n int64) {
			if n >= puts/2 {
				once.Do(func() {
					killed.Store(true)
					go func() {
						defer close(killDone)
						s.Kill()
					}()
				})
			}
		},
	})
	if !killed.Load() {
		t.Fatalf("load ended with %d acknowledged puts, before the kill", len(acks))
	}
	<-killDone
	t.Logf("%d puts acknowledged around kill -9", len(acks))
	if len(acks) < puts/2 || len(acks) >= puts {
		t.Fatalf("%d acknowledged: the kill did not land mid-load", len(acks))
	}
	s.Restart()
	cli := s.Client(t)
	verifyAcks(t, cli, "dur/", acks)

	var maxRev int64
	for _, a := range acks {
		maxRev = max(maxRev, a.rev)
	}
	resp, err := cli.Put(ctx(t), "dur/after", "x")
	must(t, err)
	if resp.Header.Revision <= maxRev {
		t.Fatalf("put after restart got revision %d, not above acknowledged %d", resp.Header.Revision, maxRev)
	}
}

// TestSupervisionUnderLoad arms panics in troupe's core actors (applier,
// raft, wal) mid-load and requires the process to survive by restarting the
// core, with no acknowledged put lost. troupe only.
func TestSupervisionUnderLoad(t *testing.T) {
	// The points are hit once per batch, and batches grow with concurrency:
	// a few clients keep batches small, and the load goes on in rounds
	// (bounded) until all three points have fired.
	const round, maxRounds, clients = 2500, 6, 4
	points := []string{"applierPanic", "walPanic", "raftPanic"}
	s := e2etest.Start(t, e2etest.Config{Kind: e2etest.Troupe, Env: []string{
		"TROUPE_FAILPOINTS=applierPanic=after(1500):1*panic;raftPanic=after(3000):1*panic;walPanic=after(2000):1*panic",
	}})
	var acks []ack
	var failed int64
	fired := func() (n int) {
		log := s.Log()
		for _, p := range points {
			if strings.Contains(log, "failpoint "+p) {
				n++
			}
		}
		return n
	}
	for r := 0; r < maxRounds && fired() < len(points); r++ {
		a, f := runLoad(t, s, loadConfig{prefix: fmt.Sprintf("sup/%d/", r), clients: clients, puts: round, retries: 30})
		acks, failed = append(acks, a...), failed+f
		if !s.Alive() {
			break
		}
	}
	t.Logf("%d puts acknowledged, %d given up; %d of %d failpoints fired", len(acks), failed, fired(), len(points))
	if !s.Alive() {
		t.Fatalf("troupe exited under failpoints: %v", s.ExitError())
	}
	verifyAcks(t, s.Client(t), "sup/", acks)
	if failed > int64(len(acks)/10) {
		t.Errorf("%d puts given up, %d acknowledged", failed, len(acks))
	}
	var lines []string
	for _, l := range strings.Split(s.Log(), "\n") {
		if strings.Contains(strings.ToLower(l), "restart") {
			lines = append(lines, l)
		}
	}
	n := len(lines)
	t.Logf("%d log lines mention restart:\n%s", n, strings.Join(lines[:min(n, 6)], "\n"))
	if n == 0 {
		t.Errorf("server log has no restart line (want the core's restart logged)")
	}
}

// TestRestartBudgetExitsNonZero: a core that fails on every restart stops
// the process with a clear log line and exit status 1, instead of looping.
func TestRestartBudgetExitsNonZero(t *testing.T) {
	// Ready first (a few Readys pass), then every Ready panics.
	s := e2etest.Start(t, e2etest.Config{Kind: e2etest.Troupe, Env: []string{"TROUPE_FAILPOINTS=raftPanic=after(20):panic"}})
	cli := s.Client(t)
	for i := 0; i < 50 && s.Alive(); i++ {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = cli.Put(c, "budget", "x")
		cancel()
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.Alive() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if s.Alive() {
		t.Fatal("troupe still running after its core failed on every restart")
	}
	var ee *exec.ExitError
	if err := s.ExitError(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want exit status 1", err)
	}
	if !strings.Contains(s.Log(), "restart budget exhausted") {
		t.Fatalf("log does not say the restart budget was exhausted:\n%s", s.Log())
	}
}
