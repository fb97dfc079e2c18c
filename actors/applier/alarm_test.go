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
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/internal/memberstate"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/alarm"
	"github.com/troupedb/troupe/persistence/mvcc"
)

func entry(t *testing.T, index, id uint64, req *pb.InternalRaftRequest) *raftpb.Entry {
	t.Helper()
	req.Header = &pb.RequestHeader{ID: id}
	data, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return &raftpb.Entry{Index: new(index), Term: new(uint64(1)), Type: raftpb.EntryNormal.Enum(), Data: data}
}

// applyAll applies ents with a new applier on store (stopped after) and
// returns the results their waiters got.
func applyAll(t *testing.T, store *mvcc.Store, state *memberstate.State, ents ...*raftpb.Entry) []memberstate.Result {
	t.Helper()
	return applyWith(t, actor.NewActorSystem(), Config{Store: store, State: state}, ents...)
}

func applyWith(t *testing.T, sys *actor.ActorSystem, cfg Config, ents ...*raftpb.Entry) []memberstate.Result {
	t.Helper()
	state := cfg.State
	cfg.Logger = slog.New(slog.DiscardHandler)
	pid := sys.Root.Spawn(Props(cfg))
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	var waits []<-chan any
	for _, e := range ents {
		var req pb.InternalRaftRequest
		if err := proto.Unmarshal(e.Data, &req); err != nil {
			t.Fatal(err)
		}
		waits = append(waits, state.Waits.Register(req.Header.ID))
	}
	if _, err := sys.Root.RequestFuture(pid, &messages.Apply{Msg: &raftpb.Message{Entries: ents}}, 5*time.Second).Result(); err != nil {
		t.Fatal(err)
	}
	out := make([]memberstate.Result, len(waits))
	for i, w := range waits {
		select {
		case v := <-w:
			out[i] = v.(memberstate.Result)
		case <-time.After(5 * time.Second):
			t.Fatalf("entry %d: waiter not triggered", i)
		}
	}
	return out
}

// TestApplyAlarms: an applied NOSPACE alarm refuses puts but not deletes,
// is published to the member state, is loaded again by a new applier
// (a restart), and a disarm lets puts apply again.
func TestApplyAlarms(t *testing.T) {
	store, err := mvcc.Open(filepath.Join(t.TempDir(), "db"), mvcc.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	state := memberstate.New(memberstate.Member{ID: 1, Name: "m"}, 1)
	activate := &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}
	res := applyAll(t, store, state,
		entry(t, 1, 11, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a")}}),
		entry(t, 2, 12, &pb.InternalRaftRequest{Alarm: activate}),
		entry(t, 3, 13, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("b")}}),
		entry(t, 4, 14, &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}),
	)
	if res[0].Err != nil || res[1].Err != nil || len(res[1].Resp.(*pb.AlarmResponse).Alarms) != 1 {
		t.Fatalf("put, activate: %+v %+v", res[0], res[1])
	}
	if !errors.Is(res[2].Err, alarm.ErrNoSpace) || res[3].Err != nil {
		t.Fatalf("put, delete under NOSPACE: %v, %v", res[2].Err, res[3].Err)
	}
	if !state.Alarms().Has(pb.AlarmType_NOSPACE) || store.ConsistentIndex() != 4 {
		t.Fatalf("state alarms %v, index %d", state.Alarms().Get(pb.AlarmType_NONE), store.ConsistentIndex())
	}
	// A new applier (a restart) loads the alarm from the backend.
	state2 := memberstate.New(memberstate.Member{ID: 1, Name: "m"}, 1)
	disarm := &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}
	res = applyAll(t, store, state2,
		entry(t, 5, 15, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("c")}}),
		entry(t, 6, 16, &pb.InternalRaftRequest{Alarm: disarm}),
		entry(t, 7, 17, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("d")}}),
	)
	if !errors.Is(res[0].Err, alarm.ErrNoSpace) || res[1].Err != nil || res[2].Err != nil {
		t.Fatalf("after restart: %+v", res)
	}
	if state2.Alarms().Len() != 0 {
		t.Fatalf("alarms after disarm: %v", state2.Alarms().Get(pb.AlarmType_NONE))
	}
}

// TestApplyPastQuota: a put whose cost takes the backend past the quota
// at apply time still applies (every member applies the same entries) but
// answers alarm.ErrNoSpace, and the member proposes its NOSPACE alarm,
// as etcd's quota applier does.
func TestApplyPastQuota(t *testing.T) {
	store, err := mvcc.Open(filepath.Join(t.TempDir(), "db"), mvcc.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sys := actor.NewActorSystem()
	raftRec := actortest.NewRecorder(8)
	state := memberstate.New(memberstate.Member{ID: 7, Name: "m"}, 1)
	state.SetCore(sys.Root.Spawn(raftRec.Props()), store)
	size, _ := store.DBSize()
	res := applyWith(t, sys, Config{Store: store, State: state, QuotaBytes: size + 300},
		entry(t, 1, 11, &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}),
		entry(t, 2, 12, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a"), Value: []byte("v")}}),
		entry(t, 3, 13, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("b"), Value: make([]byte, 100)}}),
		entry(t, 4, 14, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("c"), Value: make([]byte, 100)}}),
	)
	if res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("delete, small put: %v %v", res[0].Err, res[1].Err)
	}
	for i := 2; i < 4; i++ {
		if !errors.Is(res[i].Err, alarm.ErrNoSpace) {
			t.Fatalf("put %d past the quota: %v", i, res[i].Err)
		}
	}
	if store.Rev() != 4 {
		t.Fatalf("revision %d: the puts past the quota must still apply", store.Rev())
	}
	p := actortest.Next[*messages.Propose](t, raftRec, 5*time.Second)
	var req pb.InternalRaftRequest
	if err := proto.Unmarshal(p.Data, &req); err != nil {
		t.Fatal(err)
	}
	if a := req.Alarm; a == nil || a.Action != pb.AlarmRequest_ACTIVATE || a.MemberID != 7 || a.Alarm != pb.AlarmType_NOSPACE {
		t.Fatalf("proposed %v, want this member's NOSPACE alarm", &req)
	}
}
