package messages

import "go.etcd.io/raft/v3/raftpb"

// Append asks the wal actor to make one raft MsgStorageAppend durable: its
// entries, hard state and snapshot marker.
type Append struct {
	Msg *raftpb.Message
}

// Appended tells the raft actor that Msg (the MsgStorageAppend of an Append)
// is durable; the raft actor updates its storage and steps Msg.Responses.
// The wal actor sends Appended for the Appends of a batch in the order they
// arrived, and only after the batch's fsync returned.
type Appended struct {
	Msg *raftpb.Message
}

// ReleaseWAL tells the wal actor that a snapshot at Index (with Term) is
// durable, so segments holding only entries up to Index can be removed.
type ReleaseWAL struct {
	Index uint64
	Term  uint64
}
