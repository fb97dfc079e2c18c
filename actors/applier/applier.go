// Package applier is the backend applier: it applies committed raft entries
// (MsgStorageApply) to the MVCC store and hands each result to the request
// waiting for it.
//
// In: Apply (from the raft actor), commitDue (its own timer).
// Out: Applied to the sender of Apply (the raft actor), EventsApplied to
// the watch hub (one per batch, never waiting for it; EventsDropped when
// its mailbox is full, see hublink.Link.SendEvents), SaveSnapshot to the
// snapshotter every SnapshotCount entries and CompactRaftLog between them
// (compactlog.go), MembersChanged to the parent
// (the core) after a batch that changed the membership, InstallBackend to
// the parent for a snapshot from the leader; results through the
// raftclient's wait registries, the applied index there too, the active
// alarms and the auth state through the member view, token side effects
// to Config.Tokens.
//
// Auth (auth.go): the applier holds the applied auth state, loaded and
// published like the alarms; it applies auth requests through raft and
// refuses, as etcd's auth applier, the writes the entry's sender may not
// make.
//
// Alarms (alarm.go): the applier holds the applied alarm set, loaded from
// the backend at start and after a snapshot install; while NOSPACE or
// CORRUPT is active it refuses the entries etcd's capped and corrupt
// appliers refuse, on every member alike.
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
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/internal/hublink"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/alarm"
	"github.com/troupedb/troupe/persistence/auth"
	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// maxQueuedEventBatches bounds the EventsApplied messages waiting in the
// watch hub's mailbox; past it batches' events are dropped, the hub is
// told (EventsDropped) and reads them from the store.
const maxQueuedEventBatches = 1024

// DefaultCommitInterval bounds how long applied data stays out of bbolt.
const DefaultCommitInterval = 100 * time.Millisecond

// installTimeout bounds the wait for the core to swap the backend; past it
// the applier fails and the core restarts, which finishes the install from
// the snapshot dir.
const installTimeout = time.Minute

// Config of the applier.
type Config struct {
	Store *mvcc.Store
	// Client is the member's raftclient: the applier answers its waiters,
	// advances its applied index, and proposes the NOSPACE alarm with it.
	Client *raftclient.Client
	// Hub, if set, is where the watch hub is found.
	Hub            *hublink.Link
	Snapshotter    *actor.PID
	SnapshotCount  uint64 // entries between snapshots
	SnapshotIndex  uint64 // index of the newest snapshot at start
	CommitInterval time.Duration
	QuotaBytes     int64 // --quota-backend-bytes in effect, <= 0: none; see quota.go
	// Cluster is the applied membership; the applier is its one writer.
	Cluster *membership.Cluster
	// Changes, if set, collects the store's events (the store's Changed
	// hook adds to it); after each batch they go to the watch hub.
	Changes *Changes
	// WarningApplyDuration is etcd's --warning-apply-duration: a request
	// whose apply takes longer is logged at warn; 0 turns it off.
	WarningApplyDuration time.Duration
	// Tokens, if set, hears the token side effects of applied auth
	// requests (see auth.go).
	Tokens auth.TokenKeeper
	Logger *slog.Logger
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

	snapIndex uint64
	// memSnapIndex is the index of the newest in-memory snapshot asked
	// for, memSnapBytes the bytes of entries applied since, and
	// confChangeIndex the index of the newest conf change applied (see
	// maybeCompactRaftLog).
	memSnapIndex    uint64
	memSnapBytes    int
	confChangeIndex uint64
	commitTimer     *time.Timer // non-nil while a commitDue is scheduled
	membersChanged  bool        // during one Apply
	alarms          alarm.Set   // applied alarms; see alarm.go
	auth            *auth.State // applied auth state; see auth.go
	quota           quotaState  // see quota.go

	// ccAnswers are the answers to this Apply's membership changes, sent
	// once raft has been told (at most one per change entry of a batch).
	ccAnswers []confChangeAnswer

	// req is the entry being applied, decoded into the same message each
	// time: a new one was 3 % of the bytes a put allocates. Nothing keeps
	// it past applyEntry (its fields' values may be kept). header, put
	// and txnMsgs are its Header, Put and Txn, reused the same way (see
	// decode).
	req     pb.InternalRaftRequest
	header  pb.RequestHeader
	put     pb.PutRequest
	txnMsgs txnMessages
}

