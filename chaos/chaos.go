// Package chaos checks an etcd-compatible cluster under faults: concurrent
// clients run gets, puts and compare-and-swaps on a few keys while an
// injector kills, stops, freezes and (for troupe) arms fault points in
// members, all drawn from one seed. At the end the history must be
// linearizable (porcupine), no acknowledged write may be lost, and every
// member must hold the same data.
//
// The harness knows nothing of troupe's internals: it drives processes
// through the Cluster interface and talks to them with clientv3, so it runs
// against real etcd as well. The e2e package runs it on real processes:
//
//	go test ./e2e -run TestChaosProcesses -e2e.server=etcd -v
//	go test ./e2e -run TestChaosProcesses -chaos.duration=10m -timeout=0 -v
//	go test ./e2e -run TestChaosProcesses -chaos.seed=1234 -v   # replay
//
// Two more checkers stand ready for workloads with watches and leases
// (not run by Run yet): CheckWatches compares what each watcher received
// with the committed history (HistoryFromReads, ReadHistory,
// HistoryFromWatch): in revision order, no gap, no duplicate, equal to what
// was committed in its range; CheckLeases checks from a LeaseHistory that
// no lease ended before its last acknowledged grant or keepalive's send
// time plus its TTL, and that an acknowledged revoke removed its keys.
//
// The seed fixes the workload's choices and the sequence of faults and their
// targets and hold times; the interleaving with the servers' own timing is
// not reproducible, so a replay repeats the schedule, not the exact history.
package chaos

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
)

// Config describes one schedule. Zero fields take the defaults noted.
type Config struct {
	Seed          int64         // 0: -chaos.seed, else a new one from the clock
	Duration      time.Duration // workload and faults; 0: -chaos.duration
	Clients       int           // concurrent workers; 0: 6
	Keys          int           // keys "<KeyPrefix><n>"; 0: 4
	KeyPrefix     string        // "": "chaos/k"
	OpTimeout     time.Duration // per operation; 0: 2s
	ErrorBackoff  time.Duration // a worker's pause after a failed op; 0: 100ms
	OpInterval    time.Duration // a worker's pause between ops; 0: 5ms
	FaultInterval time.Duration // mean pause between faults; 0: 500ms
	HoldMin       time.Duration // shortest time a fault is held; 0: 300ms
	HoldMax       time.Duration // longest; 0: 2.5s (above etcd's 1s election timeout)
	Faults        []Fault       // nil: every fault the cluster supports
	CheckTimeout  time.Duration // porcupine's budget; 0: 30s
	// Watchers watch the schedule's keys from its first revision through
	// every fault; their events are checked against the committed history
	// (ordered, no gap, no duplicate). 0: 3 (the most there are), < 0: none.
	Watchers int
	// LeaseWorkers grant, renew, read and revoke leases with one key each;
	// no lease may end early. 0: 2, < 0: none.
	LeaseWorkers int
	LeaseTTL     time.Duration // granted TTL, whole seconds; 0: 3s
	// SerializableGets makes the workload's gets serializable, so that a
	// lagging member may answer with stale data: only for checking that
	// the harness catches such a violation.
	SerializableGets bool
	// TLS is every client's TLS configuration (the CA it trusts and, for
	// members with --client-cert-auth, its certificate); nil: plain http.
	TLS *tls.Config
	// Logf prints progress (the seed first); nil prints nothing.
	Logf func(format string, args ...any)
}

