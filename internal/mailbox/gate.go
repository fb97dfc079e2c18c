// Package mailbox closes a window in protoactor's spawn. protoactor adds
// a new actor's process to the registry, so its name resolves, before it
// gives the mailbox its invoker and dispatcher and posts Started. A
// message sent to that name in between (a remote message for a named
// actor that is starting, a peer of another member in the same actor
// system) reads the dispatcher while it is written: a data race, a nil
// dereference on the sender's goroutine if the dispatcher is not set yet,
// or a user message handled before Started. protoactor's maintainers
// chose not to change spawn (their issue 198), and the newest version on
// the module proxy still spawns in that order.
//
// Gated wraps a mailbox so that what is posted before the spawn posts
// Started is held, and forwarded after Started, in the order it came.
// Once open, a post costs one atomic load more than the plain mailbox:
// BenchmarkPostAndProcess measured 110 ns per message posted and processed
// against 102 ns without the gate (medians of 10 interleaved runs, one
// allocation each, the method value protoactor schedules a run with).
// metrics.Mailbox, the props option every troupe actor gets its mailbox
// from, wraps its mailbox in Gated.
package mailbox

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// gated holds posts until the spawn has registered the handlers of inner
// and posted Started to it.
//
// What it holds is bounded by the caller, as inner's own queue is: posts
// are held only between the registry's Add and Started, a few statements
// of one spawn, and only by senders that already know the actor's name;
// the same messages would otherwise wait in inner's unbounded queue.
type gated struct {
	// open is set once everything held has been forwarded; from then on
	// posts go straight to inner.
	open  atomic.Bool
	inner actor.Mailbox

	mu         sync.Mutex
	registered bool // RegisterHandlers was called: a Started now comes from the spawn
	opening    bool // the spawn's Started was forwarded; held is being drained
	held       []heldMessage
}

type heldMessage struct {
	msg    any
	system bool
}

// Gated returns inner behind the gate. Give each actor its own: wrap a
// fresh mailbox in the MailboxProducer.
func Gated(inner actor.Mailbox) actor.Mailbox {
	return &gated{inner: inner}
}

func (g *gated) PostUserMessage(msg any) {
	if g.open.Load() || !g.hold(msg, false) {
		g.inner.PostUserMessage(msg)
	}
}

func (g *gated) PostSystemMessage(msg any) {
	if g.open.Load() || !g.hold(msg, true) {
		g.inner.PostSystemMessage(msg)
	}
}

// hold keeps msg while the gate is closed and reports whether it did. The
// Started that the spawn posts after RegisterHandlers goes to inner first
// and opens the gate.
func (g *gated) hold(msg any, system bool) bool {
	g.mu.Lock()
	if g.open.Load() {
		g.mu.Unlock()
		return false
	}
	if _, started := msg.(*actor.Started); !started || !system || !g.registered || g.opening {
		g.held = append(g.held, heldMessage{msg: msg, system: system})
		g.mu.Unlock()
		return true
	}
	g.opening = true
	g.mu.Unlock()
	g.inner.PostSystemMessage(msg)
	g.release()
	return true
}

// release forwards what was held, in order, then opens the gate. It
// forwards without the lock, so a sender that posts meanwhile (the actor
// itself, on a dispatcher that runs it inline) joins the queue instead of
// waiting on the lock; each round drains what the last one let in, and
// posts stop coming through hold once the gate is open.
func (g *gated) release() {
	for {
		g.mu.Lock()
		batch := g.held
		g.held = nil
		if len(batch) == 0 {
			g.open.Store(true)
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		for _, h := range batch {
			if h.system {
				g.inner.PostSystemMessage(h.msg)
			} else {
				g.inner.PostUserMessage(h.msg)
			}
		}
	}
}

// RegisterHandlers is called by the spawn before it posts Started; no
// message has reached inner yet, so inner's fields are written before any
// sender reads them.
func (g *gated) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	g.inner.RegisterHandlers(invoker, dispatcher)
	g.mu.Lock()
	g.registered = true
	g.mu.Unlock()
}

func (g *gated) Start() { g.inner.Start() }

// UserMessageCount counts the held user messages too.
func (g *gated) UserMessageCount() int {
	if g.open.Load() {
		return g.inner.UserMessageCount()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.inner.UserMessageCount()
	for _, h := range g.held {
		if !h.system {
			n++
		}
	}
	return n
}
