package snapshotter

import (
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/snap"
)

// snapAndLog returns an empty snapshot dir and a raft log of entries 1 to
// 100 in term 2.
func snapAndLog(t *testing.T) (*snap.Snapshotter, *raft.MemoryStorage) {
	t.Helper()
	ss, err := snap.New(t.TempDir(), snap.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ms := raft.NewMemoryStorage()
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 100; i++ {
		ents = append(ents, &raftpb.Entry{Index: new(i), Term: new(uint64(2))})
	}
	if err := ms.Append(ents); err != nil {
		t.Fatal(err)
	}
	return ss, ms
}

// TestSaveThenReleaseThenCompact: the snapshot file is on disk before the
// WAL hears it may release, and raft's log keeps the catch-up entries.
func TestSaveThenReleaseThenCompact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ss, ms := snapAndLog(t)
		sys := actortest.NewSystem()
		defer actortest.Shutdown(sys)
		wal := actortest.NewRecorder(4)
		// When the release arrives, the snapshot must already be readable.
		seen := make(chan *raftpb.Snapshot, 1)
		wal.Reply = func(msg any) any {
			if _, ok := msg.(*messages.ReleaseWAL); ok {
				sn, err := ss.Load()
				if err != nil {
					t.Errorf("release before the snapshot file: %v", err)
				}
				seen <- sn
			}
			return nil
		}
		pid := sys.Root.Spawn(Props(Config{
			Snap: ss, Storage: ms, WAL: sys.Root.Spawn(wal.Props()), CatchUpEntries: 10,
			MemberID: 1, Logger: slog.New(slog.DiscardHandler),
		}))
		defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
		// Timeouts on virtual time: they fail a hung test at no cost.
		res, err := sys.Root.RequestFuture(pid, &messages.SaveSnapshot{
			Index: 80, ConfState: &raftpb.ConfState{Voters: []uint64{1}},
		}, 5*time.Second).Result()
		if err != nil {
			t.Fatal(err)
		}
		if saved := res.(*messages.SnapshotSaved); saved.Index != 80 || saved.Term != 2 {
			t.Fatalf("saved %+v, want index 80 term 2", saved)
		}
		rel := actortest.Next[*messages.ReleaseWAL](t, wal, 5*time.Second)
		if rel.Index != 80 || rel.Term != 2 {
			t.Fatalf("release %+v", rel)
		}
		if sn := <-seen; sn.GetMetadata().GetIndex() != 80 {
			t.Fatalf("snapshot on disk at %d", sn.GetMetadata().GetIndex())
		}
		if first, _ := ms.FirstIndex(); first != 71 {
			t.Fatalf("raft log starts at %d, want 71 (10 catch-up entries kept)", first)
		}
	})
}

// TestCompactRaftLogInMemory: a CompactRaftLog bounds raft's log to the
// catch-up entries without touching the disk, and a disk snapshot asked
// for at the same index afterwards is still saved and releases the WAL.
func TestCompactRaftLogInMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ss, ms := snapAndLog(t)
		sys := actortest.NewSystem()
		defer actortest.Shutdown(sys)
		wal := actortest.NewRecorder(4)
		pid := sys.Root.Spawn(Props(Config{
			Snap: ss, Storage: ms, WAL: sys.Root.Spawn(wal.Props()), CatchUpEntries: 10,
			MemberID: 1, Logger: slog.New(slog.DiscardHandler),
		}))
		defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
		cs := &raftpb.ConfState{Voters: []uint64{1}}
		sys.Root.Send(pid, &messages.CompactRaftLog{Index: 60, ConfState: cs})
		// A request behind the compaction: once answered, it is done.
		res, err := sys.Root.RequestFuture(pid, &messages.SaveSnapshot{Index: 60, ConfState: cs}, 5*time.Second).Result()
		if err != nil {
			t.Fatal(err)
		}
		if saved := res.(*messages.SnapshotSaved); saved.Index != 60 || saved.Term != 2 {
			t.Fatalf("saved %+v, want index 60 term 2", saved)
		}
		if first, _ := ms.FirstIndex(); first != 51 {
			t.Fatalf("raft log starts at %d, want 51 (10 catch-up entries behind 60)", first)
		}
		if rel := actortest.Next[*messages.ReleaseWAL](t, wal, 5*time.Second); rel.Index != 60 {
			t.Fatalf("release %+v, want index 60", rel)
		}
		if sn, err := ss.Load(); err != nil || sn.GetMetadata().GetIndex() != 60 {
			t.Fatalf("snapshot on disk: %v, %v; want index 60", sn.GetMetadata(), err)
		}

		// In memory only: no file, no release, raft hands out the new
		// snapshot and the log keeps 10 entries behind it.
		sys.Root.Send(pid, &messages.CompactRaftLog{Index: 90, ConfState: cs})
		synctest.Wait() // the snapshotter handled it and is idle
		if first, _ := ms.FirstIndex(); first != 81 {
			t.Fatalf("raft log starts at %d, want 81 (10 catch-up entries behind 90)", first)
		}
		if sn, _ := ms.Snapshot(); sn.GetMetadata().GetIndex() != 90 || len(sn.GetMetadata().GetConfState().GetVoters()) != 1 {
			t.Fatalf("raft's snapshot %v, want index 90 with voter 1", sn.GetMetadata())
		}
		if sn, _ := ss.Load(); sn.GetMetadata().GetIndex() != 60 {
			t.Fatalf("snapshot on disk at %d, want still 60", sn.GetMetadata().GetIndex())
		}
		select {
		case m := <-wal.C:
			t.Fatalf("the WAL heard %T after an in-memory snapshot", m)
		default:
		}
	})
}