// Receive dispatches on the message type.
func (a *applier) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		a.log = a.cfg.Logger.With("actor", "applier", "member", a.cfg.Client.View().MemberID)
		a.snapIndex = a.cfg.SnapshotIndex
		a.memSnapIndex = a.cfg.SnapshotIndex
		a.quota.root = ctx.ActorSystem().Root
		a.loadAlarms()
		a.loadAuth()
	case *actor.Stopping, *actor.Restarting:
		a.stopTimer()
	case *actor.Stopped:
	case *messages.Apply:
		a.handleApply(ctx, msg)
	case *messages.InstallSnapshot:
		a.handleInstallSnapshot(ctx, msg)
	case *messages.CommitBackend:
		ctx.Respond(&messages.BackendCommitted{Err: a.cfg.Store.Commit()})
	case commitDue:
		a.handleCommitDue()
	default:
		a.log.Warn("unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (a *applier) handleApply(ctx actor.Context, msg *messages.Apply) {
	_ = failpoint.Inject("applierPanic")
	var last uint64
	var ccs []*raftpb.ConfChange
	a.membersChanged = false
	for _, e := range msg.Msg.Entries {
		a.memSnapBytes += len(e.Data)
		if e.GetType() == raftpb.EntryNormal {
			a.applyEntry(e)
		} else {
			ccs = append(ccs, a.applyConfChange(e))
			a.confChangeIndex = e.GetIndex()
		}
		last = e.GetIndex()
	}
	if last > 0 {
		a.cfg.Client.Waits().Applied.Advance(last)
	}
	_ = failpoint.Inject("applierBeforeApplied")
	ctx.Respond(&messages.Applied{Msg: msg.Msg, ConfChanges: ccs})
	// Only now that Applied is in the raft actor's mailbox: a proposer
	// answered earlier could propose its next change before raft applied
	// this one, and raft turns a change proposed while one is pending
	// into an empty entry, which nobody answers (etcd, too, has raft
	// apply a change before it answers the proposer).
	for _, ans := range a.ccAnswers {
		a.cfg.Client.Waits().ConfChanges.Trigger(ans.id, ans.res)
	}
	clear(a.ccAnswers)
	a.ccAnswers = a.ccAnswers[:0]
	a.publishEvents(ctx)
	if a.membersChanged {
		ctx.Send(ctx.Parent(), &messages.MembersChanged{Members: a.cfg.Cluster.Members()})
	}
	if last > 0 && a.cfg.SnapshotCount > 0 && last-a.snapIndex >= a.cfg.SnapshotCount {
		a.snapshot(ctx, last, a.confState())
		return
	}
	a.maybeCompactRaftLog(ctx, last)
	a.scheduleCommit(ctx)
}

// confState is raft's configuration as the applied membership has it.
func (a *applier) confState() *raftpb.ConfState {
	cs := &raftpb.ConfState{}
	if a.cfg.Cluster == nil {
		return cs
	}
	for _, m := range a.cfg.Cluster.Members() {
		if m.IsLearner {
			cs.Learners = append(cs.Learners, m.ID)
		} else {
			cs.Voters = append(cs.Voters, m.ID)
		}
	}
	return cs
}

func (a *applier) applyEntry(e *raftpb.Entry) {
	st := a.cfg.Store
	idx := e.GetIndex()
	if idx <= st.ConsistentIndex() {
		return
	}
	if len(e.Data) == 0 {
		// A new leader's empty entry: only the index moves.
		st.SetConsistentIndex(idx)
		return
	}
	req := &a.req
	defer a.doneWith() // the entry's data is not kept until the next one
	if err := a.decode(e.Data); err != nil {
		panic(fmt.Sprintf("applier: entry %d is not an InternalRaftRequest: %v", idx, err))
	}
	start := time.Now()
	resp, err := a.applyQuota(idx, req, start)
	if errors.Is(err, mvcc.ErrAlreadyApplied) {
		return
	}
	if took := time.Since(start); a.cfg.WarningApplyDuration > 0 && took > a.cfg.WarningApplyDuration {
		a.warnSlowApply(took, req, resp, err)
	}
	a.cfg.Client.Waits().Proposals.Trigger(req.GetHeader().GetID(), raftclient.Result{Resp: resp, Err: err})
}

