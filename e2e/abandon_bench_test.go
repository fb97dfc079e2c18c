package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// BenchmarkAbandonedCalls measures what calls a client abandons cost a
// server's memory: b.N calls, half Watch (of a prefix from revision 1) and
// half Range (of the same prefix), each on a gRPC connection of its own,
// whose client never reads the reply and never cancels, as a stuck or
// paused client does. The prefix holds 100 keys of 256-byte values, so
// each reply is about 27 KiB. It reports the server's VmRSS growth over
// the idle server while the calls are held (held-rss-MiB) and after the
// clients closed their connections (after-rss-MiB), for troupe and etcd in
// the same run. Run for example
//
//	go test ./e2e -run '^$' -bench BenchmarkAbandonedCalls -benchtime 2000x
func BenchmarkAbandonedCalls(b *testing.B) {
	watchBenchServers(b, func(b *testing.B, s *e2etest.Server) {
		putAbandonKeys(b, s)
		idle := settledRSS(b, s.PID())
		b.ResetTimer()
		conns := abandonCalls(b, s, b.N)
		held := settledRSS(b, s.PID())
		for _, cc := range conns {
			cc.Close()
		}
		after := settledRSS(b, s.PID())
		b.StopTimer()
		b.ReportMetric(float64(idle)/(1<<20), "idle-rss-MiB")
		b.ReportMetric(float64(held-idle)/(1<<20), "held-rss-MiB")
		b.ReportMetric(float64(after-idle)/(1<<20), "after-rss-MiB")
	})
}

// TestAbandonedCallsMemory checks that calls a client abandons (see
// BenchmarkAbandonedCalls) cost troupe less than 64 KiB of resident
// memory each while they are held: 1,000 of them, each on a connection of
// its own. etcd 3.6.8 needs about 110 KiB each; its figure is logged.
func TestAbandonedCallsMemory(t *testing.T) {
	const calls, perCallBytes = 1000, 64 << 10
	s := e2etest.Start(t, e2etest.Config{})
	putAbandonKeys(t, s)
	idle := settledRSS(t, s.PID())
	abandonCalls(t, s, calls)
	grew := settledRSS(t, s.PID()) - idle
	t.Logf("%s: %d abandoned calls grew RSS by %.1f MiB (%.1f KiB each)", s.Kind(), calls, float64(grew)/(1<<20), float64(grew)/calls/1024)
	if s.Kind() == e2etest.Troupe && grew > calls*perCallBytes {
		t.Errorf("%d abandoned calls grew RSS by %.1f MiB, want < %d MiB", calls, float64(grew)/(1<<20), calls*perCallBytes>>20)
	}
}

// putAbandonKeys writes the keys the abandoned calls read: 100 keys under
// ab/ with 256-byte values.
func putAbandonKeys(t testing.TB, s *e2etest.Server) {
	t.Helper()
	cli := s.Client(t)
	value := strings.Repeat("v", 256)
	for i := range 100 {
		if _, err := cli.Put(context.Background(), fmt.Sprintf("ab/%04d", i), value); err != nil {
			t.Fatal(err)
		}
	}
}

// abandonCalls starts n calls on s, half Watch and half Range, each on a
// connection of its own, and never reads their replies. It returns once
// the server answers a read, with the connections (closed at cleanup).
func abandonCalls(t testing.TB, s *e2etest.Server, n int) []*grpc.ClientConn {
	t.Helper()
	conns := make([]*grpc.ClientConn, 0, n)
	t.Cleanup(func() {
		for _, cc := range conns {
			cc.Close()
		}
	})
	for i := range n {
		cc := abandonConn(t, s)
		conns = append(conns, cc)
		abandonCall(t, cc, i%2 == 0)
	}
	// The calls get no reply to wait for: a read shows the server is up,
	// and settledRSS waits until it has served them.
	if _, err := s.Client(t).Get(context.Background(), "ab/0000"); err != nil {
		t.Fatal(err)
	}
	return conns
}

// abandonConn is a gRPC connection of its own to s with fixed 64 KiB flow
// control windows, so that a reply the client does not read stays at the
// server beyond them.
func abandonConn(t testing.TB, s *e2etest.Server) *grpc.ClientConn {
	t.Helper()
	if s.ClientTLS() != nil {
		t.Fatal("abandonConn: plain http only")
	}
	cc, err := grpc.NewClient(strings.TrimPrefix(s.Endpoint(), "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// abandonCall starts a Watch (watch set) or a Range of the prefix ab/ on
// cc and returns without reading its reply; the call lives until cc is
// closed.
func abandonCall(t testing.TB, cc *grpc.ClientConn, watch bool) {
	t.Helper()
	c := context.Background()
	if watch {
		ws, err := pb.NewWatchClient(cc).Watch(c)
		if err != nil {
			t.Fatal(err)
		}
		req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
			Key: []byte("ab/"), RangeEnd: []byte("ab0"), StartRevision: 1,
		}}}
		if err := ws.Send(req); err != nil {
			t.Fatal(err)
		}
		return
	}
	// Range as a stream, so that its reply can be left unread.
	st, err := cc.NewStream(c, &grpc.StreamDesc{ServerStreams: true}, "/etcdserverpb.KV/Range")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SendMsg(&pb.RangeRequest{Key: []byte("ab/"), RangeEnd: []byte("ab0")}); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
}

// settledRSS returns pid's VmRSS once it has stopped moving: two readings
// 500 ms apart within 1 MiB of each other, or the last of 60 readings.
func settledRSS(t testing.TB, pid int) int64 {
	t.Helper()
	last := procRSS(t, pid)
	for range 60 {
		time.Sleep(500 * time.Millisecond)
		rss := procRSS(t, pid)
		if d := rss - last; d < 1<<20 && d > -(1<<20) {
			return rss
		}
		last = rss
	}
	return last
}

// procRSS returns the VmRSS of pid in bytes.
func procRSS(t testing.TB, pid int) int64 {
	t.Helper()
	rss := procStatusBytes(pid, "VmRSS:")
	if rss == 0 {
		t.Fatalf("no VmRSS for process %d", pid)
	}
	return rss
}
