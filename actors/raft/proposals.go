package raft

import (
	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
)

// proposal is one entry queued for the next MsgProp, or parked for a
// leader.
type proposal struct {
	// entry is nil once its proposer withdrew it.
	entry *raftpb.Entry
	// id is the proposer's wait id, told when raft refuses the entry or
	// it expires parked. A forwarded entry came in another member's
	// MsgProp: nobody here waits for it, and its id is unused.
	id        uint64
	forwarded bool
	// parkedAt is the tick the proposal was parked at, while parkedPos
	// is set.
	parkedAt int
}

// waited reports whether a proposer here waits for the proposal.
func (p proposal) waited() bool { return p.entry != nil && !p.forwarded }

func (r *raftActor) handlePropose(ctx actor.Context, msg *messages.Propose) {
	p := proposal{entry: &raftpb.Entry{Data: msg.Data}, id: msg.ID}
	if r.parkedPos != nil {
		r.parkedPos[msg.ID] = len(r.proposals)
		p.parkedAt = r.ticks
	}
	r.proposals = append(r.proposals, p)
	if !r.propQueued {
		r.propQueued = true
		ctx.Send(ctx.Self(), proposeFlush{})
	}
}

func (r *raftActor) handleProposeFlush(ctx actor.Context) {
	r.propQueued = false
	if r.appendsInFlight >= maxAppendsInFlight && len(r.proposals) < maxHeldProposals {
		// The WAL is busy: the proposals wait for its answer
		// (handleAppended steps them), so all that arrive meanwhile
		// become one MsgProp, one MsgApp per follower and one
		// MsgAppResp back, not one of each per mailbox run.
		return
	}
	r.stepProposals()
	r.handleReady(ctx)
}

// holdForwarded queues the entries of a MsgProp forwarded by another
// member with this member's own proposals while an Append is in flight,
// so a leader steps them all as one MsgProp (one MsgApp per follower)
// when the WAL answers. They have no waiter here. It reports
// false, and the message is stepped as it came, when nothing is held:
// the WAL is idle, or the held proposals are parked for want of a leader
// (raft then drops the forwarded ones, as etcd's).
func (r *raftActor) holdForwarded(m *raftpb.Message) bool {
	if r.appendsInFlight < maxAppendsInFlight || r.parkedPos != nil || len(r.proposals)+len(m.Entries) > maxHeldProposals {
		return false
	}
	for _, e := range m.Entries {
		r.proposals = append(r.proposals, proposal{entry: e, forwarded: true})
	}
	return true
}

// stepProposals steps the queued proposals as one MsgProp, or parks them
// while there is no leader.
func (r *raftActor) stepProposals() {
	if len(r.proposals) == 0 {
		return
	}
	if r.rn.BasicStatus().Lead == raft.None && len(r.proposals) <= maxParkedProposals {
		// No leader (start-up, election, a lost quorum): keep the
		// proposals until one is known, as etcd's Propose blocks on raft
		// until its request timeout; the proposers withdraw them then.
		r.park()
		return
	}
	ps := r.proposals
	entries := liveEntries(ps)
	r.proposals, r.parkedPos = nil, nil
	if len(entries) == 0 {
		return
	}
	m := &raftpb.Message{
		Type:    raftpb.MsgProp.Enum(),
		From:    proto.Uint64(r.cfg.ID),
		Entries: entries,
	}
	if err := r.rn.Step(m); err != nil {
		// No leader to take it (or too much uncommitted): tell the callers
		// now rather than let them time out.
		for _, p := range ps {
			if p.waited() {
				r.cfg.Waits.Proposals.Trigger(p.id, raftclient.Result{Err: rpctypes.ErrGRPCNoLeader})
			}
		}
	}
}

// park starts the wait for a leader of the queued proposals; those
// parked already keep their tick.
func (r *raftActor) park() {
	if r.parkedPos != nil {
		return
	}
	r.parkedPos = make(map[uint64]int, len(r.proposals))
	for i := range r.proposals {
		p := &r.proposals[i]
		p.parkedAt = r.ticks
		if !p.forwarded {
			r.parkedPos[p.id] = i
		}
	}
}

// handleWithdrawProposal answers a proposer that stopped waiting: a
// parked proposal was never accepted by raft, so it is dropped and its
// proposer told gRPC's DeadlineExceeded, as etcd's Propose blocked on a
// leaderless raft answers; any other raft has taken, and its fate is
// etcd's "request timed out".
func (r *raftActor) handleWithdrawProposal(msg *messages.WithdrawProposal) {
	pos, parked := r.parkedPos[msg.ID]
	if !parked {
		r.cfg.Waits.Proposals.Trigger(msg.ID, raftclient.Result{Err: rpctypes.ErrGRPCTimeout})
		return
	}
	delete(r.parkedPos, msg.ID)
	r.proposals[pos] = proposal{}
	r.cfg.Waits.Proposals.Trigger(msg.ID, raftclient.Result{Err: raftclient.ErrNotProposed})
}

// expireParked drops the proposals parked longer than the request
// timeout. Their proposers withdrew them by then; this bounds what
// proposers that do not wait (the lessor, the applier's alarm) leave.
// The oldest are first, so the scan stops at the first one in time.
// Withdrawn and forwarded entries at the front go at once: nobody here
// waits for them (raft drops forwarded proposals without a leader, as
// etcd's).
func (r *raftActor) expireParked() {
	if r.parkedPos == nil {
		return
	}
	n := 0
	for ; n < len(r.proposals); n++ {
		p := r.proposals[n]
		if !p.waited() {
			continue
		}
		if r.ticks-p.parkedAt <= r.cfg.RequestTimeoutTicks {
			break
		}
		r.cfg.Waits.Proposals.Trigger(p.id, raftclient.Result{Err: raftclient.ErrNotProposed})
	}
	if n == 0 {
		return
	}
	r.proposals = r.proposals[n:]
	if len(r.proposals) == 0 {
		r.proposals, r.parkedPos = nil, nil
		return
	}
	clear(r.parkedPos)
	for i, p := range r.proposals {
		if p.waited() {
			r.parkedPos[p.id] = i
		}
	}
}

// liveEntries returns the entries that were not withdrawn, in a slice of
// their own: raft keeps a forwarded MsgProp's.
func liveEntries(ps []proposal) []*raftpb.Entry {
	entries := make([]*raftpb.Entry, 0, len(ps))
	for _, p := range ps {
		if p.entry != nil {
			entries = append(entries, p.entry)
		}
	}
	return entries
}
