package applier

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/membership"
)

// bigPutEntry is a put of a value of 1/100 of memorySnapshotBytes (plus a
// little), so 100 of them are enough bytes for a compaction.
func bigPutEntry(t *testing.T, index uint64) *raftpb.Entry {
	t.Helper()
	v := make([]byte, memorySnapshotBytes/memorySnapshotEntries+1)
	return entry(t, index, index, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k"), Value: v}})
}

// TestCompactRaftLogAtCommittedIndex: the applier asks for raft's log to
// be compacted only behind what bbolt holds committed, only once that
// moved memorySnapshotEntries past the previous request, and only once
// memorySnapshotBytes were applied since (small entries wait for the disk
// snapshot).
func TestCompactRaftLogAtCommittedIndex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openStore(t)
		sys := newSystem(t)
		snaps := actortest.NewRecorder(8)
		f := start(t, sys, Config{
			Store: store, Client: newClient(sys, 1), Snapshotter: sys.Root.Spawn(snaps.Props()), SnapshotCount: 100000,
		})
		next := uint64(1)
		small := false
		applyN := func(n int) {
			var ents []*raftpb.Entry
			for range n {
				if small {
					ents = append(ents, putEntry(t, next, next, "k"))
				} else {
					ents = append(ents, bigPutEntry(t, next))
				}
				next++
			}
			f.apply(ents...)
		}
		commit := func() {
			time.Sleep(DefaultCommitInterval + time.Millisecond) // virtual time: the commit timer fires
			synctest.Wait()
		}
		noCompaction := func(when string) {
			synctest.Wait()
			select {
			case m := <-snaps.C:
				t.Fatalf("%s: the snapshotter got %#v", when, m)
			default:
			}
		}

		applyN(150) // 1..150, none committed yet
		noCompaction("nothing committed")
		commit()
		applyN(1) // 151: bbolt holds 150
		if c := actortest.Next[*messages.CompactRaftLog](t, snaps, wait); c.Index != 150 || len(c.ConfState.GetVoters()) != 0 {
			t.Fatalf("compaction %+v, want at index 150 (committed), not 151 (applied)", c)
		}
		applyN(98) // 152..249
		commit()
		applyN(1) // 250: bbolt holds 249, 99 past 150
		noCompaction("99 entries past the last")
		commit()
		applyN(1) // 251: bbolt holds 250
		if c := actortest.Next[*messages.CompactRaftLog](t, snaps, wait); c.Index != 250 {
			t.Fatalf("compaction at %d, want 250", c.Index)
		}
		small = true
		applyN(300) // 252..551, committed: 300 entries, a few KiB
		commit()
		applyN(1)
		noCompaction("300 small entries")
	})
}

// TestCompactRaftLogWaitsForConfChange: while a conf change lies past the
// committed index, the applied configuration is not the one at that index,
// so no compaction is asked for; once bbolt holds the change, it is.
func TestCompactRaftLogWaitsForConfChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openStore(t)
		sys := newSystem(t)
		snaps := actortest.NewRecorder(8)
		self := membership.Member{ID: 1, Name: "m", PeerURLs: []string{"http://m1"}}
		f := start(t, sys, Config{
			Store: store, Client: newClient(sys, 1), Snapshotter: sys.Root.Spawn(snaps.Props()), SnapshotCount: 100000,
			Cluster: membership.NewCluster([]membership.Member{self}, nil),
		})
		commit := func() {
			time.Sleep(DefaultCommitInterval + time.Millisecond) // virtual time: the commit timer fires
			synctest.Wait()
		}
		var ents []*raftpb.Entry
		for i := uint64(1); i <= 150; i++ {
			ents = append(ents, bigPutEntry(t, i))
		}
		f.apply(ents...)
		commit()
		add := membership.AddChange(membership.Member{ID: 2, PeerURLs: []string{"http://m2"}})
		add.Id = proto.Uint64(1000)
		f.apply(confChangeEntry(t, 151, add)) // bbolt holds 150; the configuration is 151's
		synctest.Wait()
		select {
		case m := <-snaps.C:
			t.Fatalf("compaction asked for behind a conf change: %#v", m)
		default:
		}
		commit()
		f.apply(bigPutEntry(t, 152))
		c := actortest.Next[*messages.CompactRaftLog](t, snaps, wait)
		if c.Index != 151 || !slices.Equal(c.ConfState.GetVoters(), []uint64{1, 2}) {
			t.Fatalf("compaction at %d with %v, want 151 with voters 1 and 2", c.Index, c.ConfState)
		}
	})
}
