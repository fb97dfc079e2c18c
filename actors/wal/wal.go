// Package wal is the wal actor: it makes raft's MsgStorageAppend durable.
//
// It owns the open *wal.WAL (and, if configured, the snapshot files of
// received snapshots) from the moment it is spawned, and closes it when it
// stops.
//
// In:
//
//	*messages.Append      a MsgStorageAppend from the raft actor: entries,
//	                      hard state (Msg.Term/Vote/Commit) and snapshot
//	*messages.ReleaseWAL  a snapshot at Index is durable: write its marker, drop older segments
//
// Out, to Config.Raft:
//
//	*messages.Appended    one per Append, in arrival order
//
// Appends are batched through the mailbox: the first Append of a batch
// sends the actor a flush message, so every Append queued before it joins
// the batch, and the batch is written with one Save and at most one
// fdatasync, with no timers. The sync is skipped when raft's MustSync rule
// allows it: no entries and no term or vote change (a commit-only advance).
//
// Invariant: Appended is never sent before the write (and the fsync, when
// one is needed) of its batch returned. A failed write or fsync leaves the
// log in an unknown state, so the actor panics; the WAL refuses further
// writes (wal.ErrFailed), and the core supervisor must restart the core
// from what is on disk (reopen the WAL, replay). A restart of this actor
// alone keeps the same WAL and drops the Appends of the failed batch.
package wal

import (
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/snap"
	"github.com/troupedb/troupe/persistence/wal"
)

// DefaultMaxBatchAppends bounds the Appends written by one flush.
const DefaultMaxBatchAppends = 4096

// Config wires a wal actor.
type Config struct {
	// Dir is the WAL directory, for logs.
	Dir string
	// WAL is the log, opened and read (ReadAll) by the start-up sequence;
	// the actor owns it from then on and closes it when it stops.
	WAL *wal.WAL
	// Snap, if set, receives the snapshot of an Append carrying one before
	// its marker goes to the WAL (so a marker never names a missing file).
	Snap *snap.Snapshotter
	// Raft receives the Appended replies.
	Raft *actor.PID
	// MaxBatchAppends bounds one batch: when that many Appends are
	// buffered, they are flushed without waiting for the flush message.
	// 0 means DefaultMaxBatchAppends.
	MaxBatchAppends int
	// Logger is the parent logger; nil means slog.Default().
	Logger *slog.Logger
}

// Props returns the props of a wal actor; opts can add a dispatcher or
// mailbox.
func Props(cfg Config, opts ...actor.PropsOption) *actor.Props {
	if cfg.MaxBatchAppends <= 0 {
		cfg.MaxBatchAppends = DefaultMaxBatchAppends
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return actor.PropsFromProducer(func() actor.Actor { return newWALActor(cfg) }, opts...)
}

// flush is sent by the actor to itself to end a batch.
type flush struct{}

type walActor struct {
	cfg Config
	log *slog.Logger
	w   *wal.WAL

	// pending holds the Appends of the current batch in arrival order;
	// none of them has been answered. flushPending is true while a flush
	// message is in the mailbox.
	pending      []*messages.Append
	flushPending bool
	// saved is the last hard state written: a batch whose hard state has
	// the same term and vote (and no entries) needs no fsync.
	saved *raftpb.HardState
	ents  []*raftpb.Entry // scratch, reused by every flush
}

func newWALActor(cfg Config) *walActor {
	return &walActor{
		cfg: cfg,
		log: cfg.Logger.With("actor", "wal", "dir", cfg.Dir),
		w:   cfg.WAL,
	}
}

// Receive implements actor.Actor.
func (a *walActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.handleStarted()
	case *actor.Stopping:
		a.handleStopping()
	case *actor.Stopped, *actor.Restarting:
	case *messages.Append:
		a.handleAppend(ctx, m)
	case *flush:
		a.handleFlush(ctx)
	case *messages.ReleaseWAL:
		a.handleReleaseWAL(m)
	default:
		a.log.Warn("unexpected message", "type", typeName(m))
	}
}