func (c *Config) setDefaults(cl Cluster) {
	if c.Seed == 0 {
		c.Seed = FlagSeed()
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Duration, FlagDuration())
	def(&c.OpTimeout, 2*time.Second)
	def(&c.ErrorBackoff, 100*time.Millisecond)
	def(&c.OpInterval, 5*time.Millisecond)
	def(&c.FaultInterval, 500*time.Millisecond)
	def(&c.HoldMin, 300*time.Millisecond)
	def(&c.HoldMax, 2500*time.Millisecond)
	def(&c.CheckTimeout, 30*time.Second)
	if c.Clients == 0 {
		c.Clients = 6
	}
	if c.Keys == 0 {
		c.Keys = 4
	}
	if c.Watchers == 0 {
		c.Watchers = 3
	}
	if c.LeaseWorkers == 0 {
		c.LeaseWorkers = 2
	}
	def(&c.LeaseTTL, 3*time.Second)
	if c.KeyPrefix == "" {
		c.KeyPrefix = "chaos/k"
	}
	if c.Faults == nil {
		c.Faults = Supported(cl)
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

func (c Config) key(n int) string { return fmt.Sprintf("%s%d", c.KeyPrefix, n) }

// Report is the outcome of a schedule. A run passed if Violations and
// Errors are both empty.
type Report struct {
	Seed     int64
	Duration time.Duration  // of the workload
	Faults   map[Fault]int  // applied, by kind
	Ops      map[string]int // "<kind> <outcome>" -> count; "cas ok" counts both CAS results
	CASWon   int            // acknowledged CAS whose comparison held

	WatchEvents int            // events the watchers received, up to the final revision
	LeaseOps    map[string]int // "<kind> <outcome>" -> count

	Linearizable  porcupine.CheckResult
	CheckTime     time.Duration
	Visualization string // porcupine's HTML, written on a violation

	Convergence string // "hashkv at revision N" or "range at revision N"

	HistoryFile string // every operation, one a line, written when the run failed

	Violations []string // safety: not linearizable, lost writes, members differ
	Errors     []string // the harness could not do its job (a member did not come back)
	History    []Op
	// LeaseHistory is every lease operation, in call order.
	LeaseHistory []LeaseOp
}

// Failed reports whether the schedule found a problem.
func (r *Report) Failed() bool { return len(r.Violations) > 0 || len(r.Errors) > 0 }

func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos: seed=%d workload %v, %d ops", r.Seed, r.Duration.Round(time.Millisecond), len(r.History))
	fmt.Fprintf(&b, "\n  faults:")
	for _, f := range sortedKeys(r.Faults) {
		fmt.Fprintf(&b, " %s=%d", f, r.Faults[f])
	}
	fmt.Fprintf(&b, "\n  ops:")
	for _, k := range sortedKeys(r.Ops) {
		fmt.Fprintf(&b, " %s=%d", k, r.Ops[k])
	}
	fmt.Fprintf(&b, " (cas won=%d)", r.CASWon)
	fmt.Fprintf(&b, "\n  watch events: %d; lease ops:", r.WatchEvents)
	for _, k := range sortedKeys(r.LeaseOps) {
		fmt.Fprintf(&b, " %s=%d", k, r.LeaseOps[k])
	}
	fmt.Fprintf(&b, "\n  porcupine: %s in %v", r.Linearizable, r.CheckTime.Round(time.Millisecond))
	if r.Visualization != "" {
		fmt.Fprintf(&b, ", visualization: %s", r.Visualization)
	}
	if r.HistoryFile != "" {
		fmt.Fprintf(&b, "\n  history: %s", r.HistoryFile)
	}
	fmt.Fprintf(&b, "\n  convergence: %s", r.Convergence)
	fmt.Fprintf(&b, "\n  violations: %d", len(r.Violations))
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "\n    %s", v)
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, "\n  errors: %d", len(r.Errors))
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "\n    %s", e)
		}
	}
	return b.String()
}

func sortedKeys[K ~string, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i] < ks[j] })
	return ks
}

// Run runs one schedule against c, which must be serving, and returns its
// report. ctx bounds the whole run, checks included.
func Run(ctx context.Context, c Cluster, cfg Config) *Report {
	cfg.setDefaults(c)
	cfg.Logf("chaos: seed=%d (replay: -chaos.seed=%d) duration=%v clients=%d keys=%d faults=%v",
		cfg.Seed, cfg.Seed, cfg.Duration, cfg.Clients, cfg.Keys, cfg.Faults)
	r := &Report{Seed: cfg.Seed, Faults: map[Fault]int{}, Ops: map[string]int{}, LeaseOps: map[string]int{}}
	hist := NewHistory()
	leases := NewLeaseHistory(hist)
	start, err := firstRevision(ctx, c.Endpoints(), cfg.TLS)
	if err != nil {
		r.Errors = append(r.Errors, err.Error())
		return r
	}
	var recs []*recorder
	if cfg.Watchers > 0 {
		if recs, err = startRecorders(cfg, c.Endpoints(), start); err != nil {
			r.Errors = append(r.Errors, err.Error())
			return r
		}
	}
	var pids atomic.Int64
	nextPID := func() int { return int(pids.Add(1) - 1) }

	// Workload and faults, for cfg.Duration.
	wctx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	w := &workload{cfg: cfg, eps: c.Endpoints(), hist: hist, nextPID: nextPID}
	var wg sync.WaitGroup
	var werrs sync.Map
	for i := range cfg.Clients {
		wg.Go(func() {
			if err := w.run(wctx, i); err != nil {
				werrs.Store(i, err)
			}
		})
	}
	lw := &leaseWorker{cfg: cfg, eps: c.Endpoints(), hist: leases}
	for i := range max(cfg.LeaseWorkers, 0) {
		wg.Go(func() {
			if err := lw.run(wctx, i); err != nil {
				werrs.Store(cfg.Clients+i, err)
			}
		})
	}
	in := &injector{c: c, cfg: cfg, faults: cfg.Faults, logf: cfg.Logf, counts: r.Faults, now: func() time.Duration { return hist.Now().Round(time.Millisecond) }}
	in.rng = newRand(cfg.Seed, 1<<32)
	if len(cfg.Faults) > 0 {
		wg.Go(func() { in.run(wctx) })
	}
	wg.Wait()
	r.Duration = hist.Now()
	werrs.Range(func(_, v any) bool { r.Errors = append(r.Errors, v.(error).Error()); return true })
	for _, err := range in.errs {
		r.Errors = append(r.Errors, err.Error())
	}

	// Heal, read every key, check.
	if err := heal(c); err != nil {
		r.Errors = append(r.Errors, fmt.Sprintf("heal: %v", err))
	}
	r.check(ctx, c, cfg, hist, nextPID(), recs, start)
	r.checkLeases(leases.Ops())
	if r.Failed() {
		r.writeHistory()
	}
	cfg.Logf("%s", r)
	return r
}

