package actorapi

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/troupedb/troupe/messages"
)

// fakeWatch answers a create with created, then sends events responses
// numbered 1..n as fast as the stream lets it; it counts what it sent and
// records when a stream ended.
type fakeWatch struct {
	etcdserverpb.UnimplementedWatchServer
	n     int
	sent  atomic.Int64
	ended chan struct{}
}

func (f *fakeWatch) Watch(s etcdserverpb.Watch_WatchServer) error {
	defer close(f.ended)
	req, err := s.Recv()
	if err != nil {
		return err
	}
	id := req.GetCreateRequest().GetWatchId()
	if err := s.Send(&etcdserverpb.WatchResponse{Header: &etcdserverpb.ResponseHeader{Revision: 1}, WatchId: id, Created: true}); err != nil {
		return err
	}
	for i := 1; i <= f.n; i++ {
		ev := &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte("k"), ModRevision: int64(i)}}
		if err := s.Send(&etcdserverpb.WatchResponse{WatchId: id, Events: []*mvccpb.Event{ev}}); err != nil {
			return err
		}
		f.sent.Add(1)
	}
	<-s.Context().Done()
	return s.Context().Err()
}

// stopFirst: a server whose endpoint watched a subscriber of a client
// system that is already gone waits ~10 s in remote.Shutdown for
// protoactor's reconnect attempt; the tests stop the server first.

// TestWatchSessionWindowAndCleanup: responses arrive in order, no more
// than the window runs ahead of a subscriber that does not read, and
// closing the watcher ends the member's stream.
func TestWatchSessionWindowAndCleanup(t *testing.T) {
	fw := &fakeWatch{n: 1000, ended: make(chan struct{})}
	s := startServer(t, ServeConfig{KV: newFakeKV(), Watch: fw})
	c := newClient(t, s)
	t.Cleanup(s.Stop) // before the client's system: see stopFirst
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := c.Watch(ctx, &etcdserverpb.WatchCreateRequest{Key: []byte("k"), WatchId: 5})
	if err != nil {
		t.Fatal(err)
	}
	if w.ID != 5 || w.Created.Header.Revision != 1 {
		t.Fatalf("created %v", w.Created)
	}
	// Not reading: the session stops at the window (the client's channel
	// holds one window, the session's credits another). Wall clock on
	// purpose: nothing happening cannot be waited for, and client and
	// server talk over loopback TCP, outside any synctest bubble.
	time.Sleep(300 * time.Millisecond)
	if sent := fw.sent.Load(); sent > 2*messages.WatchWindow+1 {
		t.Fatalf("%d responses sent to a subscriber that reads nothing", sent)
	}
	for want := int64(1); want <= int64(fw.n); want++ {
		select {
		case r := <-w.C:
			if got := r.Events[0].Kv.ModRevision; got != want {
				t.Fatalf("response %d, want %d", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("stuck at %d", want)
		}
	}
	w.Close()
	select {
	case <-fw.ended:
	case <-ctx.Done():
		t.Fatal("member stream still running after the subscriber stopped")
	}
	if _, ok := <-w.C; ok {
		t.Fatal("C open after Close")
	}
}

// TestWatchSessionRefusedWithoutService: an endpoint without a watch
// service ends the stream with an error the client returns.
func TestWatchSessionRefusedWithoutService(t *testing.T) {
	s := startServer(t, ServeConfig{KV: newFakeKV()})
	c := newClient(t, s)
	t.Cleanup(s.Stop) // before the client's system: see stopFirst
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Watch(ctx, &etcdserverpb.WatchCreateRequest{Key: []byte("k")}); err == nil || err.Error() != ErrWatchUnavailable.Error() {
		t.Fatalf("watch without a service: %v, want %v", err, ErrWatchUnavailable)
	}
}
