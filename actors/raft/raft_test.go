package raft

import (
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/internal/memberstate"
	"github.com/troupedb/troupe/messages"
)

// fixture runs a raft actor whose wal and applier are recorders; the test
// plays both: it answers Appends with Appended and Applies with Applied.
type fixture struct {
	sys     *actor.ActorSystem
	pid     *actor.PID
	wal     *actortest.Recorder
	applier *actortest.Recorder
	state   *memberstate.State
}

const memberID = 1

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.DiscardHandler)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	sys := actor.NewActorSystem()
	f := &fixture{
		sys:     sys,
		wal:     actortest.NewRecorder(1024),
		applier: actortest.NewRecorder(1024),
		state:   memberstate.New(memberstate.Member{ID: memberID, Name: "m"}, 1),
	}
	f.applier.Reply = func(msg any) any {
		if a, ok := msg.(*messages.Apply); ok {
			return &messages.Applied{Msg: a.Msg}
		}
		return nil
	}
	walPID := sys.Root.Spawn(f.wal.Props())
	applierPID := sys.Root.Spawn(f.applier.Props())
	f.pid = sys.Root.Spawn(Props(Config{
		ID: memberID, Storage: raft.NewMemoryStorage(), Bootstrap: []raft.Peer{{ID: memberID}},
		ElectionTick: 10, HeartbeatTick: 1,
		WAL: walPID, Applier: applierPID, State: f.state, Logger: testLogger(),
	}))
	t.Cleanup(func() { _ = sys.Root.StopFuture(f.pid).Wait() })
	return f
}

// persist answers the next Append as a durable WAL would, and returns it.
func (f *fixture) persist(t *testing.T) *messages.Append {
	t.Helper()
	a := actortest.Next[*messages.Append](t, f.wal, 5*time.Second)
	f.sys.Root.Send(f.pid, &messages.Appended{Msg: a.Msg})
	return a
}

// elect drives the bootstrap and election by ticking and persisting until
// the member leads.
func (f *fixture) elect(t *testing.T) {
	t.Helper()
	for i := 0; i < 100 && f.state.Leader() != memberID; i++ {
		f.sys.Root.Send(f.pid, &messages.Tick{})
		select {
		case m := <-f.wal.C:
			f.sys.Root.Send(f.pid, &messages.Appended{Msg: m.(*messages.Append).Msg})
		case <-time.After(20 * time.Millisecond):
		}
	}
	if f.state.Leader() != memberID {
		t.Fatal("member did not become leader")
	}
}

func TestProposalsAreBatchedBehindTheWAL(t *testing.T) {
	f := newFixture(t)
	f.elect(t)
	// Drain what the election left in flight.
	for {
		select {
		case m := <-f.wal.C:
			f.sys.Root.Send(f.pid, &messages.Appended{Msg: m.(*messages.Append).Msg})
			continue
		case <-time.After(50 * time.Millisecond):
		}
		break
	}
	// Hold the WAL: the first proposal's Append stays unanswered while
	// more proposals arrive.
	f.sys.Root.Send(f.pid, &messages.Propose{ID: 1, Data: []byte("a")})
	first := actortest.Next[*messages.Append](t, f.wal, 5*time.Second)
	for i := uint64(2); i <= 50; i++ {
		f.sys.Root.Send(f.pid, &messages.Propose{ID: i, Data: []byte("b")})
	}
	// With appends capped in flight, the rest arrive in at most a couple
	// of Appends, not one per proposal.
	var appends, entries int
	entries += len(first.Msg.Entries)
	f.sys.Root.Send(f.pid, &messages.Appended{Msg: first.Msg})
	deadline := time.After(5 * time.Second)
	for entries < 50 {
		select {
		case m := <-f.wal.C:
			a := m.(*messages.Append)
			appends++
			entries += len(a.Msg.Entries)
			f.sys.Root.Send(f.pid, &messages.Appended{Msg: a.Msg})
		case <-deadline:
			t.Fatalf("only %d of 50 entries appended", entries)
		}
	}
	if appends > 4 {
		t.Fatalf("49 queued proposals took %d appends, want them batched", appends)
	}
	// Every entry reaches the applier in index order, after it was durable.
	var last uint64
	seen := 0
	for seen < 50 {
		a := actortest.Next[*messages.Apply](t, f.applier, 5*time.Second)
		for _, e := range a.Msg.Entries {
			if e.GetIndex() <= last {
				t.Fatalf("entry %d applied after %d", e.GetIndex(), last)
			}
			last = e.GetIndex()
			if len(e.Data) > 0 {
				seen++
			}
		}
	}
}

func TestReadIndexAnswersThroughWaits(t *testing.T) {
	f := newFixture(t)
	f.elect(t)
	go func() {
		for m := range f.wal.C {
			f.sys.Root.Send(f.pid, &messages.Appended{Msg: m.(*messages.Append).Msg})
		}
	}()
	chs := make([]<-chan any, 10)
	for i := range chs {
		chs[i] = f.state.Waits.Register(uint64(100 + i))
		f.sys.Root.Send(f.pid, &messages.ReadIndex{ID: uint64(100 + i)})
	}
	for i, ch := range chs {
		select {
		case v := <-ch:
			if _, ok := v.(uint64); !ok {
				t.Fatalf("read %d got %v, want an index", i, v)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("read %d not answered", i)
		}
	}
}

func TestProposalWithoutLeaderFailsAfterTimeout(t *testing.T) {
	sys := actor.NewActorSystem()
	wal, applier := actortest.NewRecorder(64), actortest.NewRecorder(64)
	state := memberstate.New(memberstate.Member{ID: 2, Name: "m"}, 1)
	// Member 2 of a two-member cluster whose peer never answers: no leader.
	ms := raft.NewMemoryStorage()
	_ = ms.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: new(uint64(1)), Term: new(uint64(1)), ConfState: &raftpb.ConfState{Voters: []uint64{2, 3}},
	}})
	pid := sys.Root.Spawn(Props(Config{
		ID: 2, Storage: ms, ElectionTick: 10, HeartbeatTick: 1,
		WAL: sys.Root.Spawn(wal.Props()), Applier: sys.Root.Spawn(applier.Props()),
		State: state, Logger: testLogger(),
	}))
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	ch := state.Waits.Register(7)
	sys.Root.Send(pid, &messages.Propose{ID: 7, Data: []byte("x")})
	for i := 0; i < 30; i++ {
		sys.Root.Send(pid, &messages.Tick{})
	}
	select {
	case v := <-ch:
		if v != rpctypes.ErrGRPCNoLeader {
			t.Fatalf("got %v, want ErrGRPCNoLeader", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("proposal without a leader never failed")
	}
}
