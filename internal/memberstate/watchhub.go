package memberstate

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// watchHub is the watch hub actor as the applier and the watch streams
// find it. The hub lives under the node, beside the core: a core restart
// keeps it (and the client watches), a hub restart loses its watchers, so
// each start closes the previous incarnation's channel and the streams
// that used it create their watches again.
type watchHub struct {
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
func (s *State) QueueEvents(limit int64) bool {
	if s.hub.queued.Add(1) > limit {
		s.hub.queued.Add(-1)
		return false
	}
	return true
}

// EventsTaken tells that the hub took one EventsApplied message.
func (s *State) EventsTaken() { s.hub.queued.Add(-1) }

// SetWatchHub records the (re)started watch hub.
func (s *State) SetWatchHub(pid *actor.PID) {
	h := &s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started != nil {
		close(h.started)
	}
	h.pid, h.started = pid, make(chan struct{})
}

// WatchHub returns the watch hub and a channel closed when it is replaced
// by a new incarnation (which knows none of the old one's watches); a nil
// PID while there is none.
func (s *State) WatchHub() (*actor.PID, <-chan struct{}) {
	h := &s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started == nil {
		h.started = make(chan struct{})
	}
	return h.pid, h.started
}
