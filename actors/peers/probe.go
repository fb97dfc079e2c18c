package peers

import (
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupedb/troupe/internal/metrics"
	"github.com/troupedb/troupe/messages"
)

// A peer actor finds out whether its member is up by probing its inbox: a
// GetPeerStatus request answered by PeerStatus within ProbeTimeout. An
// active member is probed every ProbeInterval; an inactive one with a
// backoff from minProbeBackoff doubling up to MaxProbeBackoff, trying its
// peer URLs in turn. A probe never blocks the actor: the answer and the
// timeout both come back as messages.

func (p *peer) probe(ctx actor.Context) {
	p.seq++
	p.outstanding = true
	p.probeSent = time.Now()
	ctx.Request(p.inbox(), &messages.GetPeerStatus{ClusterId: p.cfg.ClusterID, From: p.cfg.Self, Seq: p.seq})
	p.expireTimer = p.after(ctx, p.cfg.ProbeTimeout, probeExpired{seq: p.seq})
}

func (p *peer) handlePeerStatus(ctx actor.Context, msg *messages.PeerStatus) {
	if !p.outstanding || msg.GetSeq() != p.seq {
		return // an answer that came too late
	}
	p.outstanding = false
	p.expireTimer.Stop()
	if msg.GetClusterId() != p.cfg.ClusterID || msg.GetId() != p.id {
		p.drops.drop("another member answers at this peer url",
			"url_inbox", p.inbox().String(), "answered_cluster_id", msg.GetClusterId(), "answered_id", msg.GetId())
		p.probeFailed(ctx)
		return
	}
	metrics.PeerRoundTripSeconds.WithLabelValues(strconv.FormatUint(p.id, 16)).Observe(time.Since(p.probeSent).Seconds())
	if msg.GetRemoved() {
		// The cluster removed this member; the node stops it.
		ctx.Send(ctx.Parent(), &messages.MemberRemoved{})
	}
	p.setActive(ctx)
	p.awaitingLeader = false
	p.flush(ctx)
	p.backoff = minProbeBackoff
	p.probeTimer = p.after(ctx, p.cfg.ProbeInterval, probeNow{})
}

func (p *peer) handleProbeExpired(ctx actor.Context, msg probeExpired) {
	if !p.outstanding || msg.seq != p.seq {
		return
	}
	p.outstanding = false
	p.probeFailed(ctx)
}

func (p *peer) probeFailed(ctx actor.Context) {
	p.setInactive(ctx)
	p.cur = (p.cur + 1) % len(p.inboxes)
	p.probeTimer = p.after(ctx, p.backoff, probeNow{})
	p.backoff = min(2*p.backoff, p.cfg.MaxProbeBackoff)
}

func (p *peer) setActive(ctx actor.Context) {
	if p.status == statusActive {
		return
	}
	p.status = statusActive
	p.log.Info("peer became active", "inbox", p.inbox().String())
	p.cfg.Member.SetPeerActive(p.id, true)
}

func (p *peer) setInactive(ctx actor.Context) {
	if p.status == statusInactive {
		return
	}
	p.status = statusInactive
	p.log.Warn("peer became inactive", "inbox", p.inbox().String())
	p.cfg.Member.SetPeerActive(p.id, false)
	p.reportUnreachable(ctx, true)
	p.abortTransfer(ctx, "peer became inactive")
}
