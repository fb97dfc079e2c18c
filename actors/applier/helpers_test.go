package applier

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// Every applier test runs in a synctest bubble: the commit timer and the
// waits below are on virtual time, and synctest.Wait stands for "the
// actors did all they could".

// wait bounds the waits for a message on virtual time: it only fails a
// hung test, and costs no real time.
const wait = time.Minute

// openStore opens a store in a temporary dir, closed when the test ends
// (after the actors, whose cleanup is registered later).
func openStore(t *testing.T) *mvcc.Store {
	t.Helper()
	st, err := mvcc.Open(filepath.Join(t.TempDir(), "db"), mvcc.Options{NoSync: true, Logger: actortest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// newSystem returns an actor system shut down when the test ends, after
// the actors the test spawns.
func newSystem(t *testing.T) *actor.ActorSystem {
	sys := actortest.NewSystem()
	t.Cleanup(func() { actortest.Shutdown(sys) })
	return sys
}

// newClient returns the raft client of member id, with empty registries.
func newClient(sys *actor.ActorSystem, id uint64) *raftclient.Client {
	return raftclient.New(raftclient.Config{
		Root: sys.Root, View: memberview.New(memberview.Member{ID: id, Name: "m"}, 1),
		Waits: raftclient.NewWaits(), RequestTimeout: 5 * time.Second,
	})
}

// fixture is one applier under a recorder parent (the core's part: it
// records MembersChanged and answers InstallBackend with core.Reply), fed
// by a raft stand-in that sends Apply and InstallSnapshot as requests, as
// the raft actor does, and records the answers in raft and whatever else
// it gets (proposals) in props.
type fixture struct {
	t       *testing.T
	sys     *actor.ActorSystem
	client  *raftclient.Client
	core    *actortest.Recorder
	raft    *actortest.Recorder
	props   *actortest.Recorder
	raftPID *actor.PID
	pid     *actor.PID
}

// start spawns an applier with cfg; cfg.Client is the client the test
// reads results from. The actors stop when the test ends.
func start(t *testing.T, sys *actor.ActorSystem, cfg Config) *fixture {
	t.Helper()
	f := &fixture{t: t, sys: sys, client: cfg.Client, core: actortest.NewRecorder(64),
		raft: actortest.NewRecorder(64), props: actortest.NewRecorder(64)}
	if cfg.Logger == nil {
		cfg.Logger = actortest.Logger()
	}
	var parent *actor.PID
	parent, f.pid = f.core.SpawnChild(sys.Root, Props(cfg))
	f.raftPID = sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.Apply, *messages.InstallSnapshot:
			ctx.Request(f.pid, m)
		case *messages.Applied, *messages.SnapshotInstalled:
			f.raft.C <- m
		case actor.SystemMessage, actor.AutoReceiveMessage:
		default:
			f.props.C <- m
		}
	}))
	t.Cleanup(func() {
		_ = sys.Root.StopFuture(f.raftPID).Wait()
		_ = sys.Root.StopFuture(parent).Wait()
	})
	return f
}

// apply sends ents as one Apply and returns the Applied.
func (f *fixture) apply(ents ...*raftpb.Entry) *messages.Applied {
	f.t.Helper()
	f.sys.Root.Send(f.raftPID, &messages.Apply{Msg: &raftpb.Message{Entries: ents}})
	return actortest.Next[*messages.Applied](f.t, f.raft, wait)
}

// applyAll registers a waiter for each entry, applies them as one batch,
// and returns what the waiters got.
func (f *fixture) applyAll(ents ...*raftpb.Entry) []raftclient.Result {
	f.t.Helper()
	var waits []<-chan raftclient.Result
	for _, e := range ents {
		var req pb.InternalRaftRequest
		if err := proto.Unmarshal(e.Data, &req); err != nil {
			f.t.Fatal(err)
		}
		waits = append(waits, f.client.Waits().Proposals.Register(req.Header.ID))
	}
	f.apply(ents...)
	out := make([]raftclient.Result, len(waits))
	for i, w := range waits {
		select {
		case out[i] = <-w:
		default: // triggered before Applied was sent, or never
			f.t.Fatalf("entry %d: waiter not triggered", i)
		}
	}
	return out
}

// entry is a normal entry at index holding req with request id id.
func entry(t *testing.T, index, id uint64, req *pb.InternalRaftRequest) *raftpb.Entry {
	t.Helper()
	req.Header = &pb.RequestHeader{ID: id}
	data, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return &raftpb.Entry{Index: new(index), Term: new(uint64(1)), Type: raftpb.EntryNormal.Enum(), Data: data}
}

func putEntry(t *testing.T, index, id uint64, key string) *raftpb.Entry {
	t.Helper()
	return entry(t, index, id, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(key), Value: []byte("v")}})
}
