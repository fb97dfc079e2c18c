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
// arrival of its event at each watcher of that key, for watchers spread
// evenly over streams gRPC streams (one clientv3 client each): 100
// watchers on 100 streams (one each) and on 10 streams (the row,
// both ways) and 1,000 on 10 streams. troupe and etcd run side by side,
// each with its own watchers, and take turns: one put to one, all its
// events, then one put to the other (which goes first alternates), so
// that the load of a shared machine falls on both alike. b.N is the
// number of puts to each. Per server it reports p50/p99 over all
// deliveries, the p50 and p99 of the puts themselves, the p99 over puts
// of the delay until every watcher had the event, the server's CPU per
// delivered event and its peak RSS, and the troupe/etcd ratios of p50 and
// p99. Run for example
//
//	go test -c -o /tmp/e2e.test ./e2e && cd e2e && for i in 1 2 3; do
//	  /tmp/e2e.test -test.run '^$' -test.bench 'BenchmarkWatchLatency/watchers=100$/' -test.benchtime 1000x; done
//
// Set TROUPE_PPROF_ADDR=127.0.0.1:PORT in the environment to profile the
// troupe server during a run (its environment is passed on).
func BenchmarkWatchLatency(b *testing.B) {
	for _, shape := range []struct{ watchers, streams int }{{100, 100}, {100, 10}, {1000, 10}} {
		b.Run(fmt.Sprintf("watchers=%d/streams=%d", shape.watchers, shape.streams), func(b *testing.B) {
			c, cancel := context.WithCancel(context.Background())
			defer cancel()
			var sides []*watchSide
			for _, kind := range []string{e2etest.Troupe, e2etest.Etcd} {
				sides = append(sides, newWatchSide(b, c, kind, shape.watchers, shape.streams))
			}
			for _, sd := range sides {
				sd.start(b)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range sides {
					sides[(i+j)%len(sides)].putAndWait(b, c, i)
				}
			}
			b.StopTimer()
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			for _, sd := range sides {
				sd.report(b)
			}
			t, e := sides[0], sides[1]
			b.ReportMetric(ms(t.quantile(50))/ms(e.quantile(50)), "p50-ratio")
			b.ReportMetric(ms(t.quantile(99))/ms(e.quantile(99)), "p99-ratio")
		})
	}
}

// watchSide is one server of BenchmarkWatchLatency with its watchers.
type watchSide struct {
	s        *e2etest.Server
	cli      *clientv3.Client
	watchers int
	arrived  chan time.Time
	lat      []time.Duration // put start to event, every delivery
	putLat   []time.Duration
	allLat   []time.Duration // put start to its last watcher's event
	cpu0     time.Duration
}

func newWatchSide(b *testing.B, c context.Context, kind string, watchers, streams int) *watchSide {
	s := e2etest.Start(b, e2etest.Config{Kind: kind})
	sd := &watchSide{s: s, watchers: watchers, arrived: make(chan time.Time, watchers)}
	for _, wc := range openWatches(b, s, c, "wl", false, watchers, streams) {
		go func(wc clientv3.WatchChan) {
			for r := range wc {
				for range r.Events {
					sd.arrived <- time.Now()
				}
			}
		}(wc)
	}
	sd.cli = s.Client(b)
	if _, err := sd.cli.Put(c, "wl-warm", "x"); err != nil {
		b.Fatal(err)
	}
	return sd
}

// start begins the counts of the measured run.
func (sd *watchSide) start(b *testing.B) {
	pids := []int{sd.s.PID()}
	if err := resetPeakRSS(pids); err != nil {
		b.Logf("peak RSS is the process's since it started: %v", err)
	}
	sd.lat = make([]time.Duration, 0, b.N*sd.watchers)
	sd.putLat = make([]time.Duration, 0, b.N)
	sd.allLat = make([]time.Duration, 0, b.N)
	sd.cpu0 = processesCPU(pids)
}

// putAndWait puts the watched key and waits for every watcher's event.
func (sd *watchSide) putAndWait(b *testing.B, c context.Context, i int) {
	t0 := time.Now()
	if _, err := sd.cli.Put(c, "wl", strconv.Itoa(i)); err != nil {
		b.Fatal(err)
	}
	sd.putLat = append(sd.putLat, time.Since(t0))
	for j := 0; j < sd.watchers; j++ {
		select {
		case at := <-sd.arrived:
			sd.lat = append(sd.lat, at.Sub(t0))
		case <-time.After(30 * time.Second):
			b.Fatalf("%s put %d: %d of %d watchers got the event", sd.s.Kind(), i, j, sd.watchers)
		}
	}
	sd.allLat = append(sd.allLat, slices.Max(sd.lat[len(sd.lat)-sd.watchers:]))
}

// quantile returns the q-th percentile of the deliveries' delays.
func (sd *watchSide) quantile(q int) time.Duration {
	return sd.lat[min(len(sd.lat)-1, len(sd.lat)*q/100)]
}

func (sd *watchSide) report(b *testing.B) {
	pids := []int{sd.s.PID()}
	cpu := processesCPU(pids) - sd.cpu0
	slices.Sort(sd.lat)
	slices.Sort(sd.putLat)
	slices.Sort(sd.allLat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	kind := sd.s.Kind()
	b.ReportMetric(ms(sd.quantile(50)), kind+"-p50-ms")
	b.ReportMetric(ms(sd.quantile(99)), kind+"-p99-ms")
	// the put's own share of the delay (its reply races the events)
	b.ReportMetric(ms(sd.putLat[len(sd.putLat)/2]), kind+"-put-p50-ms")
	b.ReportMetric(ms(sd.putLat[min(len(sd.putLat)-1, len(sd.putLat)*99/100)]), kind+"-put-p99-ms")
	// until every watcher has it: the fan-out's tail beside the put's
	b.ReportMetric(ms(sd.allLat[min(len(sd.allLat)-1, len(sd.allLat)*99/100)]), kind+"-all-p99-ms")
	// the put's own cost is in it too: per event, the fan-out's share
	// grows with the watchers
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(len(sd.lat)), kind+"-cpu-us/event")
	b.ReportMetric(float64(peakRSS(pids))/(1<<20), kind+"-peak-rss-MiB")
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
