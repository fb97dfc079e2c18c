package e2e

// A flood of Authenticate requests at the default bcrypt cost must not
// starve the member: writes keep succeeding meanwhile. The benchmark
// measures Authenticate requests/s on etcd 3.6.8 and the server under
// test in the same run.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/troupedb/troupe/e2e/e2etest"
)

const floodClients = 64

// authFlood runs n Authenticate requests of alice from floodClients
// connections against s and returns how many timed out (etcd's "request
// timed out": a member that bounds its bcrypt work may refuse a request
// that waited its whole request timeout), how many failed otherwise and
// the first of those errors.
func authFlood(t testing.TB, s *e2etest.Server, n int64) (timedOut, failed int64, first error) {
	t.Helper()
	var next, bad, late atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	for range floodClients {
		conn, err := grpc.NewClient(s.Endpoint()[len("http://"):], grpc.WithTransportCredentials(insecure.NewCredentials()))
		must(t, err)
		defer conn.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			ac := pb.NewAuthClient(conn)
			for next.Add(1) <= n {
				c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				_, err := ac.Authenticate(c, &pb.AuthenticateRequest{Name: "alice", Password: "alicepw"})
				cancel()
				switch {
				case err == nil:
				case isErr(err, rpctypes.ErrGRPCTimeout):
					late.Add(1)
				default:
					bad.Add(1)
					once.Do(func() { first = err })
				}
			}
		}()
	}
	wg.Wait()
	return late.Load(), bad.Load(), first
}

// isErr reports whether err has the gRPC code and message of want.
func isErr(err, want error) bool {
	gc, gm := codeMsg(err)
	wc, wm := codeMsg(want)
	return gc == wc && gm == wm
}

// TestAuthenticateFloodKeepsPuts: while 64 clients send one Authenticate
// each (bcrypt cost 10), root's puts keep succeeding; an Authenticate
// may time out (etcd 3.6.8 runs them all at once and answers them all,
// troupe bounds the bcrypt work), not fail otherwise.
func TestAuthenticateFloodKeepsPuts(t *testing.T) {
	s := e2etest.Start(t, e2etest.Config{})
	enableAuth(t, s)
	cli := userClient(t, s, "root", rootPassword)
	done := make(chan struct{})
	type putStats struct {
		n       int
		slowest time.Duration
		err     error
	}
	stats := make(chan putStats, 1)
	go func() {
		var st putStats
		defer func() { stats <- st }()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			start := time.Now()
			c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := cli.Put(c, fmt.Sprintf("flood/%d", i), "v")
			cancel()
			if err != nil {
				st.err = fmt.Errorf("put %d: %w", i, err)
				return
			}
			st.n++
			st.slowest = max(st.slowest, time.Since(start))
		}
	}()
	start := time.Now()
	timedOut, failed, first := authFlood(t, s, floodClients)
	elapsed := time.Since(start)
	close(done)
	st := <-stats
	t.Logf("%s: %d Authenticate in %v (%.1f/s answered), %d timed out, %d failed; %d puts meanwhile, slowest %v",
		s.Kind(), floodClients, elapsed.Round(time.Millisecond), float64(floodClients-timedOut)/elapsed.Seconds(), timedOut, failed, st.n, st.slowest.Round(time.Millisecond))
	if failed > 0 {
		t.Errorf("%d of %d Authenticate requests failed, the first: %v", failed, floodClients, first)
	}
	if timedOut == floodClients {
		t.Errorf("all %d Authenticate requests timed out", floodClients)
	}
	if st.err != nil {
		t.Fatalf("a put failed during the flood: %v", st.err)
	}
	if st.n < 3 {
		t.Fatalf("only %d puts succeeded in the %v of the flood", st.n, elapsed)
	}
}

// BenchmarkAuthenticate measures Authenticate requests/s answered (and
// the share that timed out) from 64 clients
// at the default bcrypt cost, on etcd 3.6.8 and on the server under test
// (one member each, started once). Run it with e.g.
// go test -run X -bench BenchmarkAuthenticate -benchtime 200x -count 3 ./e2e
func BenchmarkAuthenticate(b *testing.B) {
	kinds := []string{e2etest.Etcd}
	if e2etest.Kind() != e2etest.Etcd {
		kinds = append(kinds, e2etest.Kind())
	}
	for _, kind := range kinds {
		s := e2etest.Start(b, e2etest.Config{Kind: kind})
		enableAuth(b, s)
		b.Run(kind, func(b *testing.B) {
			b.ResetTimer()
			start := time.Now()
			timedOut, failed, first := authFlood(b, s, int64(b.N))
			elapsed := time.Since(start)
			if failed > 0 {
				b.Fatalf("%d of %d Authenticate failed, the first: %v", failed, b.N, first)
			}
			b.ReportMetric(float64(int64(b.N)-timedOut)/elapsed.Seconds(), "auth/s")
			b.ReportMetric(float64(timedOut)/float64(b.N), "timedout/op")
		})
	}
}
