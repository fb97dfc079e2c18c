package membership

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/persistence/wal"
)

func confEntry(index, term uint64, cc *raftpb.ConfChange) *raftpb.Entry {
	data, err := proto.Marshal(cc)
	if err != nil {
		panic(err)
	}
	return &raftpb.Entry{Type: raftpb.EntryConfChange.Enum(), Index: proto.Uint64(index), Term: proto.Uint64(term), Data: data}
}

func normalEntry(index, term uint64) *raftpb.Entry {
	return &raftpb.Entry{Type: raftpb.EntryNormal.Enum(), Index: proto.Uint64(index), Term: proto.Uint64(term), Data: []byte(fmt.Sprint("put", index))}
}

// bootstrapLog is raft's bootstrap of members 1, 2, 3 at term 1, then
// normal entries 4..last at term 2.
func bootstrapLog(last uint64) []*raftpb.Entry {
	var ents []*raftpb.Entry
	for id := uint64(1); id <= 3; id++ {
		ents = append(ents, confEntry(id, 1, AddChange(Member{ID: id, PeerURLs: []string{fmt.Sprintf("http://m%d:2380", id)}})))
	}
	for i := uint64(4); i <= last; i++ {
		ents = append(ents, normalEntry(i, 2))
	}
	return ents
}

func snapshotAt(index, term uint64, voters, learners []uint64) *raftpb.Snapshot {
	return &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: proto.Uint64(index), Term: proto.Uint64(term),
		ConfState: &raftpb.ConfState{Voters: voters, Learners: learners},
	}}
}

func hardState(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(vote), Commit: proto.Uint64(commit)}
}

