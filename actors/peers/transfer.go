package peers

import (
	"context"
	"math/rand/v2"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3/raftpb"
)

// A raft MsgSnap carries only the snapshot's metadata; the database goes
// first, streamed by a dbSender on a goroutine owned by the peer actor
// (cancelled when it stops or the member becomes inactive). Once the
// receiver saved it, the peer actor sends the MsgSnap itself and reports
// the outcome to raft (SnapshotReported). One transfer per member at a time.

func (p *peer) startTransfer(ctx actor.Context, m *raftpb.Message) {
	if p.transfer != nil {
		p.log.Debug("snapshot transfer already running; MsgSnap dropped", "index", m.GetSnapshot().GetMetadata().GetIndex())
		return
	}
	index := m.GetSnapshot().GetMetadata().GetIndex()
	tid := rand.Uint64()
	cctx, cancel := context.WithCancel(context.Background())
	p.transfer = &transfer{id: tid, msg: m, inbox: p.inbox(), cancel: cancel}
	s := &dbSender{
		system:     ctx.ActorSystem(),
		inbox:      p.transfer.inbox,
		open:       p.cfg.Member.SnapshotDB,
		chunkBytes: p.cfg.SnapshotChunkBytes,
	}
	s.head.ClusterId, s.head.From, s.head.To = p.cfg.ClusterID, p.cfg.Self, p.id
	s.head.TransferId, s.head.Index = tid, index
	system, self := ctx.ActorSystem(), ctx.Self()
	p.log.Info("sending snapshot database", "index", index, "transfer", tid)
	go func() {
		size, err := s.run(cctx)
		system.Root.Send(self, &snapshotSent{transferID: tid, size: size, err: err})
	}()
}

func (p *peer) handleSnapshotSent(ctx actor.Context, msg *snapshotSent) {
	t := p.transfer
	if t == nil || t.id != msg.transferID {
		return // aborted meanwhile, and already reported
	}
	p.transfer = nil
	t.cancel()
	index := t.msg.GetSnapshot().GetMetadata().GetIndex()
	if msg.err != nil {
		p.log.Warn("sending snapshot database failed", "index", index, "transfer", t.id, "err", msg.err)
		p.reportSnapshot(ctx, true)
		return
	}
	p.log.Info("snapshot database sent", "index", index, "transfer", t.id, "size_bytes", msg.size)
	ctx.Send(t.inbox, p.envelope(t.msg))
	p.reportSnapshot(ctx, false)
}

// abortTransfer cancels the running transfer, if any, and reports it
// failed.
func (p *peer) abortTransfer(ctx actor.Context, reason string) {
	t := p.transfer
	if t == nil {
		return
	}
	p.transfer = nil
	t.cancel()
	p.log.Warn("snapshot transfer aborted", "reason", reason, "transfer", t.id)
	p.reportSnapshot(ctx, true)
}
