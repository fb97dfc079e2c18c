package e2e

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// BenchmarkRestart measures restart to serving with many keys written,
// troupe beside etcd in the same run: each server gets keys puts of
// 256-byte values to distinct keys (one raft entry each, as clients write
// them) and is stopped with SIGTERM; then, b.N times, each is started
// again on its data dir, troupe and etcd alternating so that both see the
// same machine. One restart is the time from exec to the first successful
// linearizable Get. It reports per server the median of those
// (<server>-restart-s), the median server CPU time until then
// (<server>-cpu-s, steadier than the wall clock on a shared machine) and
// the largest peak RSS when it first served (<server>-rss-MiB), and the
// median of the per-round troupe/etcd ratios of time and CPU. Run for
// example
//
//	go test ./e2e -run '^$' -bench 'BenchmarkRestart/keys=1M' -benchtime 5x
//
// (writing 1M keys takes minutes per server on a busy machine; keys=20k
// is the quick row).
func BenchmarkRestart(b *testing.B) {
	for _, n := range []struct {
		label string
		keys  int
	}{{"20k", 20_000}, {"1M", 1_000_000}} {
		b.Run("keys="+n.label, func(b *testing.B) {
			kinds := []string{e2etest.Troupe, e2etest.Etcd}
			servers := make([]*e2etest.Server, len(kinds))
			for i, kind := range kinds {
				servers[i] = e2etest.Start(b, e2etest.Config{Kind: kind, DataDir: filepath.Join(e2etest.DiskDir(b), "data")})
				start := time.Now()
				writeKeys(b, servers[i], n.keys)
				b.Logf("%s: wrote %d keys in %v", kind, n.keys, time.Since(start).Round(time.Millisecond))
				servers[i].Stop()
			}
			b.Run("restart", func(b *testing.B) { benchRestart(b, kinds, servers) })
		})
	}
}

// benchRestart restarts each of the stopped servers in turn, b.N rounds,
// and reports the figures BenchmarkRestart describes.
func benchRestart(b *testing.B, kinds []string, servers []*e2etest.Server) {
	took := make([][]time.Duration, len(servers))
	cpu := make([][]time.Duration, len(servers))
	rss := make([]int64, len(servers))
	var tookRatio, cpuRatio []float64
	for b.Loop() {
		for i, s := range servers {
			d, c, peak := restartToServing(b, s)
			took[i] = append(took[i], d)
			cpu[i] = append(cpu[i], c)
			rss[i] = max(rss[i], peak)
			s.Stop()
		}
		n := len(took[0]) - 1
		tookRatio = append(tookRatio, took[0][n].Seconds()/took[1][n].Seconds())
		cpuRatio = append(cpuRatio, cpu[0][n].Seconds()/max(cpu[1][n].Seconds(), 0.01))
	}
	for i, kind := range kinds {
		b.ReportMetric(median(took[i]).Seconds(), kind+"-restart-s")
		b.ReportMetric(median(cpu[i]).Seconds(), kind+"-cpu-s")
		b.ReportMetric(float64(rss[i])/(1<<20), kind+"-rss-MiB")
	}
	b.ReportMetric(median(tookRatio), "restart-ratio")
	b.ReportMetric(median(cpuRatio), "cpu-ratio")
}

func median[T time.Duration | float64](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// restartToServing starts the stopped server s and returns the time from
// exec to its first successful linearizable Get, the CPU time the server
// used until then (steadier than the wall clock on a shared machine) and
// its peak RSS then.
// It polls the client port every 5 ms before dialing, so that gRPC's
// reconnect backoff does not add to the figure.
func restartToServing(b *testing.B, s *e2etest.Server) (took, cpu time.Duration, rss int64) {
	u, err := url.Parse(s.Endpoint())
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	s.Relaunch()
	deadline := start.Add(5 * time.Minute)
	for {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if !s.Alive() || time.Now().After(deadline) {
			b.Fatalf("%s did not listen on %s: %v; log:\n%s", s.Kind(), u.Host, err, tail(s.Log()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	for {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(c, "restart-probe")
		cancel()
		if err == nil {
			took = time.Since(start)
			return took, processCPU(s.PID()), peakRSS([]int{s.PID()})
		}
		if !s.Alive() || time.Now().After(deadline) {
			b.Fatalf("%s did not serve: %v; log:\n%s", s.Kind(), err, tail(s.Log()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// writeKeys puts n distinct keys with 256-byte values into s from 256
// concurrent requests over 16 connections.
func writeKeys(b *testing.B, s *e2etest.Server, n int) {
	const conns, perConn = 16, 16
	value := strings.Repeat("v", 256)
	errs := make(chan error, conns*perConn)
	var wg sync.WaitGroup
	for c := range conns {
		cli := s.Client(b)
		for g := range perConn {
			w := c*perConn + g
			wg.Go(func() {
				for i := w; i < n; i += conns * perConn {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					_, err := cli.Put(ctx, fmt.Sprintf("restart/%012d", i), value)
					cancel()
					if err != nil {
						errs <- fmt.Errorf("put %d: %w", i, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// tail is the end of a server log, for a failure message.
func tail(log string) string {
	if len(log) > 4000 {
		return log[len(log)-4000:]
	}
	return log
}
