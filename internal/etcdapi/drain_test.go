package etcdapi

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/troupedb/troupe/internal/hublink"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/raftclient"
)

// idleStream is a client stream that sends nothing and reads everything:
// Recv waits until the stream's context ends, as a real one does.
type idleStream[Req, Resp any] struct {
	grpc.ServerStream // not used by the handlers under test
	ctx               context.Context
}

func (s idleStream[Req, Resp]) Context() context.Context { return s.ctx }
func (s idleStream[Req, Resp]) Send(*Resp) error         { return nil }
func (s idleStream[Req, Resp]) Recv() (*Req, error) {
	<-s.ctx.Done()
	return nil, s.ctx.Err()
}

// TestDrainEndsStreams: a stop must not wait for clients to close their
// Watch and LeaseKeepAlive streams (etcd's streams end with its server);
// Drain ends both with "server stopped", which clientv3 retries elsewhere.
func TestDrainEndsStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actor.NewActorSystem()
		defer sys.Shutdown()
		rc := raftclient.New(raftclient.Config{
			Root: sys.Root, View: memberview.New(memberview.Member{ID: 1}, 1),
			Waits: raftclient.NewWaits(), RequestTimeout: time.Second,
		})
		s := New(Config{Raft: rc, Hub: &hublink.Link{}, Root: sys.Root, MaxRequestBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		watchDone, leaseDone := make(chan error, 1), make(chan error, 1)
		go func() { watchDone <- s.watch.Watch(idleStream[pb.WatchRequest, pb.WatchResponse]{ctx: ctx}) }()
		go func() {
			leaseDone <- s.lease.LeaseKeepAlive(idleStream[pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse]{ctx: ctx})
		}()
		time.Sleep(time.Hour) // virtual: the streams stay open on their own
		select {
		case err := <-watchDone:
			t.Fatalf("watch stream ended before the drain: %v", err)
		case err := <-leaseDone:
			t.Fatalf("keep-alive stream ended before the drain: %v", err)
		default:
		}
		s.Drain()
		s.Drain() // twice is harmless
		if err := <-watchDone; !errors.Is(err, raftclient.ErrStopped) {
			t.Fatalf("watch stream ended with %v, want %v", err, raftclient.ErrStopped)
		}
		if err := <-leaseDone; !errors.Is(err, raftclient.ErrStopped) {
			t.Fatalf("keep-alive stream ended with %v, want %v", err, raftclient.ErrStopped)
		}
		cancel() // gRPC ends the stream's context once the handler returned
		synctest.Wait()
	})
}
