package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// rawWatch is a Watch stream on the raw gRPC API, for the exact shape of
// every response.
type rawWatch struct {
	t      testing.TB
	stream pb.Watch_WatchClient
	recv   chan *pb.WatchResponse
}

func openRawWatch(t testing.TB, cli *clientv3.Client) *rawWatch {
	t.Helper()
	c, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(c)
	must(t, err)
	rw := &rawWatch{t: t, stream: stream, recv: make(chan *pb.WatchResponse, 1024)}
	go func() {
		defer close(rw.recv)
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			rw.recv <- r
		}
	}()
	return rw
}

func (rw *rawWatch) send(req *pb.WatchRequest) {
	rw.t.Helper()
	must(rw.t, rw.stream.Send(req))
}

func (rw *rawWatch) create(c *pb.WatchCreateRequest) {
	rw.t.Helper()
	rw.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: c}})
}

func (rw *rawWatch) cancel(id int64) {
	rw.t.Helper()
	rw.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: id}}})
}

// next returns the next response as text (see respString).
func (rw *rawWatch) next() string {
	rw.t.Helper()
	select {
	case r, ok := <-rw.recv:
		if !ok {
			rw.t.Fatal("watch stream ended")
		}
		return respString(r)
	case <-time.After(10 * time.Second):
		rw.t.Fatal("no watch response within 10s")
	}
	return ""
}

// none checks that nothing arrives for a while.
func (rw *rawWatch) none(d time.Duration) {
	rw.t.Helper()
	select {
	case r := <-rw.recv:
		rw.t.Fatalf("unexpected response %s", respString(r))
	case <-time.After(d):
	}
}

func (rw *rawWatch) expect(want string) {
	rw.t.Helper()
	if got := rw.next(); got != want {
		rw.t.Fatalf("watch response\n got %s\nwant %s", got, want)
	}
}

// respString is a response without the ids and term of its header:
// "rev=5 id=0 created canceled(reason) compact=3 frag [PUT k=v@5/5/1 prev=...]".
func respString(r *pb.WatchResponse) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rev=%d id=%d", r.Header.GetRevision(), r.WatchId)
	if r.Created {
		b.WriteString(" created")
	}
	if r.Canceled {
		fmt.Fprintf(&b, " canceled(%s)", r.CancelReason)
	}
	if r.CompactRevision != 0 {
		fmt.Fprintf(&b, " compact=%d", r.CompactRevision)
	}
	if r.Fragment {
		b.WriteString(" frag")
	}
	if len(r.Events) > 0 {
		b.WriteString(" [")
		for i, e := range r.Events {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString(eventString(e))
		}
		b.WriteString("]")
	}
	return b.String()
}

func eventString(e *mvccpb.Event) string {
	kv := e.Kv
	s := fmt.Sprintf("DELETE %s@%d", kv.Key, kv.ModRevision)
	if e.Type == mvccpb.PUT {
		s = fmt.Sprintf("PUT %s=%s@%d/%d/%d", kv.Key, kv.Value, kv.ModRevision, kv.CreateRevision, kv.Version)
	}
	if p := e.PrevKv; p != nil {
		s += fmt.Sprintf(" prev=%s@%d", p.Value, p.ModRevision)
	}
	return s
}

func wput(t testing.TB, cli *clientv3.Client, k, v string) int64 {
	t.Helper()
	r, err := cli.Put(ctx(t), k, v)
	must(t, err)
	return r.Header.Revision
}

