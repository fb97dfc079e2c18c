package core

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/membership"
)

// describe prints a message of the core's actors to each other.
func describe(m any) string {
	switch m := m.(type) {
	case *messages.Append:
		return "raft -> wal: Append" + describeHardState(m.Msg) + describeStorage(m.Msg)
	case *messages.Appended:
		return "wal -> raft: Appended"
	case *messages.Apply:
		return "raft -> applier: Apply" + describeStorage(m.Msg)
	case *messages.Applied:
		s := "applier -> raft: Applied"
		for _, cc := range m.ConfChanges {
			s += " " + describeConfChange(cc)
		}
		return s
	case *messages.InstallSnapshot:
		return "raft -> applier: InstallSnapshot" + describeStorage(m.Msg)
	case *messages.SnapshotInstalled:
		return "applier -> raft: SnapshotInstalled"
	case *messages.SendRaft:
		return fmt.Sprintf("raft -> %d: %s", m.Msg.GetTo(), describeRaft(m.Msg))
	}
	return fmt.Sprintf("%T", m)
}

// describeHardState prints the hard state a MsgStorageAppend carries.
func describeHardState(m *raftpb.Message) string {
	if m.Term == nil {
		return ""
	}
	return fmt.Sprintf(" term=%d vote=%d commit=%d", m.GetTerm(), m.GetVote(), m.GetCommit())
}

// describeStorage prints a MsgStorageAppend or MsgStorageApply: its
// snapshot, its entries, and the raft messages delivered once it is done
// (but raft's own acknowledgement of the storage work).
func describeStorage(m *raftpb.Message) string {
	var b strings.Builder
	if sn := m.GetSnapshot(); sn != nil && !raft.IsEmptySnap(sn) {
		fmt.Fprintf(&b, " snapshot=%d/%d", sn.GetMetadata().GetIndex(), sn.GetMetadata().GetTerm())
	}
	if len(m.Entries) > 0 {
		fmt.Fprintf(&b, " %s", describeEntries(m.Entries))
	}
	var then []string
	for _, r := range m.Responses {
		switch r.GetType() {
		case raftpb.MsgStorageAppendResp, raftpb.MsgStorageApplyResp:
		default:
			then = append(then, fmt.Sprintf("%s %d->%d", r.GetType(), r.GetFrom(), r.GetTo()))
		}
	}
	if len(then) > 0 {
		fmt.Fprintf(&b, " then [%s]", strings.Join(then, ", "))
	}
	return b.String()
}

// describeRaft prints a raft message between members.
func describeRaft(m *raftpb.Message) string {
	s := fmt.Sprintf("%s term=%d", m.GetType(), m.GetTerm())
	switch m.GetType() {
	case raftpb.MsgApp:
		s += fmt.Sprintf(" index=%d logterm=%d commit=%d %s", m.GetIndex(), m.GetLogTerm(), m.GetCommit(), describeEntries(m.Entries))
	case raftpb.MsgAppResp:
		s += fmt.Sprintf(" index=%d", m.GetIndex())
		if m.GetReject() {
			s += fmt.Sprintf(" rejected hint=%d", m.GetRejectHint())
		}
	case raftpb.MsgSnap:
		md := m.GetSnapshot().GetMetadata()
		s += fmt.Sprintf(" snapshot=%d/%d voters=%v", md.GetIndex(), md.GetTerm(), md.GetConfState().GetVoters())
	case raftpb.MsgVote, raftpb.MsgPreVote:
		s += fmt.Sprintf(" index=%d logterm=%d", m.GetIndex(), m.GetLogTerm())
	case raftpb.MsgHeartbeat, raftpb.MsgHeartbeatResp:
		s += fmt.Sprintf(" commit=%d", m.GetCommit())
	}
	return s
}

func describeEntries(ents []*raftpb.Entry) string {
	parts := make([]string, len(ents))
	for i, e := range ents {
		parts[i] = fmt.Sprintf("%d/%d %s", e.GetIndex(), e.GetTerm(), describeEntry(e))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func describeEntry(e *raftpb.Entry) string {
	if e.GetType() == raftpb.EntryConfChange {
		var cc raftpb.ConfChange
		if err := proto.Unmarshal(e.Data, &cc); err != nil {
			return "bad conf change"
		}
		return describeConfChange(&cc)
	}
	if len(e.Data) == 0 {
		return "empty"
	}
	var req pb.InternalRaftRequest
	if err := proto.Unmarshal(e.Data, &req); err != nil {
		return "bad request"
	}
	if p := req.Put; p != nil {
		return fmt.Sprintf("put %s=%s", p.Key, p.Value)
	}
	return "request"
}

func describeConfChange(cc *raftpb.ConfChange) string {
	return fmt.Sprintf("%s %d", strings.TrimPrefix(cc.GetType().String(), "ConfChange"), cc.GetNodeId())
}

func ids(ms []membership.Member) []uint64 {
	var out []uint64
	for _, m := range ms {
		out = append(out, m.ID)
	}
	slices.Sort(out)
	return out
}

func sortedKeys(m map[uint64][]string) []uint64 {
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
