package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// BenchmarkPut measures Put of 256-byte values to distinct keys from
// concurrent clients, each with a clientv3 client (a gRPC connection) of its
// own, against troupe and etcd on a data dir on a real disk. It reports
// puts/s and p50/p99 latency in ms. Run for example
//
//	go test ./e2e -run '^$' -bench 'BenchmarkPut' -benchtime 20000x
func BenchmarkPut(b *testing.B) {
	for _, kind := range []string{e2etest.Troupe, e2etest.Etcd} {
		b.Run("server="+kind, func(b *testing.B) {
			s := e2etest.Start(b, e2etest.Config{Kind: kind, DataDir: filepath.Join(e2etest.DiskDir(b), "data")})
			var run atomic.Int64
			for _, clients := range []int{1, 64, 256} {
				b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
					benchPut(b, s, clients, run.Add(1))
				})
			}
		})
	}
}

func benchPut(b *testing.B, s *e2etest.Server, clients int, run int64) {
	clis := make([]*clientv3.Client, clients)
	for i := range clis {
		clis[i] = s.Client(b)
	}
	putLoad(b, clis, run, func() time.Duration { return processCPU(s.PID()) })
}

// putLoad runs b.N puts of 256-byte values to distinct keys, spread over
// clis (one goroutine each), and reports puts/s, p50/p99 latency and the
// server CPU per put, where serverCPU returns the CPU the server processes
// have used so far.
func putLoad(b *testing.B, clis []*clientv3.Client, run int64, serverCPU func() time.Duration) {
	value := strings.Repeat("v", 256)
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	cpu0 := serverCPU()
	b.ResetTimer()
	start := time.Now()
	for _, cli := range clis {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				key := fmt.Sprintf("bench/%d/%010d", run, i)
				t0 := time.Now()
				c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := cli.Put(c, key, value)
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
	cpu := serverCPU() - cpu0
	if err := failed.Load(); err != nil {
		b.Fatalf("put failed: %v", *err)
	}
	reportLoad(b, lat, elapsed, cpu, "put")
}

// processCPU returns the user+system CPU time pid has used, from
// /proc/pid/stat (fields 14 and 15, in clock ticks of 10 ms), or 0 when it
// cannot be read.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields follow its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
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
