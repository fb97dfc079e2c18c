package applier

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupedb/troupe/messages"
)

// memorySnapshotEntries is how many applied entries apart the applier asks
// for an in-memory snapshot and a compaction of raft's log (etcd 3.6's
// memorySnapshotCount). Between disk snapshots raft's log would otherwise
// keep SnapshotCount plus the catch-up entries: with 1 MiB values 15,000
// entries are 15 GiB, where etcd keeps about 5,100.
const memorySnapshotEntries = 100

// memorySnapshotBytes is how many bytes of entries must have been applied
// since the previous request as well: small entries then leave raft's log
// to the disk snapshots, as before (15,000 puts of 256 B are 4 MiB, and a
// smaller live heap only makes the collector run more often), while large
// ones are compacted every 100 entries, as etcd does.
const memorySnapshotBytes = 16 << 20

// maybeCompactRaftLog asks the snapshotter to compact raft's log behind the
// newest index that is both in bbolt (a follower sent a snapshot at that
// index gets a database holding it) and in raft's log (last, the end of the
// Apply just applied: a snapshot installed since is newer), once that index
// moved memorySnapshotEntries past the previous one and memorySnapshotBytes
// were applied since. The configuration is the applied one, so it is
// skipped while a conf change lies past the index.
func (a *applier) maybeCompactRaftLog(ctx actor.Context, last uint64) {
	if a.cfg.Snapshotter == nil {
		return
	}
	idx := min(a.cfg.Store.CommittedIndex(), last)
	if idx < a.memSnapIndex+memorySnapshotEntries || a.memSnapBytes < memorySnapshotBytes || a.confChangeIndex > idx {
		return
	}
	a.memSnapIndex, a.memSnapBytes = idx, 0
	ctx.Send(a.cfg.Snapshotter, &messages.CompactRaftLog{Index: idx, ConfState: a.confState()})
}
