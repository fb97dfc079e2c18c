package actortest

import (
	"log/slog"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// NewSystem returns an actor system whose own log lines (system started,
// dead letters) are discarded unless the tests run with -v.
func NewSystem() *actor.ActorSystem {
	return actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return Logger()
	})))
}

// Logger is the logger for the actors under test: slog.Default with -v,
// nothing otherwise.
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.DiscardHandler)
}
