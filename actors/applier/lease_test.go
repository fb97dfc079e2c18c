package applier

import (
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/internal/memberstate"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// TestApplyLeaseRequests: grant, checkpoint and revoke entries reach the
// store and their waiters get the store's results and errors.
func TestApplyLeaseRequests(t *testing.T) {
	store, err := mvcc.Open(filepath.Join(t.TempDir(), "db"), mvcc.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sys := actor.NewActorSystem()
	state := memberstate.New(memberstate.Member{ID: 1, Name: "m"}, 1)
	raftRec := actortest.NewRecorder(8)
	pid := sys.Root.Spawn(Props(Config{Store: store, State: state, Logger: slog.New(slog.DiscardHandler)}))
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	raftPID := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.Apply:
			ctx.Request(pid, m)
		case *messages.Applied:
			raftRec.C <- m
		}
	}))
	ws := []<-chan any{state.Waits.Register(1), state.Waits.Register(2), state.Waits.Register(3), state.Waits.Register(4)}
	sys.Root.Send(raftPID, &messages.Apply{Msg: &raftpb.Message{Entries: []*raftpb.Entry{
		entry(t, 1, 1, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 30}}),
		entry(t, 2, 2, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 30}}),
		entry(t, 3, 3, &pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{
			Checkpoints: []*pb.LeaseCheckpoint{{ID: 7, Remaining_TTL: 12}}}}),
		entry(t, 4, 4, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 8}}),
	}}})
	actortest.Next[*messages.Applied](t, raftRec, 5*time.Second)
	var res []memberstate.Result
	for i, w := range ws {
		select {
		case v := <-w:
			res = append(res, v.(memberstate.Result))
		case <-time.After(5 * time.Second):
			t.Fatalf("waiter %d not triggered", i)
		}
	}
	if g, ok := res[0].Resp.(*pb.LeaseGrantResponse); !ok || g.ID != 7 || g.TTL != 30 {
		t.Fatalf("grant result %+v", res[0])
	}
	if !errors.Is(res[1].Err, mvcc.ErrLeaseExists) || !errors.Is(res[3].Err, mvcc.ErrLeaseNotFound) {
		t.Fatalf("errors: grant again %v, revoke unknown %v", res[1].Err, res[3].Err)
	}
	if l, _, ok := store.Lease(7, false); !ok || l.RemainingTTL != 12 {
		t.Fatalf("lease after checkpoint: %+v %v", l, ok)
	}
	if store.ConsistentIndex() != 4 {
		t.Fatalf("consistent index %d, want 4", store.ConsistentIndex())
	}
}
