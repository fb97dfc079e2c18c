// Package dispatch has a protoactor dispatcher that runs one actor's
// mailbox on one long-lived goroutine. protoactor's default dispatcher
// starts a goroutine for every mailbox run, so a hot actor regrows its
// stack each time; measured here, that cost about a tenth of the CPU of a
// put.
package dispatch

import "sync"

// Pinned runs scheduled mailbox runs, one at a time, on its own goroutine.
// Use one Pinned per actor: a mailbox schedules at most one run at a time,
// so the queue of one never holds more than one run of its actor.
type Pinned struct {
	runs       chan func()
	done       chan struct{}
	stopped    chan struct{}
	throughput int
	once       sync.Once
}

// NewPinned starts the goroutine. throughput is how many messages a run
// handles before it yields, as protoactor's own dispatchers take it.
func NewPinned(throughput int) *Pinned {
	p := &Pinned{
		runs:       make(chan func(), 1),
		done:       make(chan struct{}),
		stopped:    make(chan struct{}),
		throughput: throughput,
	}
	go p.loop()
	return p
}

func (p *Pinned) loop() {
	defer close(p.stopped)
	for {
		select {
		case fn := <-p.runs:
			fn()
		case <-p.done:
			return
		}
	}
}

// Schedule queues a mailbox run. After Stop, runs are dropped: the actor
// they belong to is gone.
func (p *Pinned) Schedule(fn func()) {
	select {
	case p.runs <- fn:
	case <-p.done:
	}
}

// Throughput implements actor.Dispatcher.
func (p *Pinned) Throughput() int { return p.throughput }

// Stop ends the goroutine once the run in progress, if any, returns.
func (p *Pinned) Stop() {
	p.once.Do(func() { close(p.done) })
	<-p.stopped
}
