// Package raft is the raft actor: it owns one raft.RawNode with
// AsyncStorageWrites and is the only code that touches it.
//
// In: Propose (batched into one MsgProp per mailbox run, or, while an
// Append is in flight, held until it is answered), WithdrawProposal
// (a proposer gave up), ReadIndex (batched into one raft ReadIndex round;
// a single voter answers it with its published read index, and holds it
// until its term has a commit), Tick (from its ticker child), Appended
// (from the wal actor), Applied (from the applier), and raft messages from
// peers (StepRaft, one per envelope).
// Out: Append to the wal actor, Apply to the applier, raft messages to
// other members as SendRaft to the peers supervisor, failed proposals and
// read indexes through raftclient's wait registries, leader, term and
// progress to the member view, and, while it leads a configuration whose
// only voter it is, its commit index as a read index that needs no round
// (raftclient.LocalReadIndex), published before anything of a Ready
// leaves.
//
// Without a leader it waits as etcd 3.6.8 does: proposals are parked
// until a leader is known or their proposer withdraws them; read index
// rounds are sent again every ReadRetryTicks while a leader is known, go
// to a newly elected leader at once and fail with etcd's "request timed
// out" after RequestTimeoutTicks. The ticks are the ticker's, so no timer
// or goroutine is kept per request.
//
// Invariants: at most one Append is in flight, and the next Ready is not
// taken until the wal actor answers. That back-pressure is what batches:
// proposals pile up while the WAL syncs and the next Ready carries them all.
// Raft's storage learns entries only after they are durable.
//
// A restart of this actor is a restart of the core: the core re-runs the
// start-up sequence and spawns a new raft actor from what is on disk.
package raft

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/actors/ticker"
	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/metrics"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
)

// Config of the raft actor. Collaborators are injected so tests can put
// recorders in their place.
type Config struct {
	ID            uint64
	Storage       *raft.MemoryStorage
	Bootstrap     []raft.Peer // non-empty only for a brand-new member
	ElectionTick  int
	HeartbeatTick int
	TickInterval  time.Duration // 0: no ticker child (tests tick by hand)
	// DisablePreVote turns raft's Pre-Vote off (etcd's --pre-vote=false):
	// a member that was partitioned away then campaigns at once with a
	// higher term and disrupts the leader when it rejoins.
	DisablePreVote bool
	// SkipElectionTickAdvance is etcd's --initial-election-tick-advance=false:
	// a member of a multi-member cluster waits a whole election timeout
	// before its first campaign. By default (etcd's true) it fast-forwards
	// ElectionTick-2 ticks once more than one peer answers (see
	// advanceTicks). A lone voter campaigns at once either way, as etcd
	// fast-forwards a single-member cluster whatever the flag says.
	SkipElectionTickAdvance bool
	// RequestTimeoutTicks is etcd's request timeout (5 s plus two
	// election timeouts) in ticks: a read index round unanswered that long
	// fails with "request timed out", and a proposal parked that long for
	// want of a leader is dropped (its proposer withdrew it by then).
	// 0: seven election timeouts, 7 s with etcd's default flags.
	RequestTimeoutTicks int
	// ReadRetryTicks is how often a read index raft has not answered is
	// sent again, as etcd's every 500 ms (the request or its answer may
	// be lost). 0: half an election timeout.
	ReadRetryTicks int

	WAL     *actor.PID
	Applier *actor.PID
	// Lessor, when set, is told every change of leader or term
	// (LeaderChanged).
	Lessor *actor.PID
	// Peers, the peers supervisor, carries raft messages to other members
	// (as SendRaft); nil drops them (a member without peer transport).
	Peers *actor.PID

	// Waits are where failed proposals and read indexes are answered.
	Waits *raftclient.Waits
	// LocalReads, when set, is where the actor publishes the read index
	// reads may take without a round while it is a single voter's leader
	// (see publishLocalReads); nil: every read takes the round.
	LocalReads *raftclient.LocalReadIndex
	// View is told the leader, term, commit index and progress.
	View   *memberview.View
	Logger *slog.Logger
}

