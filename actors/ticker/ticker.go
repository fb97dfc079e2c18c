// Package ticker is the raft actor's clock: it sends messages.Tick to its
// parent every heartbeat interval. It owns one time.Ticker goroutine, stopped
// when the actor stops, so a restart of the core never leaves a clock behind.
package ticker

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupedb/troupe/messages"
)

// Config of the ticker.
type Config struct {
	Interval time.Duration
}

// Props returns the ticker's props.
func Props(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &ticker{cfg: cfg} })
}

type ticker struct {
	cfg  Config
	stop chan struct{}
	done chan struct{}
}

// Receive handles lifecycle only: the ticks come from the owned goroutine.
func (t *ticker) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		t.start(ctx)
	case *actor.Stopping, *actor.Restarting:
		t.halt()
	}
}

func (t *ticker) start(ctx actor.Context) {
	t.stop, t.done = make(chan struct{}), make(chan struct{})
	parent, root := ctx.Parent(), ctx.ActorSystem().Root
	stop, done, interval := t.stop, t.done, t.cfg.Interval
	go func() {
		defer close(done)
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			select {
			case <-tk.C:
				root.Send(parent, &messages.Tick{})
			case <-stop:
				return
			}
		}
	}()
}

func (t *ticker) halt() {
	if t.stop == nil {
		return
	}
	close(t.stop)
	<-t.done
	t.stop = nil
}
