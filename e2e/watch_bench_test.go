package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// watchBenchServers runs f against troupe and etcd in the same run.
func watchBenchServers(b *testing.B, f func(b *testing.B, s *e2etest.Server)) {
	for _, kind := range []string{e2etest.Troupe, e2etest.Etcd} {
		b.Run("server="+kind, func(b *testing.B) {
			f(b, e2etest.Start(b, e2etest.Config{Kind: kind}))
		})
	}
}

// openWatches opens n watches on key (a prefix when prefix is set) over
// streams gRPC streams (one clientv3 client each) and waits until all are
// created.
func openWatches(b *testing.B, s *e2etest.Server, c context.Context, key string, prefix bool, n, streams int) []clientv3.WatchChan {
	b.Helper()
	clis := make([]*clientv3.Client, streams)
	for i := range clis {
		clis[i] = s.Client(b)
	}
	opts := []clientv3.OpOption{clientv3.WithCreatedNotify()}
	if prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	wcs := make([]clientv3.WatchChan, n)
	for i := range wcs {
		wcs[i] = clis[i%streams].Watch(c, key, opts...)
	}
	for i, wc := range wcs {
		select {
		case r := <-wc:
			if !r.Created {
				b.Fatalf("watch %d: first response %+v", i, r)
			}
		case <-time.After(30 * time.Second):
			b.Fatalf("watch %d not created", i)
		}
	}
	return wcs
}

// BenchmarkWatchLatency measures the delay from the start of a Put to the
// arrival of its event at each of 1,000 watchers of that key (10 streams
// of 100 watches), one put at a time; it reports p50/p99 over all
// deliveries. Run for example
//
//	go test ./e2e -run '^$' -bench BenchmarkWatchLatency -benchtime 200x
func BenchmarkWatchLatency(b *testing.B) {
	const watchers, streams = 1000, 10
	watchBenchServers(b, func(b *testing.B, s *e2etest.Server) {
		c, cancel := context.WithCancel(context.Background())
		defer cancel()
		wcs := openWatches(b, s, c, "wl", false, watchers, streams)
		arrived := make(chan time.Time, watchers)
		for _, wc := range wcs {
			go func(wc clientv3.WatchChan) {
				for r := range wc {
					for range r.Events {
						arrived <- time.Now()
					}
				}
			}(wc)
		}
		cli := s.Client(b)
		lat := make([]time.Duration, 0, b.N*watchers)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			if _, err := cli.Put(c, "wl", strconv.Itoa(i)); err != nil {
				b.Fatal(err)
			}
			for j := 0; j < watchers; j++ {
				select {
				case at := <-arrived:
					lat = append(lat, at.Sub(t0))
				case <-time.After(30 * time.Second):
					b.Fatalf("put %d: %d of %d watchers got the event", i, j, watchers)
				}
			}
		}
		b.StopTimer()
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
		b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
	})
}

// BenchmarkWatchMemory measures the server's resident memory for 10,000
// watches on one key prefix (10 streams of 1,000), after each got a few
// events: VmRSS with the watches minus VmRSS of the idle server. b.N is
// the number of puts under the prefix. Run for example
//
//	go test ./e2e -run '^$' -bench BenchmarkWatchMemory -benchtime 10x
func BenchmarkWatchMemory(b *testing.B) {
	const watchers, streams = 10000, 10
	watchBenchServers(b, func(b *testing.B, s *e2etest.Server) {
		cli := s.Client(b)
		if _, err := cli.Put(context.Background(), "wm/warm", "x"); err != nil {
			b.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		idle := vmRSS(b, s.PID())
		c, cancel := context.WithCancel(context.Background())
		defer cancel()
		wcs := openWatches(b, s, c, "wm/", true, watchers, streams)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := cli.Put(c, fmt.Sprintf("wm/%d", i), "v"); err != nil {
				b.Fatal(err)
			}
		}
		for i, wc := range wcs {
			for got := 0; got < b.N; {
				select {
				case r := <-wc:
					got += len(r.Events)
				case <-time.After(30 * time.Second):
					b.Fatalf("watch %d got %d of %d events", i, got, b.N)
				}
			}
		}
		b.StopTimer()
		used := vmRSS(b, s.PID())
		b.ReportMetric(float64(idle)/(1<<20), "idle-rss-MiB")
		b.ReportMetric(float64(used-idle)/(1<<20), "watch-rss-MiB")
	})
}

// vmRSS returns the VmRSS of pid in bytes, from /proc/pid/status.
func vmRSS(b *testing.B, pid int) int64 {
	b.Helper()
	rss := procStatusBytes(pid, "VmRSS:")
	if rss == 0 {
		b.Fatalf("no VmRSS for process %d", pid)
	}
	return rss
}
