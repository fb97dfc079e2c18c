package raftclient

import "sync/atomic"

// LocalReadIndex is the read index a raft actor vouches for without a
// raft round: the commit index of a leader that is the only voter of its
// configuration and has committed an entry of its current term; 0 while
// that does not hold, and reads take the round.
//
// Why such an index is a linearizable read's: every write acknowledged
// anywhere (by this member's applier or by a learner that applied it)
// was committed in a Ready this raft actor handled, and the raft actor
// publishes before anything of a Ready leaves (messages, entries for the
// applier), so a read that loads the index after the acknowledgement
// loads a commit index at or above the write's. Only the current term's
// commit counts: after a restart the commit index raft starts from may
// lag what was committed and acknowledged before, and the first entry of
// the term is after all of them. Another member can only come to lead
// through this raft actor's own Readies (a configuration change it
// applies, a vote it grants), and it withdraws the index before those
// leave, so a read that still loads it began before the other could
// acknowledge anything.
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
