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
// arrival of its event at each watcher of that key, one put at a time, for
// watchers spread evenly over streams gRPC streams (one clientv3 client
// each): 100 watchers on 100 streams (one each) and on 10 streams (the
// issue's row, both ways) and 1,000 on 10 streams. Each shape runs troupe
// then etcd back to back, each a fresh server. It reports p50/p99 over all
// deliveries, the p50 of the puts themselves, the server's CPU per
// delivered event and its peak RSS during the run. Run for example
//
//	go test -c -o /tmp/e2e.test ./e2e && cd e2e && for i in 1 2 3; do
//	  /tmp/e2e.test -test.run '^$' -test.bench 'BenchmarkWatchLatency/watchers=100/' -test.benchtime 1000x; done
//
// Set TROUPE_PPROF_ADDR=127.0.0.1:PORT in the environment to profile the
// troupe server during a run (its environment is passed on).
func BenchmarkWatchLatency(b *testing.B) {
	for _, shape := range []struct{ watchers, streams int }{{100, 100}, {100, 10}, {1000, 10}} {
		b.Run(fmt.Sprintf("watchers=%d/streams=%d", shape.watchers, shape.streams), func(b *testing.B) {
			watchBenchServers(b, func(b *testing.B, s *e2etest.Server) {
				watchLatency(b, s, shape.watchers, shape.streams)
			})
		})
	}
}

func watchLatency(b *testing.B, s *e2etest.Server, watchers, streams int) {
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
	if _, err := cli.Put(c, "wl-warm", "x"); err != nil {
		b.Fatal(err)
	}
	pids := []int{s.PID()}
	if err := resetPeakRSS(pids); err != nil {
		b.Logf("peak RSS is the process's since it started: %v", err)
	}
	lat := make([]time.Duration, 0, b.N*watchers)
	putLat := make([]time.Duration, 0, b.N)
	cpu0 := processesCPU(pids)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := cli.Put(c, "wl", strconv.Itoa(i)); err != nil {
			b.Fatal(err)
		}
		putLat = append(putLat, time.Since(t0))
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
	cpu := processesCPU(pids) - cpu0
	slices.Sort(lat)
	slices.Sort(putLat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
	// the put's own share of the delay (its reply races the events)
	b.ReportMetric(ms(putLat[len(putLat)/2]), "put-p50-ms")
	// the put's own cost is in it too: per event, the fan-out's share
	// grows with the watchers
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(len(lat)), "server-cpu-us/event")
	b.ReportMetric(float64(peakRSS(pids))/(1<<20), "peak-rss-MiB")
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
