// Package applier is the backend applier: it applies committed raft entries
// (MsgStorageApply) to the MVCC store and hands each result to the request
// waiting for it.
//
// In: Apply (from the raft actor), commitDue (its own timer).
// Out: Applied to the sender of Apply (the raft actor), SaveSnapshot to the
// snapshotter every SnapshotCount entries, results through the wait
// registry, the applied index through memberstate.
//
// Invariants: entries apply in index order and at most once: the store
// skips any index it already holds, so replaying the WAL after a crash or
// a core restart is safe. The store commits to bbolt in batches (every
// CommitInterval or when its batch is full), in the background, with the
// applied index in the same transaction; durability comes from the WAL,
// not from that commit. Before a snapshot the commit is synchronous: the
// WAL may drop what the snapshot covers only once bbolt holds it.
package applier

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/internal/memberstate"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// DefaultCommitInterval bounds how long applied data stays out of bbolt.
const DefaultCommitInterval = 100 * time.Millisecond

// Config of the applier.
type Config struct {
	Store          *mvcc.Store
	State          *memberstate.State
	Snapshotter    *actor.PID
	SnapshotCount  uint64 // entries between snapshots
	SnapshotIndex  uint64 // index of the newest snapshot at start
	CommitInterval time.Duration
	// InstallSnapshot replaces the backend with the database received
	// with the raft snapshot at index and returns the new backend.
	InstallSnapshot func(index uint64) (*mvcc.Store, error)
	Logger          *slog.Logger
}

// Props returns the applier's props.
// opts can add a dispatcher or mailbox.
func Props(cfg Config, opts ...actor.PropsOption) *actor.Props {
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = DefaultCommitInterval
	}
	return actor.PropsFromProducer(func() actor.Actor { return &applier{cfg: cfg} }, opts...)
}

type commitDue struct{}

type applier struct {
	cfg Config
	log *slog.Logger

	snapIndex   uint64
	commitTimer *time.Timer // non-nil while a commitDue is scheduled
}

// Receive dispatches on the message type.
func (a *applier) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.log = a.cfg.Logger.With("actor", "applier", "member", a.cfg.State.MemberID)
		a.snapIndex = a.cfg.SnapshotIndex
	case *actor.Stopping, *actor.Restarting:
		a.stopTimer()
	case *actor.Stopped:
	case *messages.Apply:
		a.handleApply(ctx, msg)
	case *messages.InstallSnapshot:
		a.handleInstallSnapshot(ctx, msg)
	case commitDue:
		a.handleCommitDue()
	default:
		a.log.Warn("unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (a *applier) handleApply(ctx actor.Context, msg *messages.Apply) {
	_ = failpoint.Inject("applierPanic")
	var last uint64
	for _, e := range msg.Msg.Entries {
		a.applyEntry(e)
		last = e.GetIndex()
	}
	if last > 0 {
		a.cfg.State.Applied.Advance(last)
	}
	ctx.Respond(&messages.Applied{Msg: msg.Msg})
	if last > 0 && a.cfg.SnapshotCount > 0 && last-a.snapIndex >= a.cfg.SnapshotCount {
		a.snapshot(ctx, last, msg.ConfState)
		return
	}
	a.scheduleCommit(ctx)
}

func (a *applier) applyEntry(e *raftpb.Entry) {
	st := a.cfg.Store
	idx := e.GetIndex()
	if idx <= st.ConsistentIndex() {
		return
	}
	if e.GetType() != raftpb.EntryNormal || len(e.Data) == 0 {
		// Conf changes are raft's (the raft actor applied them); empty
		// entries mark a new leader's term. Only the index moves.
		st.SetConsistentIndex(idx)
		return
	}
	var req pb.InternalRaftRequest
	if err := proto.Unmarshal(e.Data, &req); err != nil {
		panic(fmt.Sprintf("applier: entry %d is not an InternalRaftRequest: %v", idx, err))
	}
	resp, err := a.applyRequest(idx, &req)
	if errors.Is(err, mvcc.ErrAlreadyApplied) {
		return
	}
	a.cfg.State.Waits.Trigger(req.GetHeader().GetID(), memberstate.Result{Resp: resp, Err: err})
}

func (a *applier) applyRequest(idx uint64, req *pb.InternalRaftRequest) (any, error) {
	st := a.cfg.Store
	switch {
	case req.Put != nil:
		return st.Put(idx, req.Put)
	case req.DeleteRange != nil:
		return st.DeleteRange(idx, req.DeleteRange)
	case req.Txn != nil:
		return st.Txn(idx, req.Txn)
	case req.Compaction != nil:
		return st.Compact(idx, req.Compaction)
	default:
		// A request kind this member does not serve yet: it is still a
		// committed entry, so the index moves and the caller hears why.
		st.SetConsistentIndex(idx)
		return nil, fmt.Errorf("applier: unsupported request in entry %d", idx)
	}
}

func (a *applier) handleInstallSnapshot(ctx actor.Context, msg *messages.InstallSnapshot) {
	md := msg.Msg.GetSnapshot().GetMetadata()
	a.stopTimer()
	st, err := a.cfg.InstallSnapshot(md.GetIndex())
	if err != nil {
		// The snapshot is durable in the WAL but the backend is not: a
		// restart installs it from the snapshot dir or asks again.
		panic(fmt.Sprintf("applier: install snapshot %d: %v", md.GetIndex(), err))
	}
	a.cfg.Store = st
	a.snapIndex = md.GetIndex()
	a.cfg.State.Applied.Reset(st.ConsistentIndex())
	a.log.Info("installed snapshot from the leader", "index", md.GetIndex(), "backend-index", st.ConsistentIndex())
	ctx.Respond(&messages.SnapshotInstalled{Msg: msg.Msg})
}

func (a *applier) snapshot(ctx actor.Context, index uint64, cs *raftpb.ConfState) {
	a.stopTimer()
	if err := a.cfg.Store.Commit(); err != nil {
		panic(fmt.Sprintf("applier: commit backend before snapshot: %v", err))
	}
	a.snapIndex = index
	ctx.Send(a.cfg.Snapshotter, &messages.SaveSnapshot{Index: index, ConfState: cs})
}

func (a *applier) scheduleCommit(ctx actor.Context) {
	if a.commitTimer != nil {
		return
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	a.commitTimer = time.AfterFunc(a.cfg.CommitInterval, func() { root.Send(self, commitDue{}) })
}

func (a *applier) handleCommitDue() {
	a.commitTimer = nil
	// In the background: applying goes on while bbolt writes and syncs.
	if err := a.cfg.Store.CommitAsync(); err != nil {
		panic(fmt.Sprintf("applier: commit backend %s: %v", a.cfg.Store.Path(), err))
	}
}

func (a *applier) stopTimer() {
	if a.commitTimer != nil {
		a.commitTimer.Stop()
		a.commitTimer = nil
	}
}
