package raftclient

import "sync/atomic"

// LocalReadIndex is the read index a raft actor vouches for without a
// raft round: the commit index of a leader that is the only voter of its
// configuration and has committed an entry of its current term; 0 while
// that does not hold, and reads take the round.
//
// Why such an index is a linearizable read's: a write is acknowledged
// (or shown by a learner's serializable read) only once it is applied,
// after a Ready of this raft actor handed it to an applier or told a
// learner it is committed, and the raft actor publishes before anything
// of a Ready leaves; so a read that loads the index after the write was
// acknowledged loads a commit index at or above the write's, and waits
// until this member applied it. Only the current term's commit counts:
// after a restart the commit index raft starts from may lag what was
// committed and acknowledged before, and the first entry of the term
// follows all of it. Another member can only come to lead through what
// this raft actor sends once it applies a configuration change that adds
// a voter, or once it grants a vote; it withdraws the index before either
// leaves, so a read that still loads the index began before another
// leader could acknowledge anything.
//
// One writer, the core's raft actor; one per core incarnation, so the
// index of a stopped core is never a running core's.
type LocalReadIndex struct{ index atomic.Uint64 }

// Publish sets the read index, 0 to withdraw it. Writer: raft actor.
func (l *LocalReadIndex) Publish(index uint64) { l.index.Store(index) }

// Load returns the read index, 0 when a read must take the raft round
// (also for a nil l: a core that publishes none).
func (l *LocalReadIndex) Load() uint64 {
	if l == nil {
		return 0
	}
	return l.index.Load()
}