// warnSlowApply logs an apply slower than --warning-apply-duration with
// etcd's message and fields (values redacted as etcd's stringer does).
func (a *applier) warnSlowApply(took time.Duration, req *pb.InternalRaftRequest, resp any, err error) {
	size := ""
	if m, ok := resp.(proto.Message); ok && m != nil {
		size = fmt.Sprintf("size:%d", proto.Size(m))
	}
	a.log.Warn("apply request took too long", "took", took, "expected-duration", a.cfg.WarningApplyDuration,
		"prefix", "", "request", (&pb.InternalRaftStringer{Request: req}).String(), "response", size, "error", err)
}

func (a *applier) applyRequest(idx uint64, req *pb.InternalRaftRequest) (any, error) {
	st := a.cfg.Store
	if err := a.checkAlarms(idx, req); err != nil {
		return nil, err
	}
	if err := a.checkAuth(idx, req); err != nil {
		return nil, err
	}
	switch {
	case req.Put != nil:
		return st.Put(idx, req.Put)
	case req.DeleteRange != nil:
		return st.DeleteRange(idx, req.DeleteRange)
	case req.Txn != nil:
		return st.Txn(idx, req.Txn)
	case req.Compaction != nil:
		return st.Compact(idx, req.Compaction)
	case req.ClusterMemberAttrSet != nil:
		return a.applyAttributes(idx, req.ClusterMemberAttrSet)
	case req.LeaseGrant != nil:
		return st.LeaseGrant(idx, req.LeaseGrant)
	case req.LeaseRevoke != nil:
		return st.LeaseRevoke(idx, req.LeaseRevoke)
	case req.LeaseCheckpoint != nil:
		return st.LeaseCheckpoint(idx, req.LeaseCheckpoint)
	case req.Alarm != nil:
		return a.applyAlarm(idx, req.Alarm)
	case auth.IsAuthRequest(req):
		return a.applyAuth(idx, req)
	default:
		// A request kind this member does not serve yet: it is still a
		// committed entry, so the index moves and the caller hears why.
		st.SetConsistentIndex(idx)
		return nil, fmt.Errorf("applier: unsupported request in entry %d", idx)
	}
}

// publishEvents sends the batch's events to the watch hub: one message
// per batch, never waiting for it. Without a hub they are dropped; a hub
// that starts later reads history from the store.
func (a *applier) publishEvents(ctx actor.Context) {
	if a.cfg.Changes == nil {
		return
	}
	evs := a.cfg.Changes.take()
	if a.cfg.Hub == nil {
		return
	}
	a.cfg.Hub.SendEvents(ctx, &messages.EventsApplied{Rev: a.cfg.Store.Rev(), Events: evs}, maxQueuedEventBatches)
}

func (a *applier) handleInstallSnapshot(ctx actor.Context, msg *messages.InstallSnapshot) {
	md := msg.Msg.GetSnapshot().GetMetadata()
	a.stopTimer()
	// The core owns the backend's files: it swaps them. The applier waits
	// (nothing else may touch the store meanwhile, and raft sends no Apply
	// before SnapshotInstalled).
	res, err := ctx.RequestFuture(ctx.Parent(), &messages.InstallBackend{Index: md.GetIndex()}, installTimeout).Result()
	installed, _ := res.(*messages.BackendInstalled)
	if err == nil && installed == nil {
		err = fmt.Errorf("core answered %T", res)
	}
	if err == nil {
		err = installed.Err
	}
	if err != nil {
		// The snapshot is durable in the WAL but the backend is not: a
		// restart installs it from the snapshot dir or asks again.
		panic(fmt.Sprintf("applier: install snapshot %d: %v", md.GetIndex(), err))
	}
	st, cl := installed.Store, installed.Cluster
	a.cfg.Store, a.cfg.Cluster = st, cl
	a.snapIndex = md.GetIndex()
	a.memSnapIndex, a.memSnapBytes = md.GetIndex(), 0
	a.loadAlarms()
	a.loadAuth()
	ctx.Send(ctx.Parent(), &messages.MembersChanged{Members: cl.Members()})
	a.cfg.Client.Waits().Applied.Reset(st.ConsistentIndex())
	a.log.Info("installed snapshot from the leader", "index", md.GetIndex(), "backend-index", st.ConsistentIndex())
	ctx.Respond(&messages.SnapshotInstalled{Msg: msg.Msg})
	// The new backend's revision, without events: the hub fills the gap
	// from its history.
	a.publishEvents(ctx)
}

