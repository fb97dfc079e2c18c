package core

import (
	"fmt"
	"slices"

	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// forceNewCluster rewrites the recovered log so that this member restarts
// as the only voter of its cluster (--force-new-cluster): the conf changes
// that remove the others are made durable before raft sees them, so the
// applier applies them to the membership and backend as any committed
// change.
func (c *core) forceNewCluster(rec *recovered, store *mvcc.Store) error {
	v := c.view()
	// A removed member's re-add would be refused when applied, leaving
	// raft without a voter. An unreadable membership is the next step's
	// error.
	if _, removed, err := store.LoadMembers(); err == nil && slices.Contains(removed, v.MemberID) {
		return &StartupError{"force new cluster", fmt.Errorf("member %x was removed from the cluster (%s): it cannot come back, even alone (fix: force a member that was not removed)", v.MemberID, DBPath(c.cfg.DataDir))}
	}
	forced, err := membership.ForceNewCluster(rec.snapshot, rec.hs, rec.ents, v.MemberID, v.Self.PeerURLs, store.ConsistentIndex())
	if err != nil {
		return &StartupError{"force new cluster", fmt.Errorf("%s: %w", c.walDir(), err)}
	}
	if err := rec.wal.Save(forced.HardState, forced.Appended, true); err != nil {
		return &StartupError{"force new cluster", fmt.Errorf("save conf changes to %s: %w (fix: make it writable)", c.walDir(), err)}
	}
	rec.ents, rec.hs = forced.Entries, forced.HardState
	c.logger().Warn("forcing restart member as a single-member cluster",
		"cluster-id", fmt.Sprintf("%x", v.ClusterID), "local-member-id", fmt.Sprintf("%x", v.MemberID),
		"wal-commit-index", forced.WALCommit, "commit-index", forced.HardState.GetCommit(),
		"discarded-uncommitted-entries", forced.Dropped, "conf-changes", len(forced.Appended))
	return nil
}
