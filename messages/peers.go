package messages

import "go.etcd.io/raft/v3/raftpb"

// SendRaft asks the peers supervisor to deliver a raft message to member
// Msg.To. Delivery is best effort: raft retransmits what is lost.
type SendRaft struct {
	Msg *raftpb.Message
}

// SetPeers tells the peers supervisor which other members exist and where
// (member id -> peer URLs, e.g. "http://127.0.0.1:2380"). It spawns a peer
// actor for each new member and stops those of removed ones.
type SetPeers struct {
	Peers map[uint64][]string
}

// PeerUnreachable tells the raft actor that member ID could not be
// reached; it calls raft.ReportUnreachable.
type PeerUnreachable struct {
	ID uint64
}

// SnapshotReported tells the raft actor how sending a snapshot to member
// ID ended; it calls raft.ReportSnapshot.
type SnapshotReported struct {
	ID     uint64
	Failed bool
}

// StepRaft hands the raft actor the raft messages of one envelope from
// another member, in the order they were sent; it steps them all before
// it takes the next Ready.
type StepRaft struct {
	Msgs []*raftpb.Message
}
