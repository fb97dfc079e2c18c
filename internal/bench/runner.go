package bench

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/time/rate"
)

// Progress is told how a run advances, a few times a second, from one
// goroutine; the CLI draws a bar or prints a line.
type Progress interface {
	// Update reports done operations and the fraction (0..1) of the run
	// behind us.
	Update(phase string, done int64, fraction float64)
	Finish()
}

// maxErrorKinds bounds the distinct error messages a run keeps; the rest
// are counted under "other errors".
const maxErrorKinds = 16

// worker is one client goroutine's private state: nothing in it is shared,
// so the hot path takes no lock.
type worker struct {
	id       int
	rnd      *rand.Rand
	key      []byte
	hist     *Histogram
	timeline []int64 // completions per second since the start
	errs     map[string]int64
	lease    clientv3.LeaseID // lease-keepalive: this worker's lease
	seen     atomic.Int64     // watch-latency: events received, read by the run
}

func newWorker(id, keySize int) *worker {
	return &worker{
		id:   id,
		rnd:  rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano()))),
		key:  make([]byte, keySize),
		hist: NewHistogram(),
		errs: map[string]int64{},
	}
}

// keyNumber picks the key of operation seq: seq modulo the key space with
// --sequential-keys, else uniformly at random.
func (w *worker) keyNumber(c *Config, seq int64) int {
	if c.SequentialKeys {
		return int(seq % int64(c.KeySpace))
	}
	return w.rnd.IntN(c.KeySpace)
}

func (w *worker) record(start, end, runStart time.Time, err error) {
	if err != nil {
		msg := err.Error()
		if _, ok := w.errs[msg]; !ok && len(w.errs) >= maxErrorKinds {
			msg = "other errors"
		}
		w.errs[msg]++
		return
	}
	w.hist.Record(end.Sub(start))
	sec := int(end.Sub(runStart) / time.Second)
	for len(w.timeline) <= sec {
		w.timeline = append(w.timeline, 0)
	}
	w.timeline[sec]++
}

// opFunc is one request of a workload; seq numbers the run's requests
// from 0.
type opFunc func(ctx context.Context, cli *clientv3.Client, w *worker, seq int64) error

// loop runs op on cfg.Clients goroutines over clis until cfg.Total
// requests were issued or cfg.Duration passed, paced by cfg.Rate. It
// returns the merged latencies, timeline and errors.
func loop(ctx context.Context, cfg *Config, phase string, clis []*clientv3.Client, total int64, dur time.Duration,
	setup func(context.Context, *clientv3.Client, *worker) error, op opFunc,
) (*phaseResult, error) {
	limit := rate.NewLimiter(rate.Inf, 1)
	if cfg.Rate > 0 {
		limit = rate.NewLimiter(rate.Limit(cfg.Rate), 1)
	}
	workers := make([]*worker, cfg.Clients)
	for i := range workers {
		workers[i] = newWorker(i, cfg.KeySize)
		if setup != nil {
			if err := setup(ctx, clis[i%len(clis)], workers[i]); err != nil {
				return nil, err
			}
		}
	}
	var issued, done atomic.Int64
	start := time.Now()
	deadline := start.Add(dur)
	more := func() (int64, bool) {
		if dur > 0 {
			return issued.Add(1) - 1, time.Now().Before(deadline) && ctx.Err() == nil
		}
		seq := issued.Add(1) - 1
		return seq, seq < total && ctx.Err() == nil
	}
	stopProgress := watchProgress(cfg.Progress, phase, &done, func() float64 {
		if dur > 0 {
			return float64(time.Since(start)) / float64(dur)
		}
		return float64(done.Load()) / float64(total)
	})
	var wg sync.WaitGroup
	for _, w := range workers {
		cli := clis[w.id%len(clis)]
		wg.Go(func() {
			for seq, ok := more(); ok; seq, ok = more() {
				if err := limit.Wait(ctx); err != nil {
					return
				}
				st := time.Now()
				err := op(ctx, cli, w, seq)
				w.record(st, time.Now(), start, err)
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	return mergeWorkers(workers, elapsed), ctx.Err()
}

// phaseResult is what one timed phase measured.
type phaseResult struct {
	hist     *Histogram
	timeline []int64
	errs     map[string]int64
	elapsed  time.Duration
}

func mergeWorkers(workers []*worker, elapsed time.Duration) *phaseResult {
	r := &phaseResult{hist: NewHistogram(), errs: map[string]int64{}, elapsed: elapsed}
	for _, w := range workers {
		r.hist.Merge(w.hist)
		for len(r.timeline) < len(w.timeline) {
			r.timeline = append(r.timeline, 0)
		}
		for i, n := range w.timeline {
			r.timeline[i] += n
		}
		for msg, n := range w.errs {
			r.errs[msg] += n
		}
	}
	return r
}

// watchProgress updates p every 250 ms from a goroutine that the returned
// function stops and waits for.
func watchProgress(p Progress, phase string, done *atomic.Int64, fraction func() float64) func() {
	if p == nil {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				p.Update(phase, done.Load(), 1)
				p.Finish()
				return
			case <-t.C:
				p.Update(phase, done.Load(), min(fraction(), 1))
			}
		}
	})
	return func() { close(stop); wg.Wait() }
}
