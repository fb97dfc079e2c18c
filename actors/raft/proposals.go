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

func (r *raftActor) handlePropose(ctx actor.Context, msg *messages.Propose) {
	if r.parkedPos != nil {
		r.parkedPos[msg.ID] = len(r.proposalIDs)
		r.parkedAt = append(r.parkedAt, r.ticks)
	}
	r.proposals = append(r.proposals, &raftpb.Entry{Data: msg.Data})
	r.proposalIDs = append(r.proposalIDs, msg.ID)
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
// when the WAL answers. They have no waiter here (id 0). It reports
// false, and the message is stepped as it came, when nothing is held:
// the WAL is idle, or the held proposals are parked for want of a leader
// (raft then drops the forwarded ones, as etcd's).
func (r *raftActor) holdForwarded(m *raftpb.Message) bool {
	if r.appendsInFlight < maxAppendsInFlight || r.parkedPos != nil || len(r.proposals)+len(m.Entries) > maxHeldProposals {
		return false
	}
	for _, e := range m.Entries {
		r.proposals = append(r.proposals, e)
		r.proposalIDs = append(r.proposalIDs, 0)
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
	entries, ids := liveProposals(r.proposals, r.proposalIDs)
	r.proposals, r.proposalIDs = nil, nil
	r.parkedPos, r.parkedAt = nil, nil
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
		for _, id := range ids {
			r.cfg.Waits.Proposals.Trigger(id, raftclient.Result{Err: rpctypes.ErrGRPCNoLeader})
		}
	}
}

// park starts the wait for a leader of the queued proposals; those
// parked already keep their tick.
func (r *raftActor) park() {
	if r.parkedPos != nil {
		return
	}
	r.parkedPos = make(map[uint64]int, len(r.proposalIDs))
	r.parkedAt = make([]int, len(r.proposalIDs))
	for i, id := range r.proposalIDs {
		r.parkedPos[id] = i
		r.parkedAt[i] = r.ticks
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
	r.proposals[pos], r.proposalIDs[pos] = nil, 0
	r.cfg.Waits.Proposals.Trigger(msg.ID, raftclient.Result{Err: raftclient.ErrNotProposed})
}

// expireParked drops the proposals parked longer than the request
// timeout. Their proposers withdrew them by then; this bounds what
// proposers that do not wait (the lessor, the applier's alarm) leave.
// The oldest are first, so the scan stops at the first one in time.
func (r *raftActor) expireParked() {
	if r.parkedPos == nil {
		return
	}
	n := 0
	for n < len(r.proposalIDs) && (r.proposalIDs[n] == 0 || r.ticks-r.parkedAt[n] > r.cfg.RequestTimeoutTicks) {
		if id := r.proposalIDs[n]; id != 0 {
			r.cfg.Waits.Proposals.Trigger(id, raftclient.Result{Err: raftclient.ErrNotProposed})
		}
		n++
	}
	if n == 0 {
		return
	}
	r.proposals, r.proposalIDs, r.parkedAt = r.proposals[n:], r.proposalIDs[n:], r.parkedAt[n:]
	if len(r.proposalIDs) == 0 {
		r.proposals, r.proposalIDs, r.parkedPos, r.parkedAt = nil, nil, nil, nil
		return
	}
	clear(r.parkedPos)
	for i, id := range r.proposalIDs {
		if id != 0 {
			r.parkedPos[id] = i
		}
	}
}

// liveProposals returns the entries and ids that were not withdrawn.
func liveProposals(entries []*raftpb.Entry, ids []uint64) ([]*raftpb.Entry, []uint64) {
	n := 0
	for i := range entries {
		if entries[i] != nil {
			entries[n], ids[n] = entries[i], ids[i]
			n++
		}
	}
	return entries[:n], ids[:n]
}
