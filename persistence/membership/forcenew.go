package membership

import (
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ErrForceLearner refuses --force-new-cluster on a learner: removing every
// other member would leave raft without a voter (raft panics on that).
var ErrForceLearner = errors.New("membership: a learner cannot force a new cluster; promote it first, or force a voting member")

// ForcedLog is a member's raft log rewritten by ForceNewCluster.
type ForcedLog struct {
	// Entries are the committed entries kept, then Appended.
	Entries []*raftpb.Entry
	// Appended are the conf changes that leave this member the only voter:
	// they must reach the WAL, with HardState, before raft starts.
	Appended []*raftpb.Entry
	// HardState commits everything in Entries.
	HardState *raftpb.HardState
	// Dropped is how many uncommitted entries were discarded; WALCommit the
	// commit index the WAL's hard state had.
	Dropped   int
	WALCommit uint64
}

// ForceNewCluster rewrites what a member recovered from its snapshot and
// WAL so that it restarts as the sole voter of its cluster, keeping its id
// and its committed data, as etcd's --force-new-cluster does:
//
//   - the commit index is the hard state's, or the applied index when the
//     backend applied further (commit-only hard states are written
//     unsynced, so a crash can lose the last one) but not beyond the log;
//   - every entry after it is dropped: it may never have been committed;
//   - conf changes are appended at the hard state's term, committed at
//     once: one adding self if the log does not know it (with selfPeerURLs,
//     where etcd writes http://localhost:2380), then one removing every
//     other voter and learner, in ascending id order.
//
// The members are those of the snapshot's ConfState changed by the conf
// changes among the kept entries. The inputs are not modified.
func ForceNewCluster(sn *raftpb.Snapshot, hs *raftpb.HardState, ents []*raftpb.Entry, self uint64, selfPeerURLs []string, appliedIndex uint64) (ForcedLog, error) {
	snapIndex := sn.GetMetadata().GetIndex()
	last := snapIndex
	if n := len(ents); n > 0 {
		last = ents[n-1].GetIndex()
	}
	commit := max(hs.GetCommit(), min(appliedIndex, last), snapIndex)
	kept := ents
	for i, e := range ents {
		if e.GetIndex() > commit {
			kept = ents[:i]
			break
		}
	}
	out := ForcedLog{Dropped: len(ents) - len(kept), WALCommit: hs.GetCommit()}
	learners, err := effectiveMembers(sn, kept)
	if err != nil {
		return ForcedLog{}, err
	}
	if learners[self] {
		return ForcedLog{}, fmt.Errorf("%w (member %x)", ErrForceLearner, self)
	}
	term := hs.GetTerm()
	next := commit + 1
	appendChange := func(cc *raftpb.ConfChange) {
		data, err := proto.Marshal(cc)
		if err != nil {
			panic(fmt.Sprintf("membership: marshal conf change: %v", err))
		}
		out.Appended = append(out.Appended, &raftpb.Entry{
			Type: raftpb.EntryConfChange.Enum(), Term: proto.Uint64(term), Index: proto.Uint64(next), Data: data,
		})
		next++
	}
	// Self first: raft panics if the voters ever become empty.
	if _, ok := learners[self]; !ok {
		appendChange(AddChange(Member{ID: self, PeerURLs: slices.Clone(selfPeerURLs)}))
	}
	ids := make([]uint64, 0, len(learners))
	for id := range learners {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if id != self {
			appendChange(RemoveChange(id))
		}
	}
	out.Entries = append(slices.Clip(kept), out.Appended...)
	if len(out.Entries) > 0 {
		commit = out.Entries[len(out.Entries)-1].GetIndex()
	}
	out.HardState = &raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(hs.GetVote()), Commit: proto.Uint64(commit)}
	return out, nil
}

// effectiveMembers returns the raft members after sn and the conf changes
// in ents, each mapped to whether it is a learner.
func effectiveMembers(sn *raftpb.Snapshot, ents []*raftpb.Entry) (map[uint64]bool, error) {
	learners := map[uint64]bool{}
	cs := sn.GetMetadata().GetConfState()
	if len(cs.GetVotersOutgoing()) > 0 {
		return nil, fmt.Errorf("%w: snapshot %d is in a joint configuration, which troupe never proposes", ErrBadContext, sn.GetMetadata().GetIndex())
	}
	for _, id := range cs.GetVoters() {
		learners[id] = false
	}
	for _, id := range cs.GetLearners() {
		learners[id] = true
	}
	for _, e := range ents {
		switch e.GetType() {
		case raftpb.EntryNormal:
			continue
		case raftpb.EntryConfChange:
		default:
			return nil, fmt.Errorf("%w: entry %d is a %s, which troupe never proposes", ErrBadContext, e.GetIndex(), e.GetType())
		}
		var cc raftpb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrBadContext, e.GetIndex(), err)
		}
		switch id := cc.GetNodeId(); cc.GetType() {
		case raftpb.ConfChangeAddNode:
			learners[id] = false
		case raftpb.ConfChangeAddLearnerNode:
			learners[id] = true
		case raftpb.ConfChangeRemoveNode:
			delete(learners, id)
		}
	}
	// A refused change is applied to raft as node 0: no member.
	delete(learners, 0)
	return learners, nil
}
