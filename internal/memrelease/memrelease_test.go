package memrelease

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestDecider(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type check struct {
		at      time.Duration // since t0
		n       int
		release bool
	}
	for _, tc := range []struct {
		name   string
		checks []check
	}{
		{"steady load never releases", []check{
			{0, 300, false}, {1 * time.Second, 900, false}, {2 * time.Second, 500, false}, {3 * time.Second, 800, false},
		}},
		{"a burst that ended releases once it stopped falling", []check{
			{0, 300, false}, {1 * time.Second, 6300, false}, {2 * time.Second, 3000, false},
			{3 * time.Second, 300, false}, {4 * time.Second, 310, true}, {5 * time.Second, 300, false},
		}},
		{"a fall below minEnded does not", []check{
			{0, 300, false}, {1 * time.Second, 1300, false}, {2 * time.Second, 300, false}, {3 * time.Second, 300, false},
		}},
		{"a second burst within minInterval waits for it", []check{
			{0, 3000, false}, {1 * time.Second, 300, false}, {2 * time.Second, 300, true},
			{3 * time.Second, 3000, false}, {4 * time.Second, 300, false}, {5 * time.Second, 300, false},
			{62 * time.Second, 300, true}, {63 * time.Second, 300, false},
		}},
		{"the first count is only a reference", []check{
			{0, 300, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDecider(1024, time.Minute)
			for i, c := range tc.checks {
				if got := d.observe(t0.Add(c.at), c.n); got != c.release {
					t.Fatalf("check %d (%v, %d goroutines): release %v, want %v", i, c.at, c.n, got, c.release)
				}
			}
		})
	}
}

// TestRunReleasesAfterBurst runs the loop on virtual time with a made-up
// goroutine count: one release for the burst that ended, none before.
func TestRunReleasesAfterBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var count, released atomic.Int64
		count.Store(5000)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			Run(ctx, Config{
				Goroutines: func() int { return int(count.Load()) },
				Release:    func() { released.Add(1) },
			})
		}()
		time.Sleep(3 * DefaultCheckInterval)
		synctest.Wait()
		if n := released.Load(); n != 0 {
			t.Fatalf("%d releases before anything ended", n)
		}
		count.Store(200)
		time.Sleep(3 * DefaultCheckInterval)
		synctest.Wait()
		if n := released.Load(); n != 1 {
			t.Fatalf("%d releases after 4,800 goroutines ended, want 1", n)
		}
		cancel()
		<-done
	})
}
