package memberstate

import (
	"strings"

	"github.com/asynkron/protoactor-go/actor"
)

// Lessor returns the current lessor actor, or nil while the core is down:
// it is the raft actor's sibling "lessor" under the core.
func (s *State) Lessor() *actor.PID {
	r := s.raftPID.Load()
	if r == nil {
		return nil
	}
	return actor.NewPID(r.Address, strings.TrimSuffix(r.Id, "/raft")+"/lessor")
}
