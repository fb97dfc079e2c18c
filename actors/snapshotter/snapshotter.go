// Package snapshotter is the snapshotter actor: it turns a SaveSnapshot
// from the applier into a raft snapshot file, then lets the WAL release the
// segments it covers and compacts raft's in-memory log, keeping
// CatchUpEntries for followers that are a little behind. A CompactRaftLog
// (from the applier between disk snapshots: every 100 applied entries, as
// etcd 3.6, once they hold 16 MiB) takes a snapshot in memory only and
// compacts the log the same way, so with large entries raft's log stays
// near CatchUpEntries entries, not CatchUpEntries plus SnapshotCount.
//
// In: SaveSnapshot, CompactRaftLog. Out: ReleaseWAL to the wal actor,
// SnapshotSaved to the sender. Order guarded: the snapshot file is durable
// before the WAL may drop anything, so a crash between steps leaves a WAL
// that still covers everything after the newest snapshot.
package snapshotter

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3"

	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/snap"
)

// DefaultCatchUpEntries is how many entries stay in raft's log behind a
// snapshot (etcd keeps 5000).
const DefaultCatchUpEntries = 5000

// Config of the snapshotter.
type Config struct {
	Snap           *snap.Snapshotter
	Storage        *raft.MemoryStorage
	WAL            *actor.PID
	CatchUpEntries uint64
	MemberID       uint64
	Logger         *slog.Logger
}

// Props returns the snapshotter's props.
func Props(cfg Config) *actor.Props {
	if cfg.CatchUpEntries == 0 {
		cfg.CatchUpEntries = DefaultCatchUpEntries
	}
	return actor.PropsFromProducer(func() actor.Actor { return &snapshotter{cfg: cfg} })
}

type snapshotter struct {
	cfg Config
	log *slog.Logger
}

// Receive dispatches on the message type.
func (s *snapshotter) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		s.log = s.cfg.Logger.With("actor", "snapshotter", "member", s.cfg.MemberID)
	case *actor.Stopping, *actor.Restarting, *actor.Stopped:
	case *messages.SaveSnapshot:
		s.handleSaveSnapshot(ctx, msg)
	case *messages.CompactRaftLog:
		s.handleCompactRaftLog(msg)
	default:
		s.log.Warn("unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (s *snapshotter) handleSaveSnapshot(ctx actor.Context, msg *messages.SaveSnapshot) {
	_ = failpoint.Inject("snapshotterPanic")
	sn, err := s.cfg.Storage.CreateSnapshot(msg.Index, msg.ConfState, nil)
	if errors.Is(err, raft.ErrSnapOutOfDate) {
		// An in-memory snapshot (CompactRaftLog) at this very index is
		// still to be saved; a newer one is a snapshot installed from
		// the leader, saved already.
		if sn, err = s.cfg.Storage.Snapshot(); err != nil || sn.GetMetadata().GetIndex() != msg.Index {
			return
		}
	}
	if err != nil {
		s.log.Warn("create snapshot", "index", msg.Index, "err", err)
		return
	}
	if err := s.cfg.Snap.Save(sn); err != nil {
		panic(fmt.Sprintf("snapshotter: save snapshot at %d: %v", msg.Index, err))
	}
	term := sn.GetMetadata().GetTerm()
	ctx.Send(s.cfg.WAL, &messages.ReleaseWAL{Index: msg.Index, Term: term})
	s.compact(msg.Index)
	if err := s.cfg.Snap.ReleaseOlderThan(msg.Index); err != nil {
		// Old snapshot files cost disk, not correctness.
		s.log.Warn("release old snapshots", "err", err)
	}
	s.log.Info("snapshot saved", "index", msg.Index, "term", term)
	if ctx.Sender() != nil {
		ctx.Respond(&messages.SnapshotSaved{Index: msg.Index, Term: term})
	}
}

// handleCompactRaftLog takes an in-memory snapshot at msg.Index, which
// raft hands out when a follower needs a snapshot (the database shipped
// is the backend's, which holds msg.Index), and compacts the log behind
// it: raft's log then stays near CatchUpEntries entries, as etcd's does,
// instead of growing by SnapshotCount between disk snapshots. Nothing
// goes to disk: the WAL and the snapshot files still start at the newest
// disk snapshot.
func (s *snapshotter) handleCompactRaftLog(msg *messages.CompactRaftLog) {
	_, err := s.cfg.Storage.CreateSnapshot(msg.Index, msg.ConfState, nil)
	if err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
		s.log.Warn("in-memory snapshot", "index", msg.Index, "err", err)
		return
	}
	s.compact(msg.Index)
}

// compact drops raft's log entries up to CatchUpEntries behind index,
// which a snapshot covers.
func (s *snapshotter) compact(index uint64) {
	if index <= s.cfg.CatchUpEntries {
		return
	}
	if err := s.cfg.Storage.Compact(index - s.cfg.CatchUpEntries); err != nil && !errors.Is(err, raft.ErrCompacted) {
		s.log.Warn("compact raft log", "index", index-s.cfg.CatchUpEntries, "err", err)
	}
}
