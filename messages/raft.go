package messages

import (
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// Propose asks the raft actor to replicate one marshalled
// etcdserverpb.InternalRaftRequest. The outcome reaches the proposer through
// raftclient's Proposals registry under the request's header id, not as a reply message,
// so a proposal costs no future. Proposals queued in the mailbox are stepped
// as one MsgProp.
type Propose struct {
	ID   uint64
	Data []byte
}

// WithdrawProposal tells the raft actor that the proposer of ID stopped
// waiting (its deadline passed or it was cancelled). A proposal still
// parked for want of a leader is dropped and answered with gRPC's
// DeadlineExceeded, as etcd's Propose blocked on raft's proposal channel
// answers; any other is answered with etcd's "request timed out", raft
// having it already. The answer goes through the Proposals registry.
type WithdrawProposal struct {
	ID uint64
}

// ReadIndex asks the raft actor for a linearizable read index. The index
// or an error is delivered through raftclient's Reads registry under ID.
// Reads that queue up meanwhile share one raft ReadIndex round.
type ReadIndex struct {
	ID uint64
}

// Tick advances raft's logical clock by one heartbeat interval.
type Tick struct{}

// Apply asks the applier to apply a raft MsgStorageApply: committed entries
// in index order. ConfState is raft's configuration after these entries,
// kept for the snapshots the applier asks for.
type Apply struct {
	Msg       *raftpb.Message
	ConfState *raftpb.ConfState
}

// Applied tells the raft actor that the entries of an Apply are applied;
// the raft actor applies ConfChanges to raft's configuration, in order,
// then steps Msg.Responses. ConfChanges holds one change per conf change
// entry of the Apply: the committed one, or an empty change (node 0) for
// one the membership refused, as etcd does.
type Applied struct {
	Msg         *raftpb.Message
	ConfChanges []*raftpb.ConfChange
}

// SaveSnapshot asks the snapshotter to snapshot raft state at Index: the
// backend already holds everything up to Index, committed.
type SaveSnapshot struct {
	Index     uint64
	ConfState *raftpb.ConfState
}

// CompactRaftLog asks the snapshotter to take an in-memory snapshot of
// raft state at Index (nothing written to disk, no WAL released) and to
// compact raft's in-memory log behind it, as etcd 3.6 does every 100
// applied entries: without it the log grows to SnapshotCount plus the
// catch-up entries between disk snapshots. The backend's committed
// transactions already hold everything up to Index, and ConfState is the
// configuration at Index.
type CompactRaftLog struct {
	Index     uint64
	ConfState *raftpb.ConfState
}

// SnapshotSaved reports a snapshot durable at Index with Term.
type SnapshotSaved struct {
	Index uint64
	Term  uint64
}

// CoreStarted tells the node that the core's start-up sequence finished
// and the core serves proposals.
type CoreStarted struct{}

// ListenersStarted tells the node that the client listeners serve.
type ListenersStarted struct{}

// ProposeConfChange asks the raft actor to replicate a configuration
// change. CC.ID carries the id in raftclient's ConfChanges registry; the
// applier triggers it with the outcome once the change is applied.
type ProposeConfChange struct {
	CC *raftpb.ConfChange
}

// TransferLeadership asks the raft actor, when it leads, to hand
// leadership to member To.
type TransferLeadership struct {
	To uint64
}

// InstallSnapshot asks the applier to make the backend the database that
// came with a raft snapshot, once the snapshot is durable in the WAL. Msg
// is the MsgStorageAppend carrying it; the applier answers
// SnapshotInstalled with the same Msg.
type InstallSnapshot struct {
	Msg *raftpb.Message
}

// SnapshotInstalled tells the raft actor the backend now holds the
// snapshot of Msg; it then handles Msg as Appended.
type SnapshotInstalled struct {
	Msg *raftpb.Message
}

// CommitBackend asks the applier to commit everything it applied to bbolt
// now; it answers BackendCommitted once the commit is durable. A snapshot
// of the backend taken after that holds every applied write.
type CommitBackend struct{}

// BackendCommitted answers CommitBackend.
type BackendCommitted struct {
	Err error
}

// InstallBackend asks the core, from the applier, to replace the backend
// with the snapshot database for raft index Index, which the snapshot dir
// holds. The core answers BackendInstalled; the applier touches no store
// meanwhile.
type InstallBackend struct {
	Index uint64
}

// BackendInstalled answers InstallBackend with the new backend and the
// membership it holds, or why the install failed.
type BackendInstalled struct {
	Store   *mvcc.Store
	Cluster *membership.Cluster
	Err     error
}

// MembersChanged tells the core, from the applier, the members after an
// Apply batch or a snapshot install that changed them.
type MembersChanged struct {
	Members []membership.Member
}

// MemberRemoved tells the node, from the peers, that another member says
// the cluster removed this one.
type MemberRemoved struct{}