// TestWatchCreateCancelShapes checks created, event and canceled responses
// of the raw API field by field.
func TestWatchCreateCancelShapes(t *testing.T) {
	_, cli := startServer(t)
	wput(t, cli, "a", "1") // rev 2
	rw := openRawWatch(t, cli)
	rw.create(&pb.WatchCreateRequest{Key: []byte("a")})
	rw.expect("rev=2 id=0 created")
	rw.create(&pb.WatchCreateRequest{Key: []byte("a"), RangeEnd: []byte("c"), PrevKv: true})
	rw.expect("rev=2 id=1 created")
	wput(t, cli, "a", "2") // rev 3
	got := []string{rw.next(), rw.next()}
	want := map[string]bool{
		"rev=3 id=0 [PUT a=2@3/2/2]":          true,
		"rev=3 id=1 [PUT a=2@3/2/2 prev=1@2]": true,
	}
	for _, g := range got {
		if !want[g] {
			t.Fatalf("event responses %q, want %v", got, want)
		}
		delete(want, g)
	}
	wput(t, cli, "b", "1") // rev 4: only watch 1
	rw.expect("rev=4 id=1 [PUT b=1@4/4/1]")
	_, err := cli.Delete(ctx(t), "b") // rev 5
	must(t, err)
	rw.expect("rev=5 id=1 [DELETE b@5 prev=1@4]")

	t.Run("client chosen id", func(t *testing.T) {
		rw.create(&pb.WatchCreateRequest{Key: []byte("x"), WatchId: 7})
		rw.expect("rev=5 id=7 created")
		rw.create(&pb.WatchCreateRequest{Key: []byte("x"), WatchId: 7})
		rw.expect("rev=5 id=-1 created canceled(mvcc: duplicate watch ID provided on the WatchStream)")
	})
	t.Run("empty range", func(t *testing.T) {
		rw.create(&pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte("a")})
		rw.expect("rev=5 id=-1 created canceled(mvcc: watcher range is empty)")
	})
	t.Run("negative start revision", func(t *testing.T) {
		// as etcd >= 3.6.6, before any other check: a cancel as for a
		// compacted revision, without a compact revision, and no watch
		rw.create(&pb.WatchCreateRequest{Key: []byte("a"), StartRevision: -1})
		rw.expect("rev=5 id=-1 created canceled(etcdserver: mvcc: required revision has been compacted)")
		rw.create(&pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte("a"), StartRevision: -5, WatchId: 7})
		rw.expect("rev=5 id=-1 created canceled(etcdserver: mvcc: required revision has been compacted)")
		wch := cli.Watch(ctx(t), "a", clientv3.WithRev(-1))
		select {
		case r, ok := <-wch:
			if !ok || !errors.Is(r.Err(), rpctypes.ErrCompacted) || !r.Canceled || r.CompactRevision != 0 {
				t.Fatalf("clientv3 watch from revision -1: open %v, %+v, err %v; want canceled with ErrCompacted", ok, r, r.Err())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("clientv3 watch from revision -1: no response within 10s")
		}
	})
	t.Run("cancel", func(t *testing.T) {
		rw.cancel(1)
		rw.expect("rev=5 id=1 canceled()")
		rw.cancel(42) // unknown: no answer
		rw.none(300 * time.Millisecond)
		wput(t, cli, "b", "2") // rev 6: watch 1 is gone
		rw.none(300 * time.Millisecond)
	})
	t.Run("progress request", func(t *testing.T) {
		rw.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}})
		rw.expect("rev=6 id=-1")
	})
	t.Run("auto ids skip used ones", func(t *testing.T) {
		rw.create(&pb.WatchCreateRequest{Key: []byte("y"), WatchId: 3})
		rw.expect("rev=6 id=3 created")
		rw.create(&pb.WatchCreateRequest{Key: []byte("y")})
		rw.expect("rev=6 id=2 created")
		rw.create(&pb.WatchCreateRequest{Key: []byte("y")})
		rw.expect("rev=6 id=4 created")
	})
}

// TestWatchStartRevisionAndFilters replays history from a start revision
// with filters.
func TestWatchStartRevisionAndFilters(t *testing.T) {
	_, cli := startServer(t)
	wput(t, cli, "k", "1")            // 2
	wput(t, cli, "k", "2")            // 3
	_, err := cli.Delete(ctx(t), "k") // 4
	must(t, err)
	wput(t, cli, "k", "3")     // 5
	wput(t, cli, "other", "1") // 6
	rw := openRawWatch(t, cli)
	rw.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 2, PrevKv: true})
	rw.expect("rev=6 id=0 created")
	rw.expect("rev=6 id=0 [PUT k=1@2/2/1 PUT k=2@3/2/2 prev=1@2 DELETE k@4 prev=2@3 PUT k=3@5/5/1]")
	rw.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 3, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}})
	rw.expect("rev=6 id=1 created")
	rw.expect("rev=6 id=1 [DELETE k@4]")
	rw.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 3, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}})
	rw.expect("rev=6 id=2 created")
	rw.expect("rev=6 id=2 [PUT k=2@3/2/2 PUT k=3@5/5/1]")
	// a prefix from the start, then live events
	rw.create(&pb.WatchCreateRequest{Key: []byte("\x00"), RangeEnd: []byte("\x00"), StartRevision: 5})
	rw.expect("rev=6 id=3 created")
	rw.expect("rev=6 id=3 [PUT k=3@5/5/1 PUT other=1@6/6/1]")
	_, err = cli.Delete(ctx(t), "k") // 7
	must(t, err)
	got := map[string]bool{}
	for i := 0; i < 3; i++ {
		got[rw.next()] = true
	}
	for _, w := range []string{"rev=7 id=0 [DELETE k@7 prev=3@5]", "rev=7 id=1 [DELETE k@7]", "rev=7 id=3 [DELETE k@7]"} {
		if !got[w] {
			t.Fatalf("after delete got %v, missing %s", got, w)
		}
	}
	rw.none(300 * time.Millisecond) // NODELETE watch 2 sees nothing
}

