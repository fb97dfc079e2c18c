// Package memrelease gives back to the operating system the memory that a
// burst of ended client connections and calls leaves behind.
//
// Each gRPC connection costs a server three goroutines and each watch
// stream two more, with their stacks and buffers. When thousands of them
// end at once (clients that died, cancelled their calls or closed their
// connections) what they held is garbage, and their stacks wait in the
// runtime's free list, but an idle process runs no garbage collection
// until Go's forced one after two minutes, and even then gives pages back
// only slowly: 2,000 abandoned calls grew troupe by 79 MiB, all of it
// still held seconds after they ended and 45 MiB of it two and a half
// minutes later (etcd 3.6.8 keeps all of it).
//
// Run watches the goroutine count, which falls with every connection and
// stream that ends, and once it has fallen by at least MinEnded from its
// peak and stopped falling, returns the memory (see release), at most
// once per MinInterval. A steady workload never moves the count that
// much, so it pays nothing; a burst pays two collections.
package memrelease

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"time"
)

// Defaults of Config.
const (
	// DefaultMinEnded is about 300 connections or 500 watch streams.
	DefaultMinEnded = 1024
	// DefaultMinInterval bounds the cost to one collection a minute for a
	// client that opens and drops thousands of connections over and over.
	DefaultMinInterval = time.Minute
	// DefaultCheckInterval is how often the goroutines are counted.
	DefaultCheckInterval = time.Second
)

// Config of a Releaser; zero fields take the defaults.
type Config struct {
	MinEnded      int
	MinInterval   time.Duration
	CheckInterval time.Duration
	// Goroutines counts the goroutines (runtime.NumGoroutine) and Release
	// returns the memory (release); tests replace them.
	Goroutines func() int
	Release    func()
	Logger     *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MinEnded <= 0 {
		c.MinEnded = DefaultMinEnded
	}
	if c.MinInterval <= 0 {
		c.MinInterval = DefaultMinInterval
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.Goroutines == nil {
		c.Goroutines = runtime.NumGoroutine
	}
	if c.Release == nil {
		c.Release = release
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Run counts the goroutines every CheckInterval and releases memory when
// the rule of the package doc says so, until ctx is done.
func Run(ctx context.Context, cfg Config) {
	cfg = cfg.withDefaults()
	t := time.NewTicker(cfg.CheckInterval)
	defer t.Stop()
	d := newDecider(cfg.MinEnded, cfg.MinInterval)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n := cfg.Goroutines()
			if !d.observe(now, n) {
				continue
			}
			start := time.Now()
			cfg.Release()
			cfg.Logger.Debug("released memory after many goroutines ended",
				"goroutines", n, "took", time.Since(start))
		}
	}
}

// release collects twice and gives every free page back to the system.
// One collection is not enough: gRPC returns the buffers of the responses
// it dropped to sync.Pools, which keep them through one collection (in
// their victim cache) and let them go at the next; with only
// debug.FreeOSMemory's collection, 2,000 cancelled calls on 20
// connections kept 54 MiB of marshalled responses.
func release() {
	runtime.GC()
	debug.FreeOSMemory()
}

// decider is the release rule, apart from the clock and the runtime.
type decider struct {
	minEnded    int
	minInterval time.Duration
	peak        int // most goroutines since the last release
	prev        int // the count at the previous check; -1 before the first
	last        time.Time
}

func newDecider(minEnded int, minInterval time.Duration) *decider {
	return &decider{minEnded: minEnded, minInterval: minInterval, prev: -1}
}

// observe takes the goroutine count n at now and reports whether to
// release: n is at least minEnded below the peak, it moved by less than
// an eighth of minEnded since the previous check (the burst is over, so
// one release covers all of it), and the last release is minInterval
// old.
func (d *decider) observe(now time.Time, n int) bool {
	prev := d.prev
	d.prev = n
	d.peak = max(d.peak, n)
	if d.peak-n < d.minEnded || prev < 0 || abs(n-prev) >= d.minEnded/8 {
		return false
	}
	if !d.last.IsZero() && now.Sub(d.last) < d.minInterval {
		return false
	}
	d.last, d.peak = now, n
	return true
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
