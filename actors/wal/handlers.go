package wal

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/internal/metrics"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/wal"
)

func (a *walActor) handleStarted() {
	a.saved = a.w.HardState()
	a.log.Info("wal actor started", "last_index", a.w.LastIndex(),
		"term", a.saved.GetTerm(), "commit", a.saved.GetCommit())
}

func (a *walActor) handleStopping() {
	if err := a.w.Close(); err != nil {
		a.log.Error("wal close failed", "err", err)
		return
	}
	a.log.Info("wal actor stopped", "dropped_appends", len(a.pending))
}

func (a *walActor) handleAppend(ctx actor.Context, m *messages.Append) {
	a.pending = append(a.pending, m)
	if len(a.pending) >= a.cfg.MaxBatchAppends {
		a.handleFlush(ctx)
		return
	}
	if !a.flushPending {
		a.flushPending = true
		ctx.Send(ctx.Self(), &flush{})
	}
}

// handleFlush writes the pending batch, syncs it if raft needs it to be
// synced, and only then answers every Append of it in order.
func (a *walActor) handleFlush(ctx actor.Context) {
	a.flushPending = false
	if len(a.pending) == 0 {
		return
	}
	// Chaos tests restart the core through this point.
	_ = failpoint.Inject("walPanic")
	var hs *raftpb.HardState
	ents := a.ents[:0]
	for _, ap := range a.pending {
		m := ap.Msg
		if s := m.GetSnapshot(); s.GetMetadata().GetIndex() != 0 {
			// The snapshot replaces the log before it: write what the
			// batch holds so far, then the snapshot (synced, covering it).
			a.save(hs, ents, false)
			ents, hs = ents[:0], nil
			a.saveSnapshot(s)
		}
		ents = append(ents, m.GetEntries()...)
		if h := hardStateOf(m); h != nil {
			hs = h
		}
	}
	a.save(hs, ents, mustSync(hs, a.saved, len(ents)))
	for _, ap := range a.pending {
		ctx.Send(a.cfg.Raft, &messages.Appended{Msg: ap.Msg})
	}
	clear(ents)
	a.ents = ents[:0]
	clear(a.pending)
	a.pending = a.pending[:0]
}

// save writes and, if sync, fsyncs; any failure panics, see the package doc.
func (a *walActor) save(hs *raftpb.HardState, ents []*raftpb.Entry, sync bool) {
	if hs == nil && len(ents) == 0 {
		return
	}
	defer metrics.ObserveWALSync(sync, time.Now())
	if err := a.w.Save(hs, ents, sync); err != nil {
		a.log.Error("wal save failed; the log can no longer be trusted", "err", err, "entries", len(ents))
		panic(fmt.Errorf("wal actor: %w", err))
	}
	if hs != nil {
		a.saved = hs
	}
}

func (a *walActor) saveSnapshot(s *raftpb.Snapshot) {
	md := s.GetMetadata()
	if a.cfg.Snap != nil {
		if err := a.cfg.Snap.Save(s); err != nil {
			a.log.Error("snapshot file save failed", "err", err, "index", md.GetIndex())
			panic(fmt.Errorf("wal actor: %w", err))
		}
	}
	if err := a.w.SaveSnapshot(wal.SnapshotMarker{Index: md.GetIndex(), Term: md.GetTerm()}); err != nil {
		a.log.Error("wal snapshot marker save failed", "err", err, "index", md.GetIndex())
		panic(fmt.Errorf("wal actor: %w", err))
	}
	a.log.Info("snapshot marker saved", "index", md.GetIndex(), "term", md.GetTerm())
}

func (a *walActor) handleReleaseWAL(m *messages.ReleaseWAL) {
	// The marker lets a restart replay from this snapshot once the
	// segments before it are gone; the snapshot file is already durable.
	if err := a.w.SaveSnapshot(wal.SnapshotMarker{Index: m.Index, Term: m.Term}); err != nil {
		panic(fmt.Sprintf("wal: save snapshot marker %d: %v", m.Index, err))
	}
	if err := a.w.ReleaseTo(m.Index); err != nil {
		// Old segments left behind cost disk, not correctness.
		a.log.Error("wal release failed", "err", err, "index", m.Index)
	}
}

// hardStateOf returns the hard state a MsgStorageAppend carries, or nil:
// raft sets Term, Vote and Commit together, or none of them.
func hardStateOf(m *raftpb.Message) *raftpb.HardState {
	if m.Term == nil && m.Vote == nil && m.Commit == nil {
		return nil
	}
	return &raftpb.HardState{Term: new(m.GetTerm()), Vote: new(m.GetVote()), Commit: new(m.GetCommit())}
}

// mustSync is raft.MustSync: new entries, or a term or vote change, must
// reach the disk before raft hears of them; a commit-only change need not.
func mustSync(hs, saved *raftpb.HardState, entries int) bool {
	if entries > 0 {
		return true
	}
	return hs != nil && (hs.GetTerm() != saved.GetTerm() || hs.GetVote() != saved.GetVote())
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }
