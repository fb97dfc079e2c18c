// Package hublink is how the applier and the watch streams find the
// member's watch hub (actors/watchers), which lives under the node beside
// the core: the hub publishes each incarnation of itself here, and the
// applier reserves room in the hub's mailbox here before it sends a batch,
// so the hub's queue stays bounded without the applier ever waiting.
package hublink

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
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
}

// QueueEvents reserves room for one EventsApplied message to the hub and
// reports whether there was some (fewer than limit queued). When there is
// none the applier drops the batch's events: the hub finds the gap in the
// next batch it gets and reads the store's history instead.
func (l *Link) QueueEvents(limit int64) bool {
	if l.queued.Add(1) > limit {
		l.queued.Add(-1)
		return false
	}
	return true
}

// EventsTaken tells that the hub took one EventsApplied message.
func (l *Link) EventsTaken() { l.queued.Add(-1) }

// Publish records the (re)started hub. Writer: the hub, in its Started.
func (l *Link) Publish(pid *actor.PID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started != nil {
		close(l.started)
	}
	l.pid, l.started = pid, make(chan struct{})
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