// Props returns the raft actor's props.
// opts can add a dispatcher or mailbox.
func Props(cfg Config, opts ...actor.PropsOption) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &raftActor{cfg: cfg} }, opts...)
}

// maxParkedProposals bounds the proposals kept while there is no leader;
// beyond it they fail at once with ErrNoLeader.
const maxParkedProposals = 10000

// maxReadRounds bounds the read index rounds raft has not answered; reads
// arriving beyond it wait in the queue for a round to end (each round
// ends by its timeout at the latest).
const maxReadRounds = 1024

// maxAppendsInFlight bounds the Appends the wal actor has not answered:
// while one is in flight, proposals pile up and the next Ready carries them
// all. Measured at 64 clients, 2 in flight made batches smaller for no gain
// in throughput (fsyncs cost CPU here too).
var maxAppendsInFlight = 1

// maxHeldProposals bounds the proposals held while an Append is in flight
// (a stalled disk must not grow them without end): beyond it they are
// stepped into raft at once, whose own limit then applies.
const maxHeldProposals = 10000

type proposeFlush struct{}
type readFlush struct{}

type raftActor struct {
	cfg Config
	log *slog.Logger
	rn  *raft.RawNode

	// ticks counts the ticks since start: the clock of parked proposals
	// and read rounds.
	ticks int
	// proposals queued since the last flush, or parked for a leader.
	proposals  []proposal
	propQueued bool
	// parkedPos is the position in proposals of each parked proposer's
	// id; nil while nothing is parked.
	parkedPos map[uint64]int
	// reads queued for the next round, and the rounds raft has not
	// answered by their sequence number (the ReadIndex context).
	reads      []uint64
	readQueued bool
	readSeq    uint64
	rounds     map[uint64]*readRound

	// appendsInFlight counts Appends sent and not yet Appended; no Ready
	// is taken while it is at maxAppendsInFlight.
	appendsInFlight int
	confState       *raftpb.ConfState
	lastLeader      uint64
	// toldLeader and toldTerm are what the lessor was last told.
	toldLeader, toldTerm uint64
	// advanceWait counts down the ticks left to wait for peers before the
	// initial election tick advance is given up; 0 once done or skipped.
	advanceWait int
	// soleVoter caches whether raft's configuration has this member as
	// its only voter; refreshed wherever that configuration may change
	// (start, applied configuration changes) and at every change of role
	// (a follower's snapshot may bring another configuration).
	soleVoter bool
	// readTerm is the term in which this leader saw an entry of its own
	// term committed (0: none yet): from then on its commit index is a
	// read index, until the term ends.
	readTerm uint64
	// localIndex is the read index last published (0: none); reads that
	// reach the actor meanwhile are answered with it.
	localIndex uint64
}

// peerWait is how long a fresh member waits for its peers to answer
// before it gives the initial election tick advance up: etcd's
// rafthttp.ConnReadTimeout.
const peerWait = 5 * time.Second