// applyConfChange applies a committed membership change to the membership
// and the backend (in the entry's batch, so a replay is idempotent) and
// returns the change raft must apply: the entry's, or for one the
// membership refuses, a change of node 0, as etcd does.
func (a *applier) applyConfChange(e *raftpb.Entry) *raftpb.ConfChange {
	idx := e.GetIndex()
	var cc raftpb.ConfChange
	if e.GetType() != raftpb.EntryConfChange {
		panic(fmt.Sprintf("applier: entry %d is a %s; troupe proposes only ConfChange", idx, e.GetType()))
	}
	if err := proto.Unmarshal(e.Data, &cc); err != nil {
		panic(fmt.Sprintf("applier: entry %d is not a ConfChange: %v", idx, err))
	}
	st, cl := a.cfg.Store, a.cfg.Cluster
	if idx <= st.ConsistentIndex() {
		// Replayed after a restart: the membership already holds what
		// this change did; raft, rebuilt from the snapshot, needs it again.
		if a.applied(&cc) {
			return &cc
		}
		return refused(&cc)
	}
	change, err := cl.ApplyConfChange(&cc)
	if err != nil {
		if aerr := st.ApplyMembers(idx, nil, nil); aerr != nil && !errors.Is(aerr, mvcc.ErrAlreadyApplied) {
			panic(fmt.Sprintf("applier: record refused conf change %d: %v", idx, aerr))
		}
		a.answerConfChange(cc.GetId(), raftclient.ConfChangeResult{Err: err})
		a.log.Warn("conf change refused", "index", idx, "type", cc.GetType().String(), "node", fmt.Sprintf("%x", cc.GetNodeId()), "err", err)
		return refused(&cc)
	}
	if err := st.ApplyMembers(idx, change.Put, change.Removed); err != nil && !errors.Is(err, mvcc.ErrAlreadyApplied) {
		panic(fmt.Sprintf("applier: store conf change %d: %v", idx, err))
	}
	a.membersChanged = true
	a.answerConfChange(cc.GetId(), raftclient.ConfChangeResult{Members: cl.Members()})
	a.log.Info("membership changed", "index", idx, "type", cc.GetType().String(), "node", fmt.Sprintf("%x", cc.GetNodeId()))
	return &cc
}

// answerConfChange queues the answer to a change's proposer until raft
// has been told the change is applied (see handleApply).
func (a *applier) answerConfChange(id uint64, res raftclient.ConfChangeResult) {
	a.ccAnswers = append(a.ccAnswers, confChangeAnswer{id, res})
}

// confChangeAnswer is a proposer's answer held until raft applied the
// change.
type confChangeAnswer struct {
	id  uint64
	res raftclient.ConfChangeResult
}

// applied reports whether the membership shows cc as done. A change of a
// member removed since was applied before the removal (ids are never
// reused, and a removed id is refused before it is proposed): raft, which
// replays from an empty or older configuration, needs the add, or a
// replay whose first entry adds a since-removed member leaves it without
// a voter.
func (a *applier) applied(cc *raftpb.ConfChange) bool {
	cl := a.cfg.Cluster
	if cl.Removed(cc.GetNodeId()) {
		return true
	}
	switch cc.GetType() {
	case raftpb.ConfChangeRemoveNode:
		return false
	default:
		_, ok := cl.Member(cc.GetNodeId())
		return ok
	}
}

func refused(cc *raftpb.ConfChange) *raftpb.ConfChange {
	return &raftpb.ConfChange{Type: cc.Type, NodeId: proto.Uint64(0)}
}

// applyAttributes records a member's published name and client URLs.
func (a *applier) applyAttributes(idx uint64, req *membershippb.ClusterMemberAttrSetRequest) (any, error) {
	m, ok := a.cfg.Cluster.SetAttributes(req.Member_ID, req.GetMemberAttributes().GetName(), req.GetMemberAttributes().GetClientUrls())
	var put []membership.Member
	if ok {
		put = []membership.Member{m}
		a.membersChanged = true
	}
	if err := a.cfg.Store.ApplyMembers(idx, put, nil); err != nil && !errors.Is(err, mvcc.ErrAlreadyApplied) {
		panic(fmt.Sprintf("applier: store member attributes %d: %v", idx, err))
	}
	return nil, nil
}

func (a *applier) snapshot(ctx actor.Context, index uint64, cs *raftpb.ConfState) {
	a.stopTimer()
	if err := a.cfg.Store.Commit(); err != nil {
		panic(fmt.Sprintf("applier: commit backend before snapshot: %v", err))
	}
	a.snapIndex = index
	a.memSnapIndex, a.memSnapBytes = index, 0
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
