package applier

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/internal/memberstate"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/mvcc"
)

func putEntry(t *testing.T, index, id uint64, key string) *raftpb.Entry {
	t.Helper()
	data, err := proto.Marshal(&pb.InternalRaftRequest{
		Header: &pb.RequestHeader{ID: id},
		Put:    &pb.PutRequest{Key: []byte(key), Value: []byte("v")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &raftpb.Entry{Index: new(index), Term: new(uint64(1)), Type: raftpb.EntryNormal.Enum(), Data: data}
}

func TestApplyTriggersWaitersOnceAndSnapshots(t *testing.T) {
	store, err := mvcc.Open(filepath.Join(t.TempDir(), "db"), mvcc.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sys := actor.NewActorSystem()
	state := memberstate.New(memberstate.Member{ID: 1, Name: "m"}, 1)
	snaps := actortest.NewRecorder(8)
	raftRec := actortest.NewRecorder(8)
	pid := sys.Root.Spawn(Props(Config{
		Store: store, State: state, Snapshotter: sys.Root.Spawn(snaps.Props()), SnapshotCount: 3,
		Logger: slog.New(slog.DiscardHandler),
	}))
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	// The raft actor's part: send Apply as a request, expect Applied back.
	raftPID := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.Apply:
			ctx.Request(pid, m)
		case *messages.Applied:
			raftRec.C <- m
		}
	}))
	w1, w2 := state.Waits.Register(11), state.Waits.Register(12)
	batch := &raftpb.Message{Entries: []*raftpb.Entry{
		{Index: new(uint64(1)), Term: new(uint64(1)), Type: raftpb.EntryNormal.Enum()}, // a leader's empty entry
		putEntry(t, 2, 11, "a"),
		putEntry(t, 3, 12, "b"),
	}}
	sys.Root.Send(raftPID, &messages.Apply{Msg: batch, ConfState: &raftpb.ConfState{Voters: []uint64{1}}})
	for i, w := range []<-chan any{w1, w2} {
		select {
		case v := <-w:
			res := v.(memberstate.Result)
			if res.Err != nil || res.Resp.(*pb.PutResponse).Header.Revision != int64(i+2) {
				t.Fatalf("waiter %d got %+v", i, res)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("waiter %d not triggered", i)
		}
	}
	actortest.Next[*messages.Applied](t, raftRec, 5*time.Second)
	if got := state.Applied.Current(); got != 3 {
		t.Fatalf("applied index %d, want 3", got)
	}
	// Three entries with --snapshot-count=3: a snapshot at 3, after a
	// backend commit.
	ss := actortest.Next[*messages.SaveSnapshot](t, snaps, 5*time.Second)
	if ss.Index != 3 {
		t.Fatalf("snapshot at %d, want 3", ss.Index)
	}
	// Replaying the same entries (a WAL replay) applies nothing twice.
	w3 := state.Waits.Register(12)
	sys.Root.Send(raftPID, &messages.Apply{Msg: &raftpb.Message{Entries: []*raftpb.Entry{putEntry(t, 3, 12, "b")}}})
	actortest.Next[*messages.Applied](t, raftRec, 5*time.Second)
	select {
	case v := <-w3:
		t.Fatalf("replayed entry triggered its waiter again: %v", v)
	default:
	}
	if store.Rev() != 3 {
		t.Fatalf("store revision %d after replay, want 3", store.Rev())
	}
}