// Receive dispatches on the message type.
func (r *raftActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		r.handleStarted(ctx)
	case *actor.Stopping, *actor.Restarting:
		// Whatever the next core's raft actor decides, this one answers
		// no more reads.
		if r.cfg.LocalReads != nil {
			r.cfg.LocalReads.Publish(0)
		}
	case *actor.Stopped, *actor.Terminated:
	case *messages.Propose:
		r.handlePropose(ctx, msg)
	case proposeFlush:
		r.handleProposeFlush(ctx)
	case *messages.WithdrawProposal:
		r.handleWithdrawProposal(msg)
	case *messages.ReadIndex:
		r.handleReadIndex(ctx, msg)
	case readFlush:
		r.handleReadFlush(ctx)
	case *messages.Tick:
		r.handleTick(ctx)
	case *messages.Appended:
		if sn := msg.Msg.GetSnapshot(); sn != nil && !raft.IsEmptySnap(sn) {
			// A snapshot from the leader: the backend takes its database
			// before raft hears the snapshot is in place.
			ctx.Request(r.cfg.Applier, &messages.InstallSnapshot{Msg: msg.Msg})
			return
		}
		r.handleAppended(ctx, &messages.Appended{Msg: msg.Msg})
	case *messages.SnapshotInstalled:
		r.handleAppended(ctx, &messages.Appended{Msg: msg.Msg})
	case *messages.Applied:
		r.handleApplied(ctx, msg)
	case *messages.StepRaft:
		// One envelope from a peer: all of it before the next Ready, so
		// its messages cost one Ready, not one each.
		for _, m := range msg.Msgs {
			if m.GetType() == raftpb.MsgProp && r.holdForwarded(m) {
				continue
			}
			r.step(m)
		}
		r.handleReady(ctx)
	case *messages.ProposeConfChange:
		r.handleProposeConfChange(ctx, msg)
	case *messages.TransferLeadership:
		r.rn.TransferLeader(msg.To)
		r.handleReady(ctx)
	case *messages.PeerUnreachable:
		r.rn.ReportUnreachable(msg.ID)
	case *messages.SnapshotReported:
		r.handleSnapshotReported(ctx, msg)
	default:
		r.log.Warn("unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (r *raftActor) handleStarted(ctx actor.Context) {
	r.log = r.cfg.Logger.With("actor", "raft", "member", r.cfg.ID)
	r.rounds = make(map[uint64]*readRound)
	if r.cfg.RequestTimeoutTicks <= 0 {
		r.cfg.RequestTimeoutTicks = 7 * r.cfg.ElectionTick
	}
	if r.cfg.ReadRetryTicks <= 0 {
		r.cfg.ReadRetryTicks = max(1, r.cfg.ElectionTick/2)
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        r.cfg.ID,
		ElectionTick:              r.cfg.ElectionTick,
		HeartbeatTick:             r.cfg.HeartbeatTick,
		Storage:                   r.cfg.Storage,
		AsyncStorageWrites:        true,
		MaxSizePerMsg:             1 << 20,
		MaxInflightMsgs:           512,
		MaxUncommittedEntriesSize: 1 << 30,
		MaxCommittedSizePerReady:  64 << 20,
		CheckQuorum:               true,
		PreVote:                   !r.cfg.DisablePreVote,
		Logger:                    raftLogger{r.log},
	})
	if err != nil {
		panic(err) // the storage handed over by the start-up is broken
	}
	r.rn = rn
	if len(r.cfg.Bootstrap) > 0 {
		if err := rn.Bootstrap(r.cfg.Bootstrap); err != nil {
			panic(err)
		}
	}
	_, cs, err := r.cfg.Storage.InitialState()
	if err != nil {
		panic(err)
	}
	r.confState = cs
	r.refreshSoleVoter()
	if r.soleVoter && len(r.cfg.Bootstrap) == 0 {
		// A lone voter need not wait an election timeout to lead.
		_ = rn.Campaign()
	}
	r.startTickAdvance()
	if r.cfg.TickInterval > 0 {
		ctx.SpawnNamed(ticker.Props(ticker.Config{Interval: r.cfg.TickInterval}).Configure(metrics.Mailbox("ticker")), "ticker")
	}
	r.handleReady(ctx)
}

// startTickAdvance arms the initial election tick advance of a member
// of a multi-member cluster, unless it is skipped.
func (r *raftActor) startTickAdvance() {
	if len(r.otherMembers()) == 0 {
		return // a lone member: campaigns at once (see soleVoter)
	}
	if r.cfg.SkipElectionTickAdvance {
		r.log.Info("skipping initial election tick advance", "election-ticks", r.cfg.ElectionTick)
		return
	}
	r.advanceWait = int(peerWait / time.Duration(100*time.Millisecond)) // tests tick by hand at etcd's default rate
	if r.cfg.TickInterval > 0 {
		r.advanceWait = max(1, int(peerWait/r.cfg.TickInterval))
	}
	r.log.Info("starting initial election tick advance", "election-ticks", r.cfg.ElectionTick)
}

