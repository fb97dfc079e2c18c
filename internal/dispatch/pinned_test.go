package dispatch

import (
	"sync"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

type counter struct {
	mu sync.Mutex
	n  int
	wg *sync.WaitGroup
}

func (c *counter) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(int); ok {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
		c.wg.Done()
	}
}

func TestPinnedRunsAnActor(t *testing.T) {
	p := NewPinned(300)
	defer p.Stop()
	sys := actor.NewActorSystem()
	var wg sync.WaitGroup
	c := &counter{wg: &wg}
	pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return c }, actor.WithDispatcher(p)))
	const n = 10000
	wg.Add(n)
	var senders sync.WaitGroup
	for s := 0; s < 8; s++ {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for i := 0; i < n/8; i++ {
				sys.Root.Send(pid, i)
			}
		}()
	}
	senders.Wait()
	wg.Wait()
	if c.n != n {
		t.Fatalf("handled %d of %d", c.n, n)
	}
	_ = sys.Root.StopFuture(pid).Wait()
}

func TestScheduleAfterStopDrops(t *testing.T) {
	p := NewPinned(1)
	p.Stop()
	p.Schedule(func() { t.Error("run after stop") })
	p.Stop()
}