func (r *Report) check(ctx context.Context, c Cluster, cfg Config, hist *History, pid int, recs []*recorder, start int64) {
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cli, err := newClient(c.Endpoints(), cfg.TLS)
	if err != nil {
		r.Errors = append(r.Errors, err.Error())
		return
	}
	defer cli.Close()
	final, err := finalReads(cctx, cli, cfg, hist, pid)
	if err != nil {
		r.Errors = append(r.Errors, err.Error())
	}
	r.History = hist.Ops()
	for _, op := range r.History {
		r.Ops[op.Kind.String()+" "+op.Outcome.String()]++
		if op.Kind == CAS && op.Outcome == OK && op.Succeeded {
			r.CASWon++
		}
	}
	if final != nil {
		r.Violations = append(r.Violations, lostWrites(r.History, final)...)
	}
	checkStart := time.Now()
	res, vis, err := checkLinearizable(r.History, cfg.CheckTimeout)
	r.Linearizable, r.CheckTime, r.Visualization = res, time.Since(checkStart), vis
	if err != nil {
		r.Errors = append(r.Errors, fmt.Sprintf("porcupine visualization: %v", err))
	}
	switch res {
	case porcupine.Illegal:
		r.Violations = append(r.Violations, "history is not linearizable (see the visualization)")
	case porcupine.Unknown:
		r.Errors = append(r.Errors, fmt.Sprintf("porcupine could not decide in %v: shorten the schedule or raise CheckTimeout", cfg.CheckTimeout))
	}
	how, rev, err := converge(cctx, cli, c.Endpoints(), cfg.TLS)
	r.Convergence = fmt.Sprintf("%s at revision %d", how, rev)
	if err != nil {
		r.Violations = append(r.Violations, err.Error())
	}
	if rev > 0 {
		r.checkRecorders(cctx, cli, cfg, recs, start, rev)
	} else {
		for _, rec := range recs {
			rec.stop(0, false)
		}
	}
}

func (r *Report) checkLeases(ops []LeaseOp) {
	r.LeaseHistory = ops
	for _, op := range ops {
		r.LeaseOps[op.Kind.String()+" "+op.Outcome.String()]++
	}
	r.Violations = append(r.Violations, CheckLeases(ops)...)
}

// firstRevision is the revision the schedule's watchers start from: the
// one after the cluster's current revision.
func firstRevision(ctx context.Context, eps []string, tc *tls.Config) (int64, error) {
	cli, err := newClient(eps, tc)
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	for attempt := 0; ; attempt++ {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		resp, err := cli.Get(c, "chaos-start")
		cancel()
		if err == nil {
			return resp.Header.Revision + 1, nil
		}
		if attempt == 20 || ctx.Err() != nil {
			return 0, fmt.Errorf("chaos: first revision: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeHistory writes every operation to a temp file for a failed run.
func (r *Report) writeHistory() {
	f, err := os.CreateTemp("", "chaos-history-*.txt")
	if err != nil {
		r.Errors = append(r.Errors, fmt.Sprintf("history file: %v", err))
		return
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "# chaos seed=%d\n", r.Seed)
	for _, v := range r.Violations {
		fmt.Fprintf(w, "# violation: %s\n", v)
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "# error: %s\n", e)
	}
	for _, op := range r.LeaseHistory {
		fmt.Fprintf(w, "# lease %s\n", op)
	}
	for _, op := range r.History {
		fmt.Fprintln(w, op)
	}
	if err := w.Flush(); err != nil {
		r.Errors = append(r.Errors, fmt.Sprintf("history file: %v", err))
		return
	}
	r.HistoryFile = f.Name()
}
