package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// BenchmarkExit measures how long a member takes to go away, troupe beside
// etcd, as an operator sees it: the time from SIGTERM to the process's exit
// with a watch and a lease keep-alive stream open (sigterm-streams), the
// same for the last live member of three (sigterm-1of3, its peers killed),
// and from exec to exit of a member that cannot start because its client
// port is taken while its two peers are down (failed-start). It reports
// ms/exit; run for example
//
//	go test ./e2e -run '^$' -bench BenchmarkExit -benchtime 5x
func BenchmarkExit(b *testing.B) {
	for _, kind := range []string{e2etest.Troupe, e2etest.Etcd} {
		b.Run("server="+kind+"/case=sigterm-streams", func(b *testing.B) {
			benchExit(b, func() time.Duration {
				s := e2etest.Start(b, e2etest.Config{Kind: kind})
				openStreams(b, s.Client(b))
				start := time.Now()
				s.Stop()
				return time.Since(start)
			})
		})
		b.Run("server="+kind+"/case=sigterm-1of3", func(b *testing.B) {
			benchExit(b, func() time.Duration {
				c := e2etest.StartCluster(b, e2etest.ClusterConfig{Kind: kind})
				openStreams(b, c.MemberClient(b, 0))
				c.Member(1).Kill()
				c.Member(2).Kill()
				start := time.Now()
				c.Member(0).Stop()
				return time.Since(start)
			})
		})
		b.Run("server="+kind+"/case=failed-start", func(b *testing.B) {
			benchExit(b, func() time.Duration { return failedStart(b, kind) })
		})
	}
}

// benchExit runs one measured exit per iteration and reports their mean.
func benchExit(b *testing.B, exit func() time.Duration) {
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		total += exit()
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/exit")
}

// openStreams opens a watch and a lease keep-alive stream on cli and waits
// until both have answered once, so that the server holds them.
func openStreams(b *testing.B, cli *clientv3.Client) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	b.Cleanup(cancel)
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), "exit-bench", clientv3.WithCreatedNotify())
	if wr := <-wch; !wr.Created {
		b.Fatalf("watch not created: %v", wr.Err())
	}
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		b.Fatal(err)
	}
	kch, err := cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		b.Fatal(err)
	}
	if _, ok := <-kch; !ok {
		b.Fatal("keep-alive stream closed before its first answer")
	}
}

// failedStart starts member m1 of a three-member cluster whose peers are
// down, on a client port another listener holds, and returns the time from
// exec to exit; the exit must be an error.
func failedStart(b *testing.B, kind string) time.Duration {
	b.Helper()
	bin := exitBinary(b, kind)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer held.Close()
	peers := make([]net.Listener, 3) // reserve three peer ports, then free them
	for i := range peers {
		if peers[i], err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			b.Fatal(err)
		}
	}
	peerURL := func(i int) string { return "http://" + peers[i].Addr().String() }
	for _, l := range peers {
		l.Close()
	}
	clientURL := "http://" + held.Addr().String()
	cmd := exec.Command(bin,
		"--name", "m1", "--data-dir", b.TempDir(),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL(0), "--initial-advertise-peer-urls", peerURL(0),
		"--initial-cluster", fmt.Sprintf("m1=%s,m2=%s,m3=%s", peerURL(0), peerURL(1), peerURL(2)))
	if kind == e2etest.Troupe {
		cmd.Args = append(cmd.Args[:1], append([]string{"serve"}, cmd.Args[1:]...)...)
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err == nil {
		b.Fatalf("%s started on a taken client port:\n%s", kind, out)
	}
	return took
}

// exitBinary returns the executable of kind.
func exitBinary(b *testing.B, kind string) string {
	b.Helper()
	var bin string
	var err error
	if kind == e2etest.Troupe {
		bin, err = e2etest.TroupeBinary()
	} else {
		bin, err = exec.LookPath("etcd")
	}
	if err != nil {
		b.Fatal(err)
	}
	return bin
}
