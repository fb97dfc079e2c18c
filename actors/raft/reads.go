package raft

import (
	"encoding/binary"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3"

	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
)

// ReadRetryInterval is how often etcd 3.6.8 sends again a ReadIndex raft
// has not answered.
const ReadRetryInterval = 500 * time.Millisecond

// Ticks converts d into whole ticks of length tick, rounded up; 0 if
// either is not positive (the Config's defaults then apply).
func Ticks(d, tick time.Duration) int {
	if d <= 0 || tick <= 0 {
		return 0
	}
	return int((d + tick - 1) / tick)
}

// readRound is one raft ReadIndex request shared by the reads that queued
// for it, as etcd's linearizable read loop shares one per loop.
type readRound struct {
	ids  []uint64
	rctx []byte // the ReadIndex context: the round's sequence number
	// lead is the leader the round was last sent to, raft.None if there
	// was none: a different leader gets it at once.
	lead uint64
	// ageTicks counts the round's ticks toward the request timeout,
	// sinceSentTicks toward the next resend.
	ageTicks, sinceSentTicks int
}

func (r *raftActor) handleReadIndex(ctx actor.Context, msg *messages.ReadIndex) {
	r.reads = append(r.reads, msg.ID)
	if !r.readQueued {
		r.readQueued = true
		ctx.Send(ctx.Self(), readFlush{})
	}
}

// handleReadFlush sends the rounds in flight to a newly elected leader
// and starts a round for the reads queued since the last one.
// Without a leader the round is not sent (raft would drop it): it waits
// for its timeout, or goes to the leader once one is elected. Nor
// does a round start without a leader while another waits: as in etcd's
// single read loop, the reads queue for the next round, which starts when
// that one ends (a leader's rounds run side by side, sooner answered).
//
// A single voter's leader answers without a round once its term has a
// commit (see publishLocalReads), and starts none before: raft would
// answer it at once with a commit index that may lag writes acknowledged
// before a restart.
func (r *raftActor) handleReadFlush(ctx actor.Context) {
	r.readQueued = false
	if r.localIndex != 0 {
		r.answerLocally(r.localIndex)
		return
	}
	bs := r.rn.BasicStatus()
	if r.awaitingTermCommit(bs) {
		return // flushed when the term's first commit is published
	}
	lead := bs.Lead
	if lead != raft.None && r.sendRoundsTo(lead) {
		defer r.handleReady(ctx)
	}
	if len(r.reads) == 0 || len(r.rounds) >= maxReadRounds || (lead == raft.None && len(r.rounds) > 0) {
		return // flushed again when a round ends or a leader is elected
	}
	r.readSeq++
	rd := &readRound{ids: r.reads, rctx: binary.BigEndian.AppendUint64(nil, r.readSeq), lead: lead}
	r.reads = nil
	r.rounds[r.readSeq] = rd
	if rd.lead != raft.None {
		r.rn.ReadIndex(rd.rctx)
		r.handleReady(ctx)
	}
}

// tickRounds ages the rounds: one unanswered for the request timeout
// fails with etcd's "request timed out"; one unanswered for ReadRetryTicks
// is sent again while a leader is known, since raft forgets a ReadIndex
// whose message or answer was lost.
func (r *raftActor) tickRounds(ctx actor.Context) {
	bs := r.rn.BasicStatus()
	lead := bs.Lead
	if r.awaitingTermCommit(bs) {
		lead = raft.None // nothing is sent again before the term's commit
	}
	for seq, rd := range r.rounds {
		rd.ageTicks++
		if rd.ageTicks >= r.cfg.RequestTimeoutTicks {
			r.failRound(seq, rd, rpctypes.ErrGRPCTimeout)
			continue
		}
		rd.sinceSentTicks++
		if rd.sinceSentTicks >= r.cfg.ReadRetryTicks && rd.lead != raft.None && lead == rd.lead {
			rd.sinceSentTicks = 0
			r.rn.ReadIndex(rd.rctx)
		}
	}
	if (len(r.reads) > 0 || (r.localIndex != 0 && len(r.rounds) > 0)) && !r.readQueued {
		r.readQueued = true
		ctx.Send(ctx.Self(), readFlush{})
	}
}

