//go:build !race

package actorapi

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// clientSystem is a second actor system with its own remote, as a program
// using the actor API runs it (see clientsystem_race_test.go for -race).
func clientSystem(t *testing.T, _ *Server) *actor.ActorSystem {
	t.Helper()
	return startClientSystem(t)
}
