package peers

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/messages"
)

// minProbeBackoff is the first pause between probes of an inactive member;
// it doubles up to Config.MaxProbeBackoff.
const minProbeBackoff = 100 * time.Millisecond

// maxDelayed bounds the messages a Filter may hold back for one member;
// beyond it they are dropped.
const maxDelayed = 4096

// maxEnvelopeBytes bounds the raft messages one RaftEnvelope gathers (as
// estimated by approxSize): raft's MaxSizePerMsg, so an envelope is no
// larger than the largest single message already was, and a remote batch
// of endpointWriterBatchSize envelopes stays under MaxMessageBytes. A
// message larger on its own still travels, alone.
const maxEnvelopeBytes = 1 << 20

type status int

const (
	statusUnknown status = iota // no probe answered or failed yet
	statusActive
	statusInactive
)

// Messages a peer actor sends itself.
type (
	probeNow     struct{}
	probeExpired struct{ seq uint64 }
	releaseDue   struct{}
	flushPending struct{}
)

type delayedMsg struct {
	m   *raftpb.Message
	due time.Time
}

type transfer struct {
	id     uint64
	msg    *raftpb.Message
	inbox  *actor.PID
	cancel context.CancelFunc
}

// peer sends to one member: raft envelopes while the member is active,
// probes always, and snapshot databases on a goroutine of their own.
type peer struct {
	cfg     Config
	id      uint64
	inboxes []*actor.PID // one per peer URL; cur is in use, rotated on failure
	cur     int
	log     *slog.Logger
	drops   *dropLog

	// probing: at most one probe outstanding (seq), one timer pending.
	status          status
	seq             uint64
	probeSent       time.Time // when the outstanding probe left
	outstanding     bool
	backoff         time.Duration
	probeTimer      *time.Timer
	expireTimer     *time.Timer
	lastUnreachable time.Time

	// delayed holds messages the Filter delayed, in send order; delayTimer
	// fires when the first is due.
	delayed    []delayedMsg
	delayTimer *time.Timer

	// pending are the raft messages for the member since the last flush,
	// in send order, and pendingBytes their approxSize; flushQueued tells
	// that a flushPending is in the mailbox, behind the SendRafts that
	// were there when the first pending message came (those of one raft
	// Ready at least): they all leave as one envelope.
	pending      []*raftpb.Message
	pendingBytes int
	flushQueued  bool
	// awaitingLeader is set once an envelope with a MsgProp went to the
	// member, and cleared when it next sends this member a leader's
	// message (heardFromLeader) or answers a probe. Meanwhile pending
	// MsgProps wait, so a follower's forwarded proposals travel
	// together rather than a few per envelope.
	awaitingLeader bool

	// transfer is the snapshot database being sent, nil if none.
	transfer *transfer
}

func peerProps(cfg Config, id uint64, inboxes []*actor.PID) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		return &peer{cfg: cfg, id: id, inboxes: inboxes}
	})
}

// Receive dispatches on the message type.
func (p *peer) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		p.handleStarted(ctx)
	case *actor.Stopping, *actor.Restarting:
		p.handleStopping(ctx)
	case *actor.Stopped:
	case *messages.SendRaft:
		p.handleSendRaft(ctx, msg.Msg)
	case flushPending:
		p.flushQueued = false
		p.flush(ctx)
	case heardFromLeader:
		p.awaitingLeader = false
		p.flush(ctx)
	case releaseDue:
		p.handleReleaseDue(ctx)
	case probeNow:
		p.probe(ctx)
	case *messages.PeerStatus:
		p.handlePeerStatus(ctx, msg)
	case probeExpired:
		p.handleProbeExpired(ctx, msg)
	case *actor.DeadLetterResponse:
		// a probe reached the member's remote but not its inbox; the
		// probe times out.
	case *snapshotSent:
		p.handleSnapshotSent(ctx, msg)
	default:
		p.log.Warn("unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (p *peer) handleStarted(ctx actor.Context) {
	p.log = p.cfg.Logger.With("actor", "peers", "member", p.cfg.Self, "peer", p.id)
	p.drops = newDropLog(p.log, p.cfg.ProbeInterval)
	p.status = statusUnknown
	p.seq = rand.Uint64() // so answers to a former incarnation's probes do not match
	p.backoff = minProbeBackoff
	p.probe(ctx)
}

func (p *peer) handleStopping(ctx actor.Context) {
	for _, t := range []*time.Timer{p.probeTimer, p.expireTimer, p.delayTimer} {
		if t != nil {
			t.Stop()
		}
	}
	p.abortTransfer(ctx, "peer actor stopping")
}

func (p *peer) inbox() *actor.PID { return p.inboxes[p.cur] }

// after sends msg to the actor itself after d, without blocking it.
func (p *peer) after(ctx actor.Context, d time.Duration, msg any) *time.Timer {
	system, self := ctx.ActorSystem(), ctx.Self()
	return time.AfterFunc(d, func() { system.Root.Send(self, msg) })
}

