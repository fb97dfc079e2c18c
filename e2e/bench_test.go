package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
	"github.com/troupedb/troupe/internal/bench"
	"github.com/troupedb/troupe/internal/tlstest"
)

// BenchmarkPut measures Put of 256-byte values to distinct keys from
// concurrent clients, each with a clientv3 client (a gRPC connection) of its
// own, against troupe and etcd on a data dir on a real disk, each with plain
// http (tls=off) and with client mTLS (tls=mtls: https, --client-cert-auth,
// as kubeadm runs etcd). It reports puts/s, p50/p99 latency in ms, server
// CPU per put and the server's peak RSS during the run. Run for example
//
//	go test ./e2e -run '^$' -bench 'BenchmarkPut' -benchtime 20000x
//
// The TLS dimension is the innermost level, so that the rows to compare run
// back to back on a shared machine and the names without it still select
// a row (BenchmarkPut/server=troupe/clients=64 runs both of its modes). For
// the same reason run rounds of -count 1 rather than -count N, which repeats
// each row N times in a row on the same servers. With tls=mtls etcd serves
// gRPC through net/http's HTTP/2 server, as it does on an https client URL
// without --listen-client-http-urls; that, not the cipher, is most of its
// cost over tls=off.
func BenchmarkPut(b *testing.B) {
	benchServers(b, []int{1, 64, 256}, benchPut)
}

// BenchmarkRange measures linearizable Get of one of 1,000 keys holding
// 256-byte values from concurrent clients, set up as BenchmarkPut (troupe
// and etcd, tls=off and tls=mtls). Each read waits for a read index. It
// reports gets/s, p50/p99 latency in ms, server CPU per get and peak RSS.
// Run for example
//
//	go test ./e2e -run '^$' -bench 'BenchmarkRange' -benchtime 20000x
func BenchmarkRange(b *testing.B) {
	benchServers(b, []int{1, 256}, benchRange)
}

// BenchmarkTxnPut measures a Txn without compares whose success branch
// puts a 256-byte value to a distinct key (etcd benchmark's txn-put), from
// concurrent clients, set up as BenchmarkPut. It reports txns/s, p50/p99
// latency in ms, server CPU per txn and peak RSS. Run for example
//
//	go test ./e2e -run '^$' -bench 'BenchmarkTxnPut' -benchtime 20000x
func BenchmarkTxnPut(b *testing.B) {
	benchServers(b, []int{64}, benchTxnPut)
}

// benchServers starts, for troupe and etcd, one single-member server per
// TLS mode (benchTLSModes) with its data dir on a real disk, and runs bench
// against each for every client count, as
// server=<kind>/clients=<n>/tls=<mode>. run numbers the runs of one kind.
func benchServers(b *testing.B, clientCounts []int, bench func(b *testing.B, s *e2etest.Server, clients int, run int64)) {
	for _, kind := range []string{e2etest.Troupe, e2etest.Etcd} {
		b.Run("server="+kind, func(b *testing.B) {
			mtls := benchMTLS(b)
			servers := map[string]*e2etest.Server{}
			for _, mode := range benchTLSModes {
				cfg := e2etest.Config{Kind: kind, DataDir: filepath.Join(e2etest.DiskDir(b), "data")}
				if mode == "mtls" {
					cfg.ClientTLS = mtls
				}
				servers[mode] = e2etest.Start(b, cfg)
			}
			var run atomic.Int64
			for _, clients := range clientCounts {
				b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
					for _, mode := range benchTLSModes {
						b.Run("tls="+mode, func(b *testing.B) {
							bench(b, servers[mode], clients, run.Add(1))
						})
					}
				})
			}
		})
	}
}

// benchTLSModes are the values of the benchmarks' tls dimension: off (plain
// http) and mtls (client certificates required on the client URLs and, in
// clusters, on the peer URLs).
var benchTLSModes = []string{"off", "mtls"}

// benchMTLS writes a CA and one localhost certificate (client and server
// usage, ECDSA P-256) and returns the TLS of a side that serves it and
// requires client certificates of that CA; the harness's clients present
// the same certificate. Every member of a cluster can use it on both sides.
func benchMTLS(b *testing.B) *e2etest.TLS {
	dir := b.TempDir()
	ca := tlstest.NewCA(b, "bench-ca")
	x := &e2etest.TLS{
		CertFile:       filepath.Join(dir, "localhost.crt"),
		KeyFile:        filepath.Join(dir, "localhost.key"),
		TrustedCAFile:  filepath.Join(dir, "ca.crt"),
		ClientCertAuth: true,
	}
	ca.WriteCA(b, x.TrustedCAFile)
	ca.Issue(b, tlstest.Localhost()).Write(b, x.CertFile, x.KeyFile)
	return x
}

func benchPut(b *testing.B, s *e2etest.Server, clients int, run int64) {
	clis := make([]*clientv3.Client, clients)
	for i := range clis {
		clis[i] = s.Client(b)
	}
	putLoad(b, clis, run, []int{s.PID()})
}

