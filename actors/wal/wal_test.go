package wal

import (
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/snap"
	"github.com/troupedb/troupe/persistence/wal"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// recorder stands in for the raft actor: it forwards every message it gets.
func recorder(out chan<- any) *actor.Props {
	return actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.Appended:
			out <- m
		}
	})
}

type fixture struct {
	t      *testing.T
	sys    *actor.ActorSystem
	dir    string
	w      *wal.WAL
	pid    *actor.PID
	events chan any
}

// testMetadata is the metadata of the fixture's WAL.
var testMetadata = wal.Metadata{MemberID: 1, ClusterID: 2}

func start(t *testing.T, snaps *snap.Snapshotter) *fixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "wal")
	w, err := wal.Create(dir, testMetadata, wal.Options{SegmentSizeBytes: 1 << 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, sys: actortest.NewSystem(), dir: dir, w: w, events: make(chan any, 10000)}
	raft := f.sys.Root.Spawn(recorder(f.events))
	f.pid = f.sys.Root.Spawn(Props(Config{Dir: dir, WAL: w, Snap: snaps, Raft: raft, Logger: quiet}))
	t.Cleanup(func() {
		f.stop()
		actortest.Shutdown(f.sys)
	})
	return f
}

func (f *fixture) stop() {
	if err := f.sys.Root.StopFuture(f.pid).Wait(); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) send(m *raftpb.Message) { f.sys.Root.Send(f.pid, &messages.Append{Msg: m}) }

// next waits for the next Appended; the timeout (virtual time: every test
// runs in a synctest bubble) only fails a hung test.
func (f *fixture) next() *messages.Appended {
	f.t.Helper()
	select {
	case e := <-f.events:
		return e.(*messages.Appended)
	case <-time.After(10 * time.Second):
		f.t.Fatal("no Appended within 10s")
		return nil
	}
}

func entry(index, term uint64) *raftpb.Entry {
	return &raftpb.Entry{Index: new(index), Term: new(term), Data: []byte("value")}
}

func appendMsg(hs *raftpb.HardState, ents ...*raftpb.Entry) *raftpb.Message {
	m := &raftpb.Message{Type: raftpb.MsgStorageAppend.Enum(), Entries: ents}
	if hs != nil {
		m.Term, m.Vote, m.Commit = new(hs.GetTerm()), new(hs.GetVote()), new(hs.GetCommit())
	}
	return m
}

func hardState(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: new(term), Vote: new(vote), Commit: new(commit)}
}

func TestAppendedInOrderOneFsyncPerBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := start(t, nil)
		// Hold the first fsync (50 ms of virtual time) so the other Appends
		// queue behind its flush.
		if err := failpoint.Enable(wal.FailpointBeforeFsync, "1*sleep(50ms)"); err != nil {
			t.Fatal(err)
		}
		defer failpoint.Disable(wal.FailpointBeforeFsync)
		base := f.w.Stats().Fsyncs
		const n = 200
		var sent []*raftpb.Message
		for i := uint64(1); i <= n; i++ {
			m := appendMsg(hardState(1, 1, i-1), entry(i, 1))
			sent = append(sent, m)
			f.send(m)
		}
		for i := range sent {
			if got := f.next(); got.Msg != sent[i] {
				t.Fatalf("Appended %d is for entry %d", i, got.Msg.GetEntries()[0].GetIndex())
			}
		}
		if got := f.w.Stats().Fsyncs - base; got < 1 || got > 2 {
			t.Fatalf("%d fsyncs for %d appends, want 1 or 2 (one per batch)", got, n)
		}
	})
}

func TestCommitOnlyAppendsDoNotSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tests := []struct {
			name      string
			msg       *raftpb.Message
			wantFsync int64
		}{
			{"commit advance", appendMsg(hardState(2, 1, 6)), 0},
			{"term change", appendMsg(hardState(3, 0, 6)), 1},
			{"vote change", appendMsg(hardState(3, 2, 6)), 1},
			{"entries", appendMsg(nil, entry(6, 3)), 1},
			{"commit with entries", appendMsg(hardState(3, 2, 6), entry(7, 3)), 1},
		}
		f := start(t, nil)
		f.send(appendMsg(hardState(2, 1, 0), entry(1, 2), entry(2, 2), entry(3, 2), entry(4, 2), entry(5, 2)))
		f.next()
		for _, tt := range tests {
			base := f.w.Stats().Fsyncs
			f.send(tt.msg)
			f.next()
			if got := f.w.Stats().Fsyncs - base; got != tt.wantFsync {
				t.Errorf("%s: %d fsyncs, want %d", tt.name, got, tt.wantFsync)
			}
		}
	})
}

func TestDurableAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sdir := filepath.Join(t.TempDir(), "snap")
		snaps, err := snap.New(sdir, snap.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		f := start(t, snaps)
		f.send(appendMsg(hardState(1, 1, 2), entry(1, 1), entry(2, 1), entry(3, 1)))
		withSnap := appendMsg(hardState(2, 1, 10), entry(11, 2), entry(12, 2))
		withSnap.Snapshot = &raftpb.Snapshot{Data: []byte("s"), Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(10)), Term: new(uint64(2))}}
		f.send(withSnap)
		f.send(appendMsg(hardState(2, 1, 12)))
		for range 3 {
			f.next()
		}
		f.stop()
		if !f.w.Closed() {
			t.Fatal("WAL not closed on stop")
		}

		w, err := wal.Open(f.dir, wal.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		meta, hs, ents, err := w.ReadAll(wal.SnapshotMarker{Index: 10, Term: 2})
		if err != nil {
			t.Fatal(err)
		}
		if meta != testMetadata || !proto.Equal(hs, hardState(2, 1, 12)) {
			t.Fatalf("metadata %+v hard state %v", meta, hs)
		}
		if len(ents) != 2 || ents[0].GetIndex() != 11 || ents[1].GetIndex() != 12 {
			t.Fatalf("entries %v", ents)
		}
		s, err := snaps.Load()
		if err != nil || s.GetMetadata().GetIndex() != 10 {
			t.Fatalf("snapshot file: %v %v", s, err)
		}
	})
}

func TestWriteErrorPanicsWithoutAppended(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		failures := make(chan any, 1)
		sys := actortest.NewSystem()
		defer actortest.Shutdown(sys)
		dir := filepath.Join(t.TempDir(), "wal")
		w, err := wal.Create(dir, wal.Metadata{}, wal.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := failpoint.Enable(wal.FailpointBeforeFsync, "1*error"); err != nil {
			t.Fatal(err)
		}
		defer failpoint.Disable(wal.FailpointBeforeFsync)
		events := make(chan any, 10)
		raft := sys.Root.Spawn(recorder(events))
		stopOnFailure := actor.NewOneForOneStrategy(0, time.Second, func(reason any) actor.Directive {
			failures <- reason
			return actor.StopDirective
		})
		parent := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
			if _, ok := ctx.Message().(*actor.Started); ok {
				pid := ctx.Spawn(Props(Config{Dir: dir, WAL: w, Raft: raft, Logger: quiet}))
				ctx.Send(pid, &messages.Append{Msg: appendMsg(nil, entry(1, 1))})
			}
		}, actor.WithSupervisor(stopOnFailure)))
		defer func() { _ = sys.Root.StopFuture(parent).Wait() }()

		select {
		case reason := <-failures:
			if err, ok := reason.(error); !ok || !errors.Is(err, failpoint.ErrInjected) {
				t.Fatalf("failure reason %v", reason)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("actor did not fail")
		}
		select {
		case e := <-events:
			t.Fatalf("sent %T despite the failed fsync", e)
		default:
		}
	})
}

func TestMustSync(t *testing.T) {
	tests := []struct {
		name     string
		hs       *raftpb.HardState
		saved    *raftpb.HardState
		entries  int
		wantSync bool
	}{
		{"nothing", nil, hardState(1, 1, 1), 0, false},
		{"entries", nil, hardState(1, 1, 1), 1, true},
		{"commit", hardState(1, 1, 2), hardState(1, 1, 1), 0, false},
		{"term", hardState(2, 1, 1), hardState(1, 1, 1), 0, true},
		{"vote", hardState(1, 2, 1), hardState(1, 1, 1), 0, true},
		{"first hard state", hardState(1, 0, 0), &raftpb.HardState{}, 0, true},
	}
	for _, tt := range tests {
		if got := mustSync(tt.hs, tt.saved, tt.entries); got != tt.wantSync {
			t.Errorf("%s: mustSync = %v", tt.name, got)
		}
	}
}