// describe renders entries as "index/term kind node" for comparison.
func describe(t *testing.T, ents []*raftpb.Entry) string {
	t.Helper()
	var out []string
	for _, e := range ents {
		s := fmt.Sprintf("%d/%d", e.GetIndex(), e.GetTerm())
		if e.GetType() == raftpb.EntryConfChange {
			var cc raftpb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				t.Fatalf("entry %d: %v", e.GetIndex(), err)
			}
			s += fmt.Sprintf(" %s %x", cc.GetType(), cc.GetNodeId())
			if len(cc.GetContext()) > 0 {
				s += " " + string(cc.GetContext())
			}
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

func TestForceNewCluster(t *testing.T) {
	for _, tc := range []struct {
		name      string
		snap      *raftpb.Snapshot
		hs        *raftpb.HardState
		ents      []*raftpb.Entry
		self      uint64
		applied   uint64
		appended  string
		commit    uint64
		kept      int // entries kept of ents
		dropped   int
		walCommit uint64
	}{{
		name: "uncommitted entries are dropped, the others removed after the commit index",
		hs:   hardState(2, 2, 5), ents: bootstrapLog(7), self: 2, applied: 5,
		appended: "6/2 ConfChangeRemoveNode 1, 7/2 ConfChangeRemoveNode 3",
		commit:   7, kept: 5, dropped: 2, walCommit: 5,
	}, {
		name: "an applied index past the hard state's commit is committed",
		hs:   hardState(2, 1, 4), ents: bootstrapLog(7), self: 1, applied: 6,
		appended: "7/2 ConfChangeRemoveNode 2, 8/2 ConfChangeRemoveNode 3",
		commit:   8, kept: 6, dropped: 1, walCommit: 4,
	}, {
		name: "an applied index past the log is bounded by it",
		hs:   hardState(2, 1, 4), ents: bootstrapLog(5), self: 3, applied: 9,
		appended: "6/2 ConfChangeRemoveNode 1, 7/2 ConfChangeRemoveNode 2",
		commit:   7, kept: 5, walCommit: 4,
	}, {
		name: "snapshot members, no entries after it",
		snap: snapshotAt(100, 4, []uint64{0x30, 0x10, 0x20}, nil), hs: hardState(5, 0, 100), self: 0x20, applied: 100,
		appended: "101/5 ConfChangeRemoveNode 10, 102/5 ConfChangeRemoveNode 30",
		commit:   102, walCommit: 100,
	}, {
		name: "snapshot members changed by the kept entries; a learner is removed too",
		snap: snapshotAt(10, 2, []uint64{1, 2, 3}, []uint64{9}),
		hs:   hardState(3, 1, 12),
		ents: []*raftpb.Entry{
			confEntry(11, 3, RemoveChange(3)),
			confEntry(12, 3, AddChange(Member{ID: 4, PeerURLs: []string{"http://m4:2380"}, IsLearner: true})),
			confEntry(13, 3, RemoveChange(2)), // not committed: 2 stays a member
		},
		self: 1, applied: 12,
		appended: "13/3 ConfChangeRemoveNode 2, 14/3 ConfChangeRemoveNode 4, 15/3 ConfChangeRemoveNode 9",
		commit:   15, kept: 2, dropped: 1, walCommit: 12,
	}, {
		name: "a learner promoted in the log may force",
		snap: snapshotAt(10, 2, []uint64{1}, []uint64{2}),
		hs:   hardState(2, 1, 11), ents: []*raftpb.Entry{confEntry(11, 2, PromoteChange(2))},
		self: 2, applied: 11,
		appended: "12/2 ConfChangeRemoveNode 1", commit: 12, kept: 1, walCommit: 11,
	}, {
		name: "a member the log does not know adds itself first",
		snap: snapshotAt(10, 2, []uint64{1, 3}, nil), hs: hardState(2, 1, 10), self: 2, applied: 10,
		appended: `11/2 ConfChangeAddNode 2 {"id":2,"peerURLs":["http://self:2380"],"isPromote":false}, 12/2 ConfChangeRemoveNode 1, 13/2 ConfChangeRemoveNode 3`,
		commit:   13, walCommit: 10,
	}, {
		name: "already alone: nothing to append, the uncommitted tail still goes",
		snap: snapshotAt(10, 2, []uint64{7}, nil), hs: hardState(3, 7, 11),
		ents: []*raftpb.Entry{normalEntry(11, 3), normalEntry(12, 3)}, self: 7, applied: 11,
		commit: 11, kept: 1, dropped: 1, walCommit: 11,
	}, {
		name: "a refused change (node 0) is no member",
		hs:   hardState(2, 1, 4), ents: append(bootstrapLog(3), confEntry(4, 2, RemoveChange(0))), self: 1, applied: 4,
		appended: "5/2 ConfChangeRemoveNode 2, 6/2 ConfChangeRemoveNode 3", commit: 6, kept: 4, walCommit: 4,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			before := describe(t, tc.ents)
			got, err := ForceNewCluster(tc.snap, tc.hs, tc.ents, tc.self, []string{"http://self:2380"}, tc.applied)
			if err != nil {
				t.Fatal(err)
			}
			if s := describe(t, got.Appended); s != tc.appended {
				t.Errorf("appended:\n got %s\nwant %s", s, tc.appended)
			}
			if want := describe(t, append(slices.Clone(tc.ents[:tc.kept]), got.Appended...)); describe(t, got.Entries) != want {
				t.Errorf("entries:\n got %s\nwant %s", describe(t, got.Entries), want)
			}
			if got.HardState.GetCommit() != tc.commit || got.HardState.GetTerm() != tc.hs.GetTerm() || got.HardState.GetVote() != tc.hs.GetVote() {
				t.Errorf("hard state %v, want term %d vote %d commit %d", got.HardState, tc.hs.GetTerm(), tc.hs.GetVote(), tc.commit)
			}
			if got.Dropped != tc.dropped || got.WALCommit != tc.walCommit {
				t.Errorf("dropped %d wal commit %d, want %d %d", got.Dropped, got.WALCommit, tc.dropped, tc.walCommit)
			}
			if after := describe(t, tc.ents); after != before {
				t.Errorf("input entries changed:\n%s\n%s", before, after)
			}
		})
	}
}

func TestForceNewClusterRefuses(t *testing.T) {
	_, err := ForceNewCluster(snapshotAt(10, 2, []uint64{1}, []uint64{2}), hardState(2, 1, 10), nil, 2, nil, 10)
	if !errors.Is(err, ErrForceLearner) {
		t.Errorf("learner: %v, want ErrForceLearner", err)
	}
	v2 := &raftpb.Entry{Type: raftpb.EntryConfChangeV2.Enum(), Index: proto.Uint64(4), Term: proto.Uint64(2)}
	_, err = ForceNewCluster(nil, hardState(2, 1, 4), append(bootstrapLog(3), v2), 1, nil, 4)
	if !errors.Is(err, ErrBadContext) {
		t.Errorf("ConfChangeV2: %v, want ErrBadContext", err)
	}
	garbled := &raftpb.Entry{Type: raftpb.EntryConfChange.Enum(), Index: proto.Uint64(4), Term: proto.Uint64(2), Data: []byte{0xff, 0xff}}
	_, err = ForceNewCluster(nil, hardState(2, 1, 4), append(bootstrapLog(3), garbled), 1, nil, 4)
	if !errors.Is(err, ErrBadContext) {
		t.Errorf("garbled conf change: %v, want ErrBadContext", err)
	}
}

// TestForceNewClusterThroughTheWAL saves the forced log as the core does
// and reads it back: the appended conf changes replace the dropped tail
// and the hard state commits them.
func TestForceNewClusterThroughTheWAL(t *testing.T) {
	dir := t.TempDir()
	w, err := wal.Create(dir, wal.Metadata{MemberID: 2, ClusterID: 9}, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Save(hardState(2, 2, 5), bootstrapLog(8), true); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()

	w, err = wal.Open(dir, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, hs, ents, err := w.ReadAll(wal.SnapshotMarker{})
	if err != nil {
		t.Fatal(err)
	}
	forced, err := ForceNewCluster(nil, hs, ents, 2, nil, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Save(forced.HardState, forced.Appended, true); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()

	w, err = wal.Open(dir, wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, hs, ents, err = w.ReadAll(wal.SnapshotMarker{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(t, ents), describe(t, forced.Entries); got != want {
		t.Errorf("read back:\n got %s\nwant %s", got, want)
	}
	if hs.GetCommit() != 7 || len(ents) != 7 {
		t.Errorf("commit %d with %d entries, want 7 and 7 (entry 8 dropped)", hs.GetCommit(), len(ents))
	}
}