// TestWatchCompacted: a watch from a compacted revision is canceled with
// the compaction revision.
func TestWatchCompacted(t *testing.T) {
	_, cli := startServer(t)
	for i := 0; i < 5; i++ {
		wput(t, cli, "k", fmt.Sprint(i)) // 2..6
	}
	_, err := cli.Compact(ctx(t), 4)
	must(t, err)
	rw := openRawWatch(t, cli)
	rw.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 2})
	rw.expect("rev=6 id=0 created")
	rw.expect("rev=0 id=0 canceled() compact=4")
	// from the compaction revision itself, as etcd: allowed
	rw.create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 4})
	rw.expect("rev=6 id=1 created")
	rw.expect("rev=6 id=1 [PUT k=2@4/2/3 PUT k=3@5/2/4 PUT k=4@6/2/5]")

	// clientv3's view
	wc := cli.Watch(ctx(t), "k", clientv3.WithRev(3))
	select {
	case r := <-wc:
		if r.CompactRevision != 4 || !r.Canceled || r.Err() == nil {
			t.Fatalf("clientv3 compacted watch: %+v err %v", r, r.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no compaction response")
	}
}

// TestWatchFragment: a large response is split in fragments of about
// --max-request-bytes for a watch that asks for it.
func TestWatchFragment(t *testing.T) {
	s := startServerArgs(t, "--max-request-bytes=1500")
	cli := s.Client(t)
	big := strings.Repeat("x", 1000)
	start := wput(t, cli, "f1", big)
	wput(t, cli, "f2", big)
	wput(t, cli, "f3", big)
	rw := openRawWatch(t, cli)
	rw.create(&pb.WatchCreateRequest{Key: []byte("f"), RangeEnd: []byte("g"), StartRevision: start, Fragment: true})
	rw.expect("rev=4 id=0 created")
	var evs int
	for frags := 0; ; frags++ {
		r := <-rw.recv
		if r == nil {
			t.Fatal("stream ended")
		}
		evs += len(r.Events)
		if !r.Fragment {
			break
		}
		if frags > 3 {
			t.Fatal("too many fragments")
		}
	}
	if evs != 3 {
		t.Fatalf("fragments carried %d events, want 3", evs)
	}
	// with clientv3, which joins fragments
	wc := cli.Watch(ctx(t), "f", clientv3.WithPrefix(), clientv3.WithRev(start), clientv3.WithFragment())
	r := <-wc
	if len(r.Events) != 3 {
		t.Fatalf("clientv3 joined %d events, want 3", len(r.Events))
	}
}

func startServerArgs(t testing.TB, args ...string) *e2etest.Server {
	t.Helper()
	return e2etest.Start(t, e2etest.Config{Args: args})
}

// TestWatchProgressNotify: a watch with progress_notify gets an empty
// response at the interval when nothing happens.
func TestWatchProgressNotify(t *testing.T) {
	s := startServerArgs(t, "--experimental-watch-progress-notify-interval=200ms")
	cli := s.Client(t)
	rev := wput(t, cli, "p", "1")
	rw := openRawWatch(t, cli)
	rw.create(&pb.WatchCreateRequest{Key: []byte("p"), ProgressNotify: true})
	rw.expect(fmt.Sprintf("rev=%d id=0 created", rev))
	// the first tick may come before the watch is synced; within a few
	// ticks a progress notification arrives
	deadline := time.After(5 * time.Second)
	for {
		select {
		case r := <-rw.recv:
			if got := respString(r); got == fmt.Sprintf("rev=%d id=0", rev) {
				return
			} else {
				t.Fatalf("unexpected %s", got)
			}
		case <-deadline:
			t.Fatal("no progress notification")
		}
	}
}
