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
	"github.com/troupedb/troupe/internal/polltest"
)

// abandonShapes are the ways a client abandons calls, as
// BenchmarkAbandonedCalls measures them.
var abandonShapes = []struct {
	name string
	// callsPerConn is how many calls share a connection; 1 gives each
	// call a connection of its own.
	callsPerConn int
	// cancel ends each call from the client (RST_STREAM) while its
	// connection stays open; otherwise the calls end when the client
	// closes its connections, as when its process dies.
	cancel bool
}{
	// A stuck or paused client per connection: clients that each hold a
	// connection of their own (etcdctl, small services) and stopped
	// reading.
	{name: "stalled", callsPerConn: 1},
	// A stuck client with many calls on a few connections (clientv3
	// multiplexes a process's calls on one): what was not sent waits at
	// the server behind the connection's flow control window.
	{name: "stalled-shared", callsPerConn: 100},
	// A client that cancels its calls (a context deadline, a watch it no
	// longer wants) and keeps its connection.
	{name: "cancelled", callsPerConn: 1, cancel: true},
	// The same on a few shared connections.
	{name: "cancelled-shared", callsPerConn: 100, cancel: true},
}

// BenchmarkAbandonedCalls measures what calls a client abandons cost a
// server's memory: b.N calls, half Watch (of a prefix from revision 1) and
// half Range (of the same prefix), whose client never reads the reply, in
// each shape of abandonShapes. The prefix holds 100 keys of 256-byte
// values, so each reply is about 27 KiB. It reports the server's VmRSS
// growth over the idle server while the calls are held (held-rss-MiB) and
// after they ended (after-rss-MiB: the client cancelled them, or closed
// its connections; see endedRSS), for troupe and etcd in the same run.
// Run for example
//
//	go test ./e2e -run '^$' -bench BenchmarkAbandonedCalls -benchtime 2000x
func BenchmarkAbandonedCalls(b *testing.B) {
	for _, shape := range abandonShapes {
		b.Run("shape="+shape.name, func(b *testing.B) {
			watchBenchServers(b, func(b *testing.B, s *e2etest.Server) {
				putAbandonKeys(b, s)
				idle := settledRSS(b, s.PID())
				b.ResetTimer()
				calls := abandonCalls(b, s, b.N, shape.callsPerConn)
				held := settledRSS(b, s.PID())
				if shape.cancel {
					calls.cancel()
				} else {
					calls.close()
				}
				after := endedRSS(b, s.PID())
				b.StopTimer()
				b.ReportMetric(float64(idle)/(1<<20), "idle-rss-MiB")
				b.ReportMetric(float64(held-idle)/(1<<20), "held-rss-MiB")
				b.ReportMetric(float64(after-idle)/(1<<20), "after-rss-MiB")
			})
		})
	}
}

// TestAbandonedCallsMemory checks that calls a client abandons (see
// BenchmarkAbandonedCalls) cost troupe less than 64 KiB of resident
// memory each while they are held, 1,000 of them, each on a connection of
// its own, and that troupe gives the memory back once the client closed
// the connections: within 30 s its RSS is less than 24 MiB above the idle
// server's (about +5 MiB with internal/memrelease; without it the growth
// stays where it was while the calls were held, about +40 MiB). etcd
// 3.6.8 needs about 110 KiB a call and keeps it; its figures are logged.
func TestAbandonedCallsMemory(t *testing.T) {
	const calls, perCallBytes, afterBytes = 1000, 64 << 10, 24 << 20
	s := e2etest.Start(t, e2etest.Config{})
	putAbandonKeys(t, s)
	idle := settledRSS(t, s.PID())
	ab := abandonCalls(t, s, calls, 1)
	grew := settledRSS(t, s.PID()) - idle
	t.Logf("%s: %d abandoned calls grew RSS by %.1f MiB (%.1f KiB each)", s.Kind(), calls, float64(grew)/(1<<20), float64(grew)/calls/1024)
	if s.Kind() == e2etest.Troupe && grew > calls*perCallBytes {
		t.Errorf("%d abandoned calls grew RSS by %.1f MiB, want < %d MiB", calls, float64(grew)/(1<<20), calls*perCallBytes>>20)
	}
	ab.close()
	if s.Kind() != e2etest.Troupe {
		t.Logf("%s: after the connections closed RSS is %.1f MiB above idle", s.Kind(), float64(endedRSS(t, s.PID())-idle)/(1<<20))
		return
	}
	polltest.Eventually(t, 30*time.Second, "RSS back near idle after the abandoned calls' connections closed", func() (bool, string) {
		after := procRSS(t, s.PID()) - idle
		return after < afterBytes, fmt.Sprintf("%.1f MiB above idle, want < %d MiB", float64(after)/(1<<20), afterBytes>>20)
	})
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

// abandonedCalls are calls a client started and never read, with their
// connections.
type abandonedCalls struct {
	conns   []*grpc.ClientConn
	cancels []context.CancelFunc
}

// cancel ends every call from the client; the connections stay open.
func (a *abandonedCalls) cancel() {
	for _, c := range a.cancels {
		c()
	}
}

// close closes every connection, which ends their calls.
func (a *abandonedCalls) close() {
	for _, cc := range a.conns {
		cc.Close()
	}
}

// abandonCalls starts n calls on s, half Watch and half Range,
// callsPerConn of them on each connection, and never reads their
// replies. It returns once the server answers a read, with the calls
// (their connections are closed at cleanup).
func abandonCalls(t testing.TB, s *e2etest.Server, n, callsPerConn int) *abandonedCalls {
	t.Helper()
	a := &abandonedCalls{}
	t.Cleanup(a.close)
	for i := range n {
		if i%callsPerConn == 0 {
			a.conns = append(a.conns, abandonConn(t, s))
		}
		c, cancel := context.WithCancel(context.Background())
		a.cancels = append(a.cancels, cancel)
		abandonCall(t, c, a.conns[len(a.conns)-1], i%2 == 0)
	}
	// The calls get no reply to wait for: a read shows the server is up,
	// and settledRSS waits until it has served them.
	if _, err := s.Client(t).Get(context.Background(), "ab/0000"); err != nil {
		t.Fatal(err)
	}
	return a
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
// cc and returns without reading its reply; the call lives until c is
// cancelled or cc is closed.
func abandonCall(t testing.TB, c context.Context, cc *grpc.ClientConn, watch bool) {
	t.Helper()
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

// endedRSS is settledRSS a while after calls ended: five seconds first, so
// that a server that gives memory back when many calls end (troupe's
// memrelease checks every second and waits for the burst to settle) has
// done so. Both servers get the same wait.
func endedRSS(t testing.TB, pid int) int64 {
	t.Helper()
	time.Sleep(5 * time.Second)
	return settledRSS(t, pid)
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