func (p *peer) handleSendRaft(ctx actor.Context, m *raftpb.Message) {
	if p.cfg.Filter != nil {
		drop, delay := p.cfg.Filter(p.cfg.Self, p.id, m)
		if drop {
			if m.GetType() == raftpb.MsgSnap {
				p.reportSnapshot(ctx, true)
			}
			return
		}
		if delay > 0 || len(p.delayed) > 0 {
			p.delay(ctx, m, delay)
			return
		}
	}
	p.deliver(ctx, m)
}

// delay queues m to be delivered after d, behind every message delayed
// before it.
func (p *peer) delay(ctx actor.Context, m *raftpb.Message, d time.Duration) {
	if len(p.delayed) >= maxDelayed {
		p.drops.drop("too many delayed messages", "type", m.GetType().String())
		return
	}
	p.delayed = append(p.delayed, delayedMsg{m: m, due: time.Now().Add(d)})
	if len(p.delayed) == 1 {
		p.delayTimer = p.after(ctx, d, releaseDue{})
	}
}

func (p *peer) handleReleaseDue(ctx actor.Context) {
	now := time.Now()
	for len(p.delayed) > 0 && !p.delayed[0].due.After(now) {
		m := p.delayed[0].m
		p.delayed[0] = delayedMsg{}
		p.delayed = p.delayed[1:]
		p.deliver(ctx, m)
	}
	if len(p.delayed) > 0 {
		p.delayTimer = p.after(ctx, p.delayed[0].due.Sub(now), releaseDue{})
	}
}

// deliver queues m for the member's next envelope if it is active, and
// drops it otherwise. A MsgSnap starts a transfer instead; the messages
// queued before it leave first.
func (p *peer) deliver(ctx actor.Context, m *raftpb.Message) {
	if p.status != statusActive {
		p.reportUnreachable(ctx, false)
		if m.GetType() == raftpb.MsgSnap {
			p.reportSnapshot(ctx, true)
		}
		return
	}
	if m.GetType() == raftpb.MsgSnap {
		p.send(ctx)
		p.startTransfer(ctx, m)
		return
	}
	size := approxSize(m)
	if len(p.pending) > 0 && p.pendingBytes+size > maxEnvelopeBytes {
		p.send(ctx)
	}
	p.pending = append(p.pending, m)
	p.pendingBytes += size
	if !p.flushQueued {
		p.flushQueued = true
		ctx.Send(ctx.Self(), flushPending{})
	}
}

// flush sends the pending messages as one envelope, unless they are only
// proposals and the member has not spoken since the last ones went.
func (p *peer) flush(ctx actor.Context) {
	if p.awaitingLeader && onlyProposals(p.pending) {
		return
	}
	p.send(ctx)
}

func onlyProposals(ms []*raftpb.Message) bool {
	for _, m := range ms {
		if m.GetType() != raftpb.MsgProp {
			return false
		}
	}
	return true
}

// send sends the pending messages as one envelope, or drops them if the
// member became inactive since they were queued.
func (p *peer) send(ctx actor.Context) {
	if len(p.pending) == 0 {
		return
	}
	ms := p.pending
	// A new slice each time: the envelope is serialised later, on the
	// remote's writer, or shared with a local inbox.
	p.pending, p.pendingBytes = nil, 0
	if p.status != statusActive {
		p.reportUnreachable(ctx, false)
		return
	}
	for _, m := range ms {
		if m.GetType() == raftpb.MsgProp {
			p.awaitingLeader = true
			break
		}
	}
	ctx.Send(p.inbox(), p.envelope(ms...))
}

func (p *peer) envelope(ms ...*raftpb.Message) *messages.RaftEnvelope {
	return &messages.RaftEnvelope{ClusterId: p.cfg.ClusterID, From: p.cfg.Self, To: p.id, Msgs: ms}
}

// approxSize estimates the bytes m takes in an envelope without
// marshalling it: its entries' data, plus a generous allowance for the
// fixed fields of the message and of each entry.
func approxSize(m *raftpb.Message) int {
	n := 64 + len(m.GetContext())
	for _, e := range m.GetEntries() {
		n += 32 + len(e.GetData())
	}
	return n
}

// reportUnreachable tells raft the member cannot be reached, at most once
// per probe interval unless forced.
func (p *peer) reportUnreachable(ctx actor.Context, force bool) {
	now := time.Now()
	if !force && now.Sub(p.lastUnreachable) < p.cfg.ProbeInterval {
		return
	}
	p.lastUnreachable = now
	if raft := p.cfg.Member.Raft(); raft != nil {
		ctx.Send(raft, &messages.PeerUnreachable{ID: p.id})
	}
}

func (p *peer) reportSnapshot(ctx actor.Context, failed bool) {
	if raft := p.cfg.Member.Raft(); raft != nil {
		ctx.Send(raft, &messages.SnapshotReported{ID: p.id, Failed: failed})
	}
}
