package ticker

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/messages"
)

// TestTicksOnVirtualTime counts ticks over a virtual second: exactly one
// per interval, and none after the ticker stops.
func TestTicksOnVirtualTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actortest.NewSystem()
		ticks := make(chan struct{}, 100)
		parent := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
			switch ctx.Message().(type) {
			case *actor.Started:
				ctx.Spawn(Props(Config{Interval: 100 * time.Millisecond}))
			case *messages.Tick:
				ticks <- struct{}{}
			}
		}))
		time.Sleep(time.Second + 50*time.Millisecond)
		synctest.Wait()
		if n := len(ticks); n != 10 {
			t.Fatalf("%d ticks in 1.05 virtual seconds, want 10", n)
		}
		if err := sys.Root.StopFuture(parent).Wait(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if n := len(ticks); n != 10 {
			t.Fatalf("ticks went on after stop: %d", n)
		}
		actortest.Shutdown(sys)
	})
}
