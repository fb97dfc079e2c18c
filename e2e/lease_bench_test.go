package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// BenchmarkLease measures LeaseGrant (a raft write each) and keep-alives
// (one renewal per round trip on a LeaseKeepAlive stream per client, the
// leader's clock only, no raft) from concurrent clients, against troupe and
// etcd in the same run. It reports ops/s, p50/p99 latency in ms and server
// CPU per op. Run for example
//
//	go test ./e2e -run '^$' -bench 'BenchmarkLease' -benchtime 10000x
func BenchmarkLease(b *testing.B) {
	for _, kind := range []string{e2etest.Troupe, e2etest.Etcd} {
		b.Run("server="+kind, func(b *testing.B) {
			s := e2etest.Start(b, e2etest.Config{Kind: kind, DataDir: filepath.Join(e2etest.DiskDir(b), "data")})
			for _, clients := range []int{1, 64} {
				clis := make([]*clientv3.Client, clients)
				for i := range clis {
					clis[i] = s.Client(b)
				}
				cpu := func() time.Duration { return processCPU(s.PID()) }
				b.Run(fmt.Sprintf("op=grant/clients=%d", clients), func(b *testing.B) {
					leaseLoad(b, clis, cpu, func(c *clientv3.Client, _ *leaseStream) error {
						_, err := c.Grant(context.Background(), 60)
						return err
					})
				})
				g, err := clis[0].Grant(context.Background(), 600)
				if err != nil {
					b.Fatal(err)
				}
				b.Run(fmt.Sprintf("op=keepalive/clients=%d", clients), func(b *testing.B) {
					leaseLoad(b, clis, cpu, func(_ *clientv3.Client, ls *leaseStream) error {
						return ls.renew(int64(g.ID))
					})
				})
			}
		})
	}
}

// leaseStream is one client's raw keep-alive stream: clientv3's KeepAlive
// renews on its own schedule, a benchmark needs one renewal per call.
type leaseStream struct {
	stream pb.Lease_LeaseKeepAliveClient
}

func (ls *leaseStream) renew(id int64) error {
	if err := ls.stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
		return err
	}
	resp, err := ls.stream.Recv()
	if err == nil && resp.TTL <= 0 {
		err = fmt.Errorf("lease %x not renewed: TTL %d", id, resp.TTL)
	}
	return err
}

func leaseLoad(b *testing.B, clis []*clientv3.Client, serverCPU func() time.Duration, op func(*clientv3.Client, *leaseStream) error) {
	streams := make([]*leaseStream, len(clis))
	for i, c := range clis {
		sctx, cancel := context.WithCancel(context.Background())
		b.Cleanup(cancel)
		st, err := pb.NewLeaseClient(c.ActiveConnection()).LeaseKeepAlive(sctx)
		if err != nil {
			b.Fatal(err)
		}
		streams[i] = &leaseStream{stream: st}
	}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	cpu0 := serverCPU()
	b.ResetTimer()
	start := time.Now()
	for i, cli := range clis {
		wg.Go(func() {
			for {
				n := next.Add(1) - 1
				if n >= int64(b.N) {
					return
				}
				t0 := time.Now()
				err := op(cli, streams[i])
				lat[n] = time.Since(t0)
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
		b.Fatalf("lease op failed: %v", *err)
	}
	reportLoad(b, lat, elapsed, cpu, "op")
}
