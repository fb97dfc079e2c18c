// Package hublink is how the applier and the watch streams find the
// member's watch hub (actors/watchers), which lives under the node beside
// the core: the hub publishes each incarnation of itself here, and the
// applier sends its batches through here (SendEvents), so the hub's queue
// stays bounded without the applier ever waiting.
package hublink

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupedb/troupe/messages"
)

// Link is how the applier and the watch streams find the hub, which lives
// under the node beside the core: a core restart keeps it (and the client
// watches), a hub restart loses its watchers, so each start closes the
// previous incarnation's channel and the streams that used it create their
// watches again. The node makes one Link per member and hands it to the
// hub, the core (for the applier) and the listeners.
type Link struct {
	mu      sync.Mutex
	pid     *actor.PID
	started chan struct{} // closed when the next incarnation starts
	// queued counts EventsApplied messages sent and not yet taken, so the
	// hub's mailbox stays bounded without the applier ever waiting.
	queued atomic.Int64
	// dropNoticed is set while an EventsDropped is on its way to the hub:
	// one tells of every batch dropped until the hub takes it.
	dropNoticed atomic.Bool
}

// SendEvents sends the hub one batch's EventsApplied, never waiting: if
// limit of them already wait in its mailbox, the batch's events are
// dropped instead, and the hub is sent an EventsDropped unless one is on
// its way already, so it reads what it missed from the store's history.
//
// Why a notice and not only the next batch's gap: on a quiet member no
// batch may follow for a long time, and until the hub knows of the gap its
// watches miss those events and its progress notifications stay at the
// old revision (kube-apiserver's consistent reads wait for a progress
// notification at a revision it read). Why not an undroppable "applied up
// to" message per batch: the mailbox would grow with every dropped batch.
// One notice at a time keeps the hub's mailbox at limit + 1 messages.
// Without a hub the batch is dropped silently: a hub that starts later
// takes the store's revision.
func (l *Link) SendEvents(sender actor.SenderContext, msg *messages.EventsApplied, limit int64) {
	pid, _ := l.Hub()
	if pid == nil {
		return
	}
	if l.queueEvents(limit) {
		sender.Send(pid, msg)
		return
	}
	if l.dropNoticed.CompareAndSwap(false, true) {
		sender.Send(pid, &messages.EventsDropped{})
	}
}

// queueEvents reserves room for one EventsApplied message to the hub and
// reports whether there was some (fewer than limit queued).
func (l *Link) queueEvents(limit int64) bool {
	if l.queued.Add(1) > limit {
		l.queued.Add(-1)
		return false
	}
	return true
}

// EventsTaken tells that the hub took one EventsApplied message.
func (l *Link) EventsTaken() { l.queued.Add(-1) }

// DropNoticeTaken tells that the hub took the EventsDropped message; it
// must call it before it reads the store's revision, so a batch dropped
// after that read sends a new notice.
func (l *Link) DropNoticeTaken() { l.dropNoticed.Store(false) }

// Publish records the (re)started hub. Writer: the hub, in its Started.
func (l *Link) Publish(pid *actor.PID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started != nil {
		close(l.started)
	}
	l.pid, l.started = pid, make(chan struct{})
	// A new incarnation takes the store's revision: a notice the previous
	// one never took would otherwise keep the next drops untold.
	l.dropNoticed.Store(false)
}

// Hub returns the hub and a channel closed when it is replaced by a new
// incarnation (which knows none of the old one's watches); a nil PID while
// there is none.
func (l *Link) Hub() (*actor.PID, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started == nil {
		l.started = make(chan struct{})
	}
	return l.pid, l.started
}
