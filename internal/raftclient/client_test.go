package raftclient

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/membership"
)

// fakeRaft answers as the raft actor and applier would: a Put with a
// PutResponse, a ReadIndex with index 7, a conf change with one member;
// anything with the key "silent" gets no answer, even to its withdrawal,
// and one with the key "parked" waits for its withdrawal, answered with
// ErrNotProposed as the raft actor answers a proposal parked for want of
// a leader.
func fakeRaft(w *Waits) actor.ReceiveFunc {
	parked := map[uint64]bool{}
	return func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.Propose:
			var req pb.InternalRaftRequest
			if err := proto.Unmarshal(m.Data, &req); err != nil {
				panic(err)
			}
			switch string(req.GetPut().GetKey()) {
			case "silent":
				return
			case "parked":
				parked[m.ID] = true
				return
			}
			w.Proposals.Trigger(m.ID, Result{Resp: &pb.PutResponse{Header: &pb.ResponseHeader{Revision: 2}}})
		case *messages.WithdrawProposal:
			if parked[m.ID] {
				delete(parked, m.ID)
				w.Proposals.Trigger(m.ID, Result{Err: ErrNotProposed})
			}
		case *messages.ReadIndex:
			w.Reads.Trigger(m.ID, ReadResult{Index: 7})
		case *messages.ProposeConfChange:
			w.ConfChanges.Trigger(m.CC.GetId(), ConfChangeResult{Members: []membership.Member{{ID: 9}}})
		}
	}
}

func newClient(t *testing.T) (*Client, *actor.ActorSystem) {
	sys := actor.NewActorSystem()
	w := NewWaits()
	c := New(Config{
		Root: sys.Root, View: memberview.New(memberview.Member{ID: 1}, 1), Waits: w,
		RequestTimeout: time.Second, MaxRequestBytes: 64,
	})
	raft := sys.Root.Spawn(actor.PropsFromFunc(fakeRaft(w)))
	c.SetCore(&Core{Raft: raft})
	t.Cleanup(func() {
		_ = sys.Root.StopFuture(raft).Wait()
		sys.Shutdown()
	})
	return c, sys
}

func TestClientRoundTrips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newClient(t)
		ctx := context.Background()
		put, err := ProposeAs[*pb.PutResponse](ctx, c, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k")}})
		if err != nil || put.GetHeader().GetRevision() != 2 {
			t.Fatalf("propose: %v, %v", put, err)
		}
		if _, err := ProposeAs[*pb.TxnResponse](ctx, c, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k")}}); status.Code(err) != codes.Internal {
			t.Fatalf("a response of another type: %v, want Internal", err)
		}
		if idx, err := c.ReadIndex(ctx); err != nil || idx != 7 {
			t.Fatalf("read index %d, %v", idx, err)
		}
		ms, err := c.ProposeConfChange(ctx, &raftpb.ConfChange{})
		if err != nil || len(ms) != 1 || ms[0].ID != 9 {
			t.Fatalf("conf change %v, %v", ms, err)
		}
		if n := c.Pending(); n != 0 {
			t.Fatalf("%d requests still pending", n)
		}
	})
}

func TestClientErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newClient(t)
		ctx := context.Background()
		big := &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: make([]byte, 100)}}
		if _, err := c.Propose(ctx, big); !errors.Is(err, rpctypes.ErrGRPCRequestTooLarge) {
			t.Fatalf("large request: %v", err)
		}
		silent := &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("silent")}}
		start := time.Now()
		if _, err := c.Propose(ctx, silent); !errors.Is(err, rpctypes.ErrGRPCTimeout) || time.Since(start) != time.Second+withdrawGrace {
			t.Fatalf("unanswered request: %v after %v, want the request timeout after the withdrawal's grace", err, time.Since(start))
		}
		// At the request timeout the raft actor says whether raft ever
		// took the proposal.
		parked := &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("parked")}}
		start = time.Now()
		if _, err := c.Propose(ctx, parked); !errors.Is(err, ErrNotProposed) || time.Since(start) != time.Second {
			t.Fatalf("proposal parked for a leader: %v after %v, want ErrNotProposed after the request timeout", err, time.Since(start))
		}
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(10*time.Millisecond, cancel)
		if _, err := c.Propose(cctx, silent); status.Code(err) != codes.Canceled {
			t.Fatalf("canceled request: %v", err)
		}
		if n := c.Pending(); n != 0 {
			t.Fatalf("%d given-up requests still registered", n)
		}
		c.SetCore(nil)
		if _, err := c.ReadIndex(ctx); !errors.Is(err, ErrStopped) {
			t.Fatalf("core down: %v", err)
		}
	})
}

func TestFailAllAnswersEveryRegistry(t *testing.T) {
	w := NewWaits()
	p, r, cc := w.Proposals.Register(1), w.Reads.Register(2), w.ConfChanges.Register(3)
	if n := w.FailAll(ErrStopped); n != 3 {
		t.Fatalf("failed %d, want 3", n)
	}
	if (<-p).Err != ErrStopped || (<-r).Err != ErrStopped || (<-cc).Err != ErrStopped {
		t.Fatal("a waiter did not get the error")
	}
}

