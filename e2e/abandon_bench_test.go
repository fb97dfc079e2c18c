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
		cli := s.Client(b)
		value := strings.Repeat("v", 256)
		for i := range 100 {
			if _, err := cli.Put(context.Background(), fmt.Sprintf("ab/%04d", i), value); err != nil {
				b.Fatal(err)
			}
		}
		idle := settledRSS(b, s.PID())
		b.ResetTimer()
		conns := make([]*grpc.ClientConn, 0, b.N)
		defer func() {
			for _, cc := range conns {
				cc.Close()
			}
		}()
		for i := range b.N {
			cc := abandonConn(b, s)
			conns = append(conns, cc)
			abandonCall(b, cc, i%2 == 0)
		}
		// The calls get no reply to wait for: a read shows the server is
		// up, and settledRSS waits until it has served them.
		if _, err := cli.Get(context.Background(), "ab/0000"); err != nil {
			b.Fatal(err)
		}
		held := settledRSS(b, s.PID())
		for _, cc := range conns {
			cc.Close()
		}
		conns = conns[:0]
		after := settledRSS(b, s.PID())
		b.StopTimer()
		b.ReportMetric(float64(idle)/(1<<20), "idle-rss-MiB")
		b.ReportMetric(float64(held-idle)/(1<<20), "held-rss-MiB")
		b.ReportMetric(float64(after-idle)/(1<<20), "after-rss-MiB")
	})
}

// abandonConn is a gRPC connection of its own to s with fixed 64 KiB flow
// control windows, so that a reply the client does not read stays at the
// server beyond them.
func abandonConn(b *testing.B, s *e2etest.Server) *grpc.ClientConn {
	b.Helper()
	if s.ClientTLS() != nil {
		b.Fatal("abandonConn: plain http only")
	}
	cc, err := grpc.NewClient(strings.TrimPrefix(s.Endpoint(), "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		b.Fatal(err)
	}
	return cc
}

// abandonCall starts a Watch (watch set) or a Range of the prefix ab/ on
// cc and returns without reading its reply; the call lives until cc is
// closed.
func abandonCall(b *testing.B, cc *grpc.ClientConn, watch bool) {
	b.Helper()
	c := context.Background()
	if watch {
		ws, err := pb.NewWatchClient(cc).Watch(c)
		if err != nil {
			b.Fatal(err)
		}
		req := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
			Key: []byte("ab/"), RangeEnd: []byte("ab0"), StartRevision: 1,
		}}}
		if err := ws.Send(req); err != nil {
			b.Fatal(err)
		}
		return
	}
	// Range as a stream, so that its reply can be left unread.
	st, err := cc.NewStream(c, &grpc.StreamDesc{ServerStreams: true}, "/etcdserverpb.KV/Range")
	if err != nil {
		b.Fatal(err)
	}
	if err := st.SendMsg(&pb.RangeRequest{Key: []byte("ab/"), RangeEnd: []byte("ab0")}); err != nil {
		b.Fatal(err)
	}
	if err := st.CloseSend(); err != nil {
		b.Fatal(err)
	}
}

// settledRSS returns pid's VmRSS once it has stopped moving: two readings
// 500 ms apart within 1 MiB of each other, or the last of 60 readings.
func settledRSS(b *testing.B, pid int) int64 {
	b.Helper()
	last := vmRSS(b, pid)
	for range 60 {
		time.Sleep(500 * time.Millisecond)
		rss := vmRSS(b, pid)
		if d := rss - last; d < 1<<20 && d > -(1<<20) {
			return rss
		}
		last = rss
	}
	return last
}
