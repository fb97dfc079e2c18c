package actortest

import (
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// deadLetterThrottle is the dead-letter throttle interval of NewSystem's
// systems: the first dead letter starts a goroutine that waits this long.
const deadLetterThrottle = time.Millisecond

// NewSystem returns an actor system whose own log lines (system started,
// dead letters) are discarded unless the tests run with -v. In a synctest
// bubble, end it with Shutdown.
func NewSystem() *actor.ActorSystem {
	return actor.NewActorSystemWithConfig(actor.Configure(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return Logger() }),
		actor.WithDeadLetterThrottleInterval(deadLetterThrottle),
	))
}

// Shutdown shuts down sys at the end of a synctest bubble, once its
// actors are stopped. It first lets the goroutine protoactor starts for
// the first dead letter (a throttle timer) end: virtual time, no wait, but
// a goroutine that outlived the bubble would fail the test. Call it only
// inside a bubble.
func Shutdown(sys *actor.ActorSystem) {
	time.Sleep(deadLetterThrottle)
	sys.Shutdown()
}

// Logger is the logger for the actors under test: slog.Default with -v,
// nothing otherwise.
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.DiscardHandler)
}
