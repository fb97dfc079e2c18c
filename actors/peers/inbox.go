package peers

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/messages"
)

// inbox receives what other members send: raft envelopes (forwarded to
// raft), snapshot chunks (handed to one receiving goroutine at a time),
// probes (answered at once) and hash requests (forwarded to the hasher).
type inbox struct {
	cfg    Config
	log    *slog.Logger
	drops  *dropLog
	hasher *actor.PID // child; answers GetHashKV

	// recv is the snapshot database being received, nil if none. A new
	// transfer aborts it, and waits in next (its chunks queued) until the
	// goroutine of recv has ended (receiveDone): two never write the same
	// temporary file.
	recv *receiving
	next *receiving
}

func inboxProps(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &inbox{cfg: cfg} })
}

// Receive dispatches on the message type.
func (in *inbox) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		in.log = in.cfg.Logger.With("actor", "peers", "part", "inbox", "member", in.cfg.Self)
		in.drops = newDropLog(in.log, time.Second)
		in.hasher = ctx.Spawn(hasherProps(in.cfg))
	case *actor.Stopping, *actor.Restarting:
		in.abortReceive(ctx, "inbox stopping")
	case *actor.Stopped:
	case *messages.RaftEnvelope:
		in.handleEnvelope(ctx, msg)
	case *messages.SnapshotChunk:
		in.handleChunk(ctx, msg)
	case *receiveDone:
		in.handleReceiveDone(ctx, msg)
	case *messages.GetPeerStatus:
		removed := in.cfg.Member.Removed(msg.GetFrom())
		ctx.Respond(&messages.PeerStatus{ClusterId: in.cfg.ClusterID, Id: in.cfg.Self, Seq: msg.GetSeq(), Removed: removed})
	case *messages.GetMembers:
		in.handleGetMembers(ctx)
	case *messages.GetHashKV:
		in.handleGetHashKV(ctx, msg)
	case *actor.DeadLetterResponse:
	default:
		in.log.Warn("unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (in *inbox) handleEnvelope(ctx actor.Context, env *messages.RaftEnvelope) {
	ms := env.GetMsgs()
	switch {
	case env.GetClusterId() != in.cfg.ClusterID:
		in.drops.drop("cluster id mismatch", "from", env.GetFrom(), "cluster_id", env.GetClusterId())
		return
	case len(ms) == 0:
		in.drops.drop("empty envelope", "from", env.GetFrom())
		return
	case env.GetTo() != in.cfg.Self:
		in.drops.drop("not addressed to this member", "from", env.GetFrom(), "to", env.GetTo())
		return
	}
	// kept is ms without the messages refused; a copy only once one is
	// (ms may be shared with a local sender).
	var kept []*raftpb.Message
	for i, m := range ms {
		if reason := in.refuse(m); reason != "" {
			in.drops.drop(reason, "from", env.GetFrom(), "type", m.GetType().String())
			if kept == nil {
				kept = slices.Clone(ms[:i])
			}
			continue
		}
		if kept != nil {
			kept = append(kept, m)
		}
	}
	if kept != nil {
		ms = kept
	}
	if len(ms) == 0 {
		return
	}
	raft := in.cfg.Member.Raft()
	if raft == nil {
		in.drops.drop("raft not running", "from", env.GetFrom())
		return
	}
	ctx.Send(raft, &messages.StepRaft{Msgs: ms})
	if fromLeader(ms) && ctx.Parent() != nil {
		ctx.Send(ctx.Parent(), heardFromLeader{id: env.GetFrom()})
	}
}

// heardFromLeader tells the peer actor of member id (through the
// supervisor) that an envelope with a leader's message came from it.
type heardFromLeader struct{ id uint64 }

// fromLeader reports whether ms has a message only a leader sends.
func fromLeader(ms []*raftpb.Message) bool {
	for _, m := range ms {
		switch m.GetType() {
		case raftpb.MsgApp, raftpb.MsgHeartbeat, raftpb.MsgSnap:
			return true
		}
	}
	return false
}

