//go:build race

package actorapi

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// clientSystem, under the race detector, is the server's own system: the
// client then reaches the endpoint by its address without a remote hop.
// protoactor's Remote.Start writes gRPC's global logger
// (grpclog.SetLoggerV2) while gRPC goroutines of any remote already
// running in the process read it, so two remotes in one process are always
// reported as a race — in protoactor and gRPC, not here. The remote path is
// covered by the same tests without -race, and by guard_test.go (one
// remote, raw gRPC peers) with it.
func clientSystem(t *testing.T, s *Server) *actor.ActorSystem {
	t.Helper()
	return s.System()
}