// TestWaitApplied: a read whose index is applied returns at once without
// allocating (no timer, no child context: the common case of a read);
// one ahead of the applier waits for it, and gives up at the request
// timeout with etcd's context error.
func TestWaitApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newClient(t)
		ctx := context.Background()
		c.cfg.Waits.Applied.Advance(5)
		if n := testing.AllocsPerRun(100, func() {
			if err := c.WaitApplied(ctx, 5); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("WaitApplied of an applied index allocated %v times, want 0", n)
		}
		done := make(chan error, 1)
		go func() { done <- c.WaitApplied(ctx, 6) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("WaitApplied(6) returned %v before the applier reached 6", err)
		default:
		}
		c.cfg.Waits.Applied.Advance(6)
		if err := <-done; err != nil {
			t.Fatalf("WaitApplied(6) after Advance(6): %v", err)
		}
		start := time.Now()
		if err := c.WaitApplied(ctx, 9); err == nil || time.Since(start) != time.Second {
			t.Fatalf("WaitApplied(9) never applied: %v after %v, want an error after the request timeout", err, time.Since(start))
		}
	})
}

// TestLocalReadIndex: while the core's raft actor publishes a read index,
// a linearizable read takes it without a message to the raft actor and
// returns once the applier reached it (not before: the applied index
// alone may be behind writes acknowledged elsewhere); withdrawn, reads
// take the round again.
func TestLocalReadIndex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actor.NewActorSystem()
		w := NewWaits()
		c := New(Config{Root: sys.Root, View: memberview.New(memberview.Member{ID: 1}, 1), Waits: w, RequestTimeout: time.Second})
		var readIndexes atomic.Int32
		answer := fakeRaft(w)
		raft := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
			if _, ok := ctx.Message().(*messages.ReadIndex); ok {
				readIndexes.Add(1)
			}
			answer(ctx)
		}))
		t.Cleanup(func() {
			_ = sys.Root.StopFuture(raft).Wait()
			sys.Shutdown()
		})
		local := &LocalReadIndex{}
		c.SetCore(&Core{Raft: raft, LocalReads: local})
		ctx := context.Background()
		w.Applied.Advance(10)
		local.Publish(12)

		done := make(chan error, 1)
		go func() { done <- c.LinearizableRead(ctx) }()
		for _, applied := range []uint64{11, 12} {
			synctest.Wait()
			select {
			case err := <-done:
				t.Fatalf("linearizable read returned %v with %d applied, want it waiting for 12", err, w.Applied.Current())
			default:
			}
			w.Applied.Advance(applied)
		}
		if err := <-done; err != nil {
			t.Fatalf("linearizable read once 12 was applied: %v", err)
		}
		if idx, err := c.ReadIndex(ctx); err != nil || idx != 12 {
			t.Fatalf("read index %d, %v, want the published 12", idx, err)
		}
		synctest.Wait()
		if n := readIndexes.Load(); n != 0 {
			t.Fatalf("%d ReadIndex messages reached the raft actor, want none", n)
		}

		local.Publish(0)
		if idx, err := c.ReadIndex(ctx); err != nil || idx != 7 {
			t.Fatalf("read index %d, %v after the withdrawal, want the round's 7", idx, err)
		}
		if n := readIndexes.Load(); n != 1 {
			t.Fatalf("%d ReadIndex messages after the withdrawal, want 1", n)
		}
		local.Publish(12)
		c.SetCore(nil)
		if _, err := c.ReadIndex(ctx); !errors.Is(err, ErrStopped) {
			t.Fatalf("read index with the core down: %v, want ErrStopped", err)
		}
	})
}

// BenchmarkReadIndex measures a read index round trip through a raft
// actor that answers at once: the client's share of a linearizable read.
func BenchmarkReadIndex(b *testing.B) {
	sys := actor.NewActorSystem()
	w := NewWaits()
	c := New(Config{Root: sys.Root, View: memberview.New(memberview.Member{ID: 1}, 1), Waits: w, RequestTimeout: time.Second})
	raft := sys.Root.Spawn(actor.PropsFromFunc(fakeRaft(w)))
	c.SetCore(&Core{Raft: raft})
	defer func() {
		_ = sys.Root.StopFuture(raft).Wait()
		sys.Shutdown()
	}()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.ReadIndex(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalReadIndex is BenchmarkReadIndex with a read index
// published: no message, no wait.
func BenchmarkLocalReadIndex(b *testing.B) {
	sys := actor.NewActorSystem()
	w := NewWaits()
	c := New(Config{Root: sys.Root, View: memberview.New(memberview.Member{ID: 1}, 1), Waits: w, RequestTimeout: time.Second})
	local := &LocalReadIndex{}
	local.Publish(7)
	c.SetCore(&Core{Raft: actor.NewPID("nowhere", "raft"), LocalReads: local})
	defer sys.Shutdown()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.ReadIndex(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