// refuse says why raft must not step m, or returns "".
func (in *inbox) refuse(m *raftpb.Message) string {
	switch {
	case m == nil:
		return "empty message"
	case m.GetTo() != in.cfg.Self:
		return "not addressed to this member"
	case m.GetType() == raftpb.MsgSnap && !in.haveSnapshotDB(m):
		return "snapshot database not received"
	}
	return ""
}

// handleGetMembers answers a joining member with the membership.
func (in *inbox) handleGetMembers(ctx actor.Context) {
	out := &messages.Members{ClusterId: in.cfg.ClusterID}
	for _, m := range in.cfg.Member.Members() {
		out.Members = append(out.Members, m.Marshal())
	}
	ctx.Respond(out)
}

// haveSnapshotDB reports whether the database of the MsgSnap's snapshot
// was received completely (SaveDBFrom renames it into place only then).
func (in *inbox) haveSnapshotDB(m *raftpb.Message) bool {
	if in.cfg.Snap == nil {
		return false
	}
	_, err := in.cfg.Snap.DBFilePath(m.GetSnapshot().GetMetadata().GetIndex())
	return err == nil
}

func (in *inbox) handleChunk(ctx actor.Context, c *messages.SnapshotChunk) {
	if reason := in.acceptChunk(ctx, c); reason != "" {
		in.drops.drop("snapshot chunk refused: "+reason, "from", c.GetFrom(), "transfer", c.GetTransferId())
		ctx.Respond(&messages.SnapshotChunkAck{TransferId: c.GetTransferId(), Offset: c.GetOffset(), Error: reason})
	}
}

// acceptChunk hands c to the receiving goroutine (starting one for the
// first chunk of a transfer), or says why it is refused.
func (in *inbox) acceptChunk(ctx actor.Context, c *messages.SnapshotChunk) string {
	switch {
	case c.GetClusterId() != in.cfg.ClusterID:
		return "cluster id mismatch"
	case c.GetTo() != in.cfg.Self:
		return "not addressed to this member"
	case in.cfg.Snap == nil:
		return "this member takes no snapshots"
	}
	r, reason := in.transferOf(ctx, c)
	if reason != "" {
		return reason
	}
	if reason := r.take(c, ctx.Sender()); reason != "" {
		if r == in.recv {
			in.recv.abort(reason)
		} else {
			in.next.refuse(ctx.ActorSystem(), reason)
			in.next = nil
		}
		return reason
	}
	return ""
}

// transferOf returns the transfer c belongs to, starting one for a first
// chunk.
func (in *inbox) transferOf(ctx actor.Context, c *messages.SnapshotChunk) (*receiving, string) {
	tid := c.GetTransferId()
	switch {
	case in.recv != nil && in.recv.transferID == tid:
		return in.recv, ""
	case in.next != nil && in.next.transferID == tid:
		return in.next, ""
	case c.GetOffset() != 0:
		return nil, "unknown transfer"
	case in.recv == nil:
		in.recv = newReceiving(c)
		in.recv.start(ctx.ActorSystem(), ctx.Self(), in.cfg.Snap, in.log)
		return in.recv, ""
	}
	// A new transfer replaces the current one (its sender gave up, or
	// died) and starts once that one's goroutine has ended.
	in.recv.abort("replaced by a newer transfer")
	if in.next != nil {
		in.next.refuse(ctx.ActorSystem(), "replaced by a newer transfer")
	}
	in.next = newReceiving(c)
	return in.next, ""
}

func (in *inbox) handleReceiveDone(ctx actor.Context, msg *receiveDone) {
	if in.recv != nil && in.recv.transferID == msg.transferID {
		in.recv, in.next = in.next, nil
		if in.recv != nil {
			in.recv.start(ctx.ActorSystem(), ctx.Self(), in.cfg.Snap, in.log)
		}
	}
	if msg.err != nil {
		in.log.Warn("receiving snapshot database failed", "transfer", msg.transferID, "index", msg.index, "err", msg.err)
		return
	}
	in.log.Info("snapshot database received", "transfer", msg.transferID, "index", msg.index, "size_bytes", msg.size, "path", msg.path)
}

func (in *inbox) abortReceive(ctx actor.Context, reason string) {
	if in.recv != nil {
		in.recv.abort(reason)
	}
	if in.next != nil {
		in.next.refuse(ctx.ActorSystem(), reason)
		in.next = nil
	}
}
