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
// troupe beside etcd: each server gets keys puts of 256-byte values to
// distinct keys (one raft entry each, as clients write them), is stopped
// with SIGTERM, and is then started again b.N times on the same data dir.
// One iteration is the time from exec to the first successful
// linearizable Get. It reports the median of those (restart-s), the
// slowest (restart-max-s), the median server CPU time until then
// (restart-cpu-s) and the peak RSS of the restarted process when
// it first served (peak-rss-MiB). The data is written once per server; run
// for example
//
//	go test ./e2e -run '^$' -bench 'BenchmarkRestart/keys=1M' -benchtime 5x
//
// (writing 1M keys takes a minute or two per server; keys=20k is the quick
// row).
func BenchmarkRestart(b *testing.B) {
	for _, n := range []struct {
		label string
		keys  int
	}{{"20k", 20_000}, {"1M", 1_000_000}} {
		b.Run("keys="+n.label, func(b *testing.B) {
			for _, kind := range []string{e2etest.Troupe, e2etest.Etcd} {
				b.Run("server="+kind, func(b *testing.B) {
					s := e2etest.Start(b, e2etest.Config{Kind: kind, DataDir: filepath.Join(e2etest.DiskDir(b), "data")})
					start := time.Now()
					writeKeys(b, s, n.keys)
					b.Logf("%s: wrote %d keys in %v", kind, n.keys, time.Since(start).Round(time.Millisecond))
					s.Stop()
					b.Run("restart", func(b *testing.B) { benchRestart(b, s) })
				})
			}
		})
	}
}

// benchRestart restarts the stopped server s b.N times and reports the
// median and the slowest time to serve and the largest peak RSS.
func benchRestart(b *testing.B, s *e2etest.Server) {
	var took, cpu []time.Duration
	var rss int64
	for b.Loop() {
		d, c, peak := restartToServing(b, s)
		took = append(took, d)
		cpu = append(cpu, c)
		rss = max(rss, peak)
		b.StopTimer()
		s.Stop()
		b.StartTimer()
	}
	slices.Sort(took)
	slices.Sort(cpu)
	b.ReportMetric(took[len(took)/2].Seconds(), "restart-s")
	b.ReportMetric(cpu[len(cpu)/2].Seconds(), "restart-cpu-s")
	b.ReportMetric(took[len(took)-1].Seconds(), "restart-max-s")
	b.ReportMetric(float64(rss)/(1<<20), "peak-rss-MiB")
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
