package peers

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupedb/troupe/internal/dispatch"
	"github.com/troupedb/troupe/internal/metrics"
	"github.com/troupedb/troupe/messages"
)

// supervisor owns the inbox and one peer actor per other member, and routes
// SendRaft to the peer actor of Msg.To.
type supervisor struct {
	cfg Config
	log *slog.Logger

	inbox *actor.PID
	peers map[uint64]peerChild
	// stopped holds the ids of children stopped on purpose, whose
	// Terminated is expected; any other child's Terminated means it ran
	// out of restarts.
	stopped  map[string]bool
	stopping bool
	// disps are the dispatchers of the children, by child id: each hot
	// child runs its mailbox on one goroutine of its own, stopped once the
	// child terminated.
	disps map[string]*dispatch.Pinned
	next  *dispatch.Pinned // made by pinned, for the child being spawned
}

type peerChild struct {
	pid  *actor.PID
	urls []string
}

// Receive dispatches on the message type.
func (s *supervisor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		s.handleStarted(ctx)
	case *actor.Stopping, *actor.Restarting:
		s.stopping = true
	case *actor.Stopped:
		for id, d := range s.disps {
			d.Stop()
			delete(s.disps, id)
		}
	case *actor.Terminated:
		s.handleTerminated(msg)
	case *messages.SetPeers:
		s.handleSetPeers(ctx, msg)
	case *messages.SendRaft:
		s.handleSendRaft(ctx, msg)
	case heardFromLeader:
		if p, ok := s.peers[msg.id]; ok {
			ctx.Send(p.pid, msg)
		}
	case *messages.MemberRemoved:
		// From a peer actor: the node decides (it stops the member).
		if ctx.Parent() != nil {
			ctx.Send(ctx.Parent(), msg)
		}
	default:
		s.log.Warn("unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (s *supervisor) handleStarted(ctx actor.Context) {
	s.log = s.cfg.Logger.With("actor", "peers", "member", s.cfg.Self)
	s.peers = make(map[uint64]peerChild)
	s.stopped = make(map[string]bool)
	s.stopping = false
	s.disps = make(map[string]*dispatch.Pinned)
	pid, err := ctx.SpawnNamed(s.pinned(inboxProps(s.cfg)).Configure(metrics.Mailbox("inbox")), InboxName)
	if err != nil {
		panic(fmt.Errorf("peers: spawn inbox: %w", err))
	}
	s.inbox = pid
	s.adopt(pid)
	s.log.Debug("peers inbox started", "pid", pid.String())
	if peers := s.cfg.Member.PeerURLs(); len(peers) > 0 {
		s.handleSetPeers(ctx, &messages.SetPeers{Peers: peers})
	}
}

// handleTerminated fails the supervisor when a child stopped that was not
// stopped on purpose: it ran out of restarts (OneForOne budget), and the
// node decides what happens next.
func (s *supervisor) handleTerminated(msg *actor.Terminated) {
	id := msg.GetWho().GetId()
	if d := s.disps[id]; d != nil {
		d.Stop()
		delete(s.disps, id)
	}
	if s.stopping || s.stopped[id] {
		delete(s.stopped, id)
		return
	}
	panic(fmt.Errorf("peers: child %s stopped after more than %d failures within %s", id, maxRestarts, restartWindow))
}

func (s *supervisor) handleSetPeers(ctx actor.Context, msg *messages.SetPeers) {
	for id, p := range s.peers {
		urls, ok := msg.Peers[id]
		if ok && id != s.cfg.Self && slices.Equal(urls, p.urls) {
			continue
		}
		s.stopped[p.pid.GetId()] = true
		ctx.Stop(p.pid)
		delete(s.peers, id)
		s.log.Info("peer removed", "peer", id)
	}
	for _, id := range slices.Sorted(maps.Keys(msg.Peers)) {
		if _, ok := s.peers[id]; ok || id == s.cfg.Self {
			continue
		}
		urls := slices.Clone(msg.Peers[id])
		inboxes := s.resolve(id, urls)
		if len(inboxes) == 0 {
			s.log.Error("peer has no usable peer url; not added", "peer", id, "urls", urls)
			continue
		}
		pid := ctx.SpawnPrefix(s.pinned(peerProps(s.cfg, id, inboxes)).Configure(metrics.Mailbox("peer")), fmt.Sprintf("peer-%x-", id))
		s.adopt(pid)
		s.peers[id] = peerChild{pid: pid, urls: urls}
		s.log.Info("peer added", "peer", id, "urls", urls)
	}
}

// pinned gives props a dispatcher of its own, adopted by the next adopt.
func (s *supervisor) pinned(props *actor.Props) *actor.Props {
	s.next = dispatch.NewPinned(hotThroughput)
	return props.Configure(actor.WithDispatcher(s.next))
}

// adopt records the dispatcher of the child just spawned.
func (s *supervisor) adopt(pid *actor.PID) {
	s.disps[pid.GetId()] = s.next
	s.next = nil
}

// hotThroughput is how many messages a peer actor handles per mailbox run.
const hotThroughput = 300

func (s *supervisor) resolve(id uint64, urls []string) []*actor.PID {
	var inboxes []*actor.PID
	for _, u := range urls {
		pid, err := s.cfg.InboxPID(id, u)
		if err != nil {
			s.log.Error("bad peer url", "peer", id, "url", u, "err", err)
			continue
		}
		inboxes = append(inboxes, pid)
	}
	return inboxes
}

func (s *supervisor) handleSendRaft(ctx actor.Context, msg *messages.SendRaft) {
	to := msg.Msg.GetTo()
	p, ok := s.peers[to]
	if !ok {
		s.log.Debug("dropping raft message to unknown member", "to", to, "type", msg.Msg.GetType().String())
		return
	}
	ctx.Send(p.pid, msg)
}