// sendRoundsTo sends the rounds that waited without a leader, or were sent
// to another, to lead, just elected, so it serves them. Every send of a
// round came after its reads arrived, so whichever leader's answer comes
// first is a read index they may use. (etcd's read loop answers such a
// round with "leader changed" or serves it, as its select happens to
// choose between the leader change and the answer.) It reports whether it
// sent any.
func (r *raftActor) sendRoundsTo(lead uint64) bool {
	sent := false
	for _, rd := range r.rounds {
		if rd.lead != lead {
			rd.lead, rd.sinceSentTicks = lead, 0
			r.rn.ReadIndex(rd.rctx)
			sent = true
		}
	}
	return sent
}

func (r *raftActor) failRound(seq uint64, rd *readRound, err error) {
	delete(r.rounds, seq)
	for _, id := range rd.ids {
		r.cfg.Waits.Reads.Trigger(id, raftclient.ReadResult{Err: err})
	}
}

// resolveRead answers the round raft confirmed; a second answer to a
// resent round finds it gone.
func (r *raftActor) resolveRead(rs raft.ReadState) {
	if len(rs.RequestCtx) != 8 {
		return
	}
	seq := binary.BigEndian.Uint64(rs.RequestCtx)
	rd, ok := r.rounds[seq]
	if !ok {
		return
	}
	delete(r.rounds, seq)
	for _, id := range rd.ids {
		r.cfg.Waits.Reads.Trigger(id, raftclient.ReadResult{Index: rs.Index})
	}
}

// publishLocalReads publishes bs's commit index as the read index reads
// may take without a round when this member leads a configuration whose
// only voter it is and has committed an entry of its term, and withdraws
// it otherwise. raft's own condition for answering a ReadIndex at once is
// the single voter alone; the term's commit is needed as well because the
// commit index a restarted leader starts from may lag writes acknowledged
// before the restart, and the term's first entry follows them all.
// Called with raft's state before anything of a Ready leaves and when a
// configuration change is applied; see raftclient.LocalReadIndex for why
// that makes such reads linearizable. Reads that waited for the term's
// commit are answered once it is published.
func (r *raftActor) publishLocalReads(ctx actor.Context, bs raft.BasicStatus) {
	var index uint64
	if bs.RaftState == raft.StateLeader && r.soleVoter && r.committedInTerm(bs) {
		index = bs.GetCommit()
	}
	was := r.localIndex
	r.localIndex = index
	if r.cfg.LocalReads != nil {
		r.cfg.LocalReads.Publish(index)
	}
	if was == 0 && index != 0 && (len(r.reads) > 0 || len(r.rounds) > 0) && !r.readQueued {
		r.readQueued = true
		ctx.Send(ctx.Self(), readFlush{})
	}
}

// awaitingTermCommit reports whether this member leads as the only voter
// but has not committed an entry of its term yet: reads wait.
func (r *raftActor) awaitingTermCommit(bs raft.BasicStatus) bool {
	return bs.RaftState == raft.StateLeader && r.soleVoter && !r.committedInTerm(bs)
}

// answerLocally answers the queued reads and every round with index, the
// published read index: each read arrived before it was published.
func (r *raftActor) answerLocally(index uint64) {
	for _, id := range r.reads {
		r.cfg.Waits.Reads.Trigger(id, raftclient.ReadResult{Index: index})
	}
	r.reads = nil
	for seq, rd := range r.rounds {
		delete(r.rounds, seq)
		for _, id := range rd.ids {
			r.cfg.Waits.Reads.Trigger(id, raftclient.ReadResult{Index: index})
		}
	}
}

// committedInTerm reports whether the leader's commit index is at an
// entry of its current term (raft's committedEntryInCurrentTerm). Once
// true it stays true for the term: commit indexes only grow and every
// entry after the term's first is the term's.
func (r *raftActor) committedInTerm(bs raft.BasicStatus) bool {
	term := bs.GetTerm()
	if r.readTerm == term {
		return true
	}
	// A leader's committed entries are in storage: its own vote counts
	// only once the WAL has them (handleAppended). An index storage does
	// not know is not vouched for.
	t, err := r.cfg.Storage.Term(bs.GetCommit())
	if err != nil || t != term {
		return false
	}
	r.readTerm = term
	return true
}