func benchRange(b *testing.B, s *e2etest.Server, clients int, run int64) {
	const keys = 1000
	clis := make([]*clientv3.Client, clients)
	for i := range clis {
		clis[i] = s.Client(b)
	}
	value := strings.Repeat("v", 256)
	for i := range keys {
		if _, err := clis[0].Put(context.Background(), fmt.Sprintf("range/%d/%04d", run, i), value); err != nil {
			b.Fatal(err)
		}
	}
	opLoad(b, clis, []int{s.PID()}, "get", func(c context.Context, cli *clientv3.Client, i int64) error {
		resp, err := cli.Get(c, fmt.Sprintf("range/%d/%04d", run, i%keys))
		if err == nil && len(resp.Kvs) != 1 {
			err = fmt.Errorf("get of key %d: %d kvs, want 1", i%keys, len(resp.Kvs))
		}
		return err
	})
}

func benchTxnPut(b *testing.B, s *e2etest.Server, clients int, run int64) {
	clis := make([]*clientv3.Client, clients)
	for i := range clis {
		clis[i] = s.Client(b)
	}
	value := strings.Repeat("v", 256)
	opLoad(b, clis, []int{s.PID()}, "txn", func(c context.Context, cli *clientv3.Client, i int64) error {
		resp, err := cli.Txn(c).Then(clientv3.OpPut(fmt.Sprintf("txn/%d/%010d", run, i), value)).Commit()
		if err == nil && !resp.Succeeded {
			err = fmt.Errorf("txn %d did not succeed", i)
		}
		return err
	})
}

// putLoad runs b.N puts of 256-byte values to distinct keys, spread over
// clis (one goroutine each), against the server processes pids, and reports
// puts/s, p50/p99 latency, the server CPU per put and the peak RSS.
func putLoad(b *testing.B, clis []*clientv3.Client, run int64, pids []int) {
	value := strings.Repeat("v", 256)
	opLoad(b, clis, pids, "put", func(c context.Context, cli *clientv3.Client, i int64) error {
		_, err := cli.Put(c, fmt.Sprintf("bench/%d/%010d", run, i), value)
		return err
	})
}

// opLoad runs op b.N times (i from 0 to b.N-1), spread over clis (one
// goroutine each), against the server processes pids, and reports it as a
// load of kind unit (see reportLoad) with the largest server's peak RSS
// during the run.
func opLoad(b *testing.B, clis []*clientv3.Client, pids []int, unit string, op func(context.Context, *clientv3.Client, int64) error) {
	// One read per client first: the connections (and TLS handshakes) are
	// up before the clock and the CPU count start.
	for _, cli := range clis {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := cli.Get(c, "bench/warm")
		cancel()
		if err != nil {
			b.Fatalf("warm-up read: %v", err)
		}
	}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	if err := resetPeakRSS(pids); err != nil {
		b.Logf("peak RSS is the processes' since they started: %v", err)
	}
	cpu0 := processesCPU(pids)
	b.ResetTimer()
	start := time.Now()
	for _, cli := range clis {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := op(c, cli, i)
				cancel()
				lat[i] = time.Since(t0)
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := processesCPU(pids) - cpu0
	if err := failed.Load(); err != nil {
		b.Fatalf("%s failed: %v", unit, *err)
	}
	reportLoad(b, lat, elapsed, cpu, unit)
	b.ReportMetric(float64(peakRSS(pids))/(1<<20), "peak-rss-MiB")
}

// processesCPU is the CPU time the processes pids have used together.
func processesCPU(pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range pids {
		sum += processCPU(pid)
	}
	return sum
}

// resetPeakRSS restarts the peak RSS (VmHWM) of each of pids from its
// current RSS (bench.ResetPeak), so that a run's peak is its own and not
// that of an earlier run on the same process.
func resetPeakRSS(pids []int) error {
	for _, pid := range pids {
		if err := bench.ResetPeak(pid); err != nil {
			return fmt.Errorf("reset peak RSS of %d: %w", pid, err)
		}
	}
	return nil
}

// peakRSS returns the largest VmHWM of pids in bytes (0 for a process that
// cannot be read): for a cluster, the member that needed the most memory.
func peakRSS(pids []int) int64 {
	var peak int64
	for _, pid := range pids {
		p, _ := bench.ReadProc(pid)
		peak = max(peak, p.PeakRSS)
	}
	return peak
}

// procStatusBytes returns the field of /proc/pid/status (a size in kB) in
// bytes, or 0 when it cannot be read.
func procStatusBytes(pid int, field string) int64 {
	n, _ := bench.StatusBytes(pid, field)
	return n
}

// processCPU returns the user+system CPU time pid has used, or 0 when it
// cannot be read.
func processCPU(pid int) time.Duration {
	p, _ := bench.ReadProc(pid)
	return p.CPU
}

// reportLoad reports a load run of b.N ops of kind unit ("put", "op"):
// throughput, p50 and p99 latency, and the server's CPU per op.
func reportLoad(b *testing.B, lat []time.Duration, elapsed, cpu time.Duration, unit string) {
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit+"s/s")
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
	if cpu > 0 {
		// Server CPU per op: steadier than throughput on a shared machine.
		b.ReportMetric(float64(cpu/time.Microsecond)/float64(b.N), "server-cpu-us/"+unit)
	}
}