// advanceTicks fast-forwards ElectionTick-2 ticks once more than one
// other member answers, as etcd's adjustTicks: the first election then
// comes after 2 ticks plus raft's random part instead of a whole
// timeout, yet a leader's heartbeat, one tick away, still arrives first.
// It gives up after peerWait, as etcd (an advance with nobody to vote
// would be wasted).
func (r *raftActor) advanceTicks() {
	if r.advanceWait == 0 {
		return
	}
	r.advanceWait--
	active := 0
	for _, id := range r.otherMembers() {
		if !r.cfg.View.PeerActiveSince(id).IsZero() {
			active++
		}
	}
	if active < 2 {
		return
	}
	r.advanceWait = 0
	ticks := r.cfg.ElectionTick - 2
	r.log.Info("initialized peer connections; fast-forwarding election ticks",
		"forward-ticks", ticks, "election-ticks", r.cfg.ElectionTick, "active-remote-members", active)
	for range ticks {
		r.rn.Tick()
	}
}

// otherMembers are the voters and learners of raft's configuration other
// than this member (a bootstrap sets it before its entries are applied).
func (r *raftActor) otherMembers() []uint64 {
	cfg := r.rn.Status().Config
	var ids []uint64
	for _, set := range []map[uint64]struct{}{cfg.Voters[0], cfg.Voters[1], cfg.Learners} {
		for id := range set {
			if id != r.cfg.ID && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// refreshSoleVoter records whether this member is the only voter of
// raft's configuration (as raft's own IsSingleton, with itself the voter).
func (r *raftActor) refreshSoleVoter() {
	st := r.rn.Status()
	cfg := st.Config.Voters[0]
	_, self := cfg[r.cfg.ID]
	r.soleVoter = len(cfg) == 1 && self && len(st.Config.Voters[1]) == 0
}

func (r *raftActor) handleProposeConfChange(ctx actor.Context, msg *messages.ProposeConfChange) {
	if err := r.rn.ProposeConfChange(msg.CC); err != nil {
		r.cfg.Waits.ConfChanges.Trigger(msg.CC.GetId(), raftclient.ConfChangeResult{Err: rpctypes.ErrGRPCNoLeader})
		return
	}
	r.handleReady(ctx)
}

func (r *raftActor) handleSnapshotReported(ctx actor.Context, msg *messages.SnapshotReported) {
	status := raft.SnapshotFinish
	if msg.Failed {
		status = raft.SnapshotFailure
	}
	r.rn.ReportSnapshot(msg.ID, status)
	r.handleReady(ctx)
}

func (r *raftActor) handleTick(ctx actor.Context) {
	r.ticks++
	r.rn.Tick()
	r.advanceTicks()
	r.expireParked()
	r.tickRounds(ctx)
	r.publishProgress()
	if bs := r.rn.BasicStatus(); bs.Lead == raft.None && bs.RaftState == raft.StateFollower && r.soleVoter {
		// A lone voter need not wait an election timeout to lead; it can
		// campaign once its bootstrap configuration is applied. Only from
		// follower: a campaign in progress waits for its own vote to be
		// durable, which may take longer than a tick.
		_ = r.rn.Campaign()
	}
	r.handleReady(ctx)
}

// publishProgress records, on the leader, how far each member's log
// matches, for the learner readiness check of MemberPromote.
func (r *raftActor) publishProgress() {
	st := r.rn.Status()
	if st.RaftState != raft.StateLeader {
		r.cfg.View.SetProgress(nil, 0)
		return
	}
	match := make(map[uint64]uint64, len(st.Progress))
	for id, pr := range st.Progress {
		match[id] = pr.Match
	}
	r.cfg.View.SetProgress(match, st.GetCommit())
}

func (r *raftActor) handleAppended(ctx actor.Context, msg *messages.Appended) {
	m := msg.Msg
	st := r.cfg.Storage
	if m.Snapshot != nil && !raft.IsEmptySnap(m.Snapshot) {
		if err := st.ApplySnapshot(m.Snapshot); err != nil {
			panic(err)
		}
	}
	if len(m.Entries) > 0 {
		if err := st.Append(m.Entries); err != nil {
			panic(err)
		}
	}
	if m.Term != nil {
		hs := &raftpb.HardState{Term: m.Term, Vote: m.Vote, Commit: m.Commit}
		if err := st.SetHardState(hs); err != nil {
			panic(err)
		}
	}
	r.appendsInFlight--
	r.deliver(ctx, m.Responses)
	// The proposals held while the WAL was busy join this Ready.
	r.stepProposals()
	r.handleReady(ctx)
}

func (r *raftActor) handleApplied(ctx actor.Context, msg *messages.Applied) {
	for _, cc := range msg.ConfChanges {
		r.confState = r.rn.ApplyConfChange(cc)
	}
	if len(msg.ConfChanges) > 0 {
		// A voter added here can lead once this member votes for it:
		// reads take the round from now on, before any message of the
		// new configuration leaves.
		r.refreshSoleVoter()
		r.publishLocalReads(ctx, r.rn.BasicStatus())
	}
	r.deliver(ctx, msg.Msg.Responses)
	r.handleReady(ctx)
}

// deliver steps responses meant for this member and sends the rest to
// their members.
func (r *raftActor) deliver(ctx actor.Context, ms []*raftpb.Message) {
	for _, m := range ms {
		if m.GetTo() == r.cfg.ID {
			r.step(m)
		} else {
			r.sendPeer(ctx, m)
		}
	}
}

func (r *raftActor) step(m *raftpb.Message) {
	if err := r.rn.Step(m); err != nil {
		r.log.Debug("step", "type", m.GetType().String(), "err", err)
	}
}

func (r *raftActor) sendPeer(ctx actor.Context, m *raftpb.Message) {
	if r.cfg.Peers != nil {
		ctx.Send(r.cfg.Peers, &messages.SendRaft{Msg: m})
	}
}

// handleReady takes one Ready unless an append is still in flight, and
// hands its parts to the wal, the applier and the peers.
func (r *raftActor) handleReady(ctx actor.Context) {
	if r.appendsInFlight >= maxAppendsInFlight || !r.rn.HasReady() {
		return
	}
	_ = failpoint.Inject("raftPanic")
	rd := r.rn.Ready()
	if rd.SoftState != nil {
		r.refreshSoleVoter()
		r.observeLeader(ctx, rd.SoftState.Lead)
	}
	bs := r.rn.BasicStatus()
	// Before anything of this Ready leaves: its messages, committed
	// entries and answers may make others acknowledge writes up to this
	// commit index, or make another member leader.
	r.publishLocalReads(ctx, bs)
	for _, rs := range rd.ReadStates {
		r.resolveRead(rs)
	}
	for _, m := range rd.Messages {
		switch m.GetTo() {
		case raft.LocalAppendThread:
			r.appendsInFlight++
			ctx.Send(r.cfg.WAL, &messages.Append{Msg: m})
		case raft.LocalApplyThread:
			// Request, not Send: the applier answers the sender.
			ctx.Request(r.cfg.Applier, &messages.Apply{Msg: m, ConfState: r.confState})
		default:
			r.sendPeer(ctx, m)
		}
	}
	r.cfg.View.SetRaftStatus(bs.Lead, bs.GetTerm(), bs.GetCommit())
	r.tellLessor(ctx, bs.Lead, bs.GetTerm())
}

// tellLessor sends the lessor the leader and term when either changed
// since it was last told: a leader that lost and won again between two
// Readies is a new term, and the lessor must promote again.
func (r *raftActor) tellLessor(ctx actor.Context, lead, term uint64) {
	if r.cfg.Lessor == nil || (lead == r.toldLeader && term == r.toldTerm) {
		return
	}
	r.toldLeader, r.toldTerm = lead, term
	ctx.Send(r.cfg.Lessor, &messages.LeaderChanged{Leader: lead, Term: term})
}

func (r *raftActor) observeLeader(ctx actor.Context, lead uint64) {
	if lead == r.lastLeader {
		return
	}
	if lead != raft.None && len(r.proposals) > 0 && !r.propQueued {
		r.propQueued = true
		ctx.Send(ctx.Self(), proposeFlush{})
	}
	if lead != raft.None && (len(r.reads) > 0 || len(r.rounds) > 0) && !r.readQueued {
		// The flush sends the waiting rounds to the new leader and starts
		// one for the queued reads.
		r.readQueued = true
		ctx.Send(ctx.Self(), readFlush{})
	}
	metrics.CountLeaderChange(lead)
	r.log.Info("leader changed", "leader", lead, "previous", r.lastLeader)
	r.lastLeader = lead
}
