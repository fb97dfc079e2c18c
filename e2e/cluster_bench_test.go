package e2e

import (
	"fmt"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// BenchmarkClusterPut is BenchmarkPut against a 3-member cluster: Put of
// 256-byte values to distinct keys from 64 and 256 concurrent clients, each
// a clientv3 client (a gRPC connection) of its own configured with all three
// members' endpoints, as etcd's benchmark tool does (clientv3 balances its
// requests round-robin over them, so two thirds reach a follower, which
// forwards them to the leader). Each cluster runs with plain http
// (tls=off) and with client and peer mTLS (tls=mtls: https client and peer
// URLs, --client-cert-auth and --peer-client-cert-auth). It reports puts/s,
// p50/p99 latency in ms, the CPU of the three server processes together per
// put and the largest member's peak RSS during the run. The members' data
// dirs are on a real disk (see e2etest.DiskDir). Run for example
//
//	go test ./e2e -run '^$' -bench BenchmarkClusterPut -benchtime 20000x -count 3
func BenchmarkClusterPut(b *testing.B) {
	for _, kind := range []string{e2etest.Troupe, e2etest.Etcd} {
		b.Run("server="+kind, func(b *testing.B) {
			// StartCluster puts the data dirs under t.TempDir(), which
			// follows $TMPDIR: point it at a real disk.
			b.Setenv("TMPDIR", e2etest.DiskDir(b))
			mtls := benchMTLS(b)
			clusters := map[string]*e2etest.Cluster{}
			for _, mode := range benchTLSModes {
				cfg := e2etest.ClusterConfig{Kind: kind, Size: 3}
				if mode == "mtls" {
					cfg.ClientTLS, cfg.PeerTLS = mtls, mtls
				}
				clusters[mode] = e2etest.StartCluster(b, cfg)
			}
			var run atomic.Int64
			for _, clients := range []int{64, 256} {
				b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
					for _, mode := range benchTLSModes {
						b.Run("tls="+mode, func(b *testing.B) {
							benchClusterPut(b, clusters[mode], clients, run.Add(1))
						})
					}
				})
			}
		})
	}
}

func benchClusterPut(b *testing.B, c *e2etest.Cluster, clients int, run int64) {
	clis := make([]*clientv3.Client, clients)
	for i := range clis {
		clis[i] = c.Client(b)
	}
	pids := make([]int, 0, c.Size())
	for _, m := range c.Members() {
		pids = append(pids, m.PID())
	}
	putLoad(b, clis, run, pids)
}
