// Package actortest has helpers for tests that drive one actor with
// messages: a recorder actor that stands in for a collaborator (or for
// the parent of the actor under test), and a quiet actor system.
package actortest

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Recorder stands in for a collaborator: it forwards every user message it
// receives to C, and answers it with Reply's result when Reply is set and
// returns non-nil.
type Recorder struct {
	C     chan any
	Reply func(msg any) any
}

// NewRecorder returns a Recorder with a channel of the given capacity.
func NewRecorder(capacity int) *Recorder {
	return &Recorder{C: make(chan any, capacity)}
}

// Props returns props for the recorder.
func (r *Recorder) Props() *actor.Props { return actor.PropsFromFunc(r.receive) }

func (r *Recorder) receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case actor.SystemMessage, actor.AutoReceiveMessage:
		return
	default:
		r.C <- msg
		if r.Reply != nil {
			if out := r.Reply(msg); out != nil {
				ctx.Respond(out)
			}
		}
	}
}

// Next returns the next recorded message of type T, skipping others, or
// fails the test after timeout.
func Next[T any](t *testing.T, r *Recorder, timeout time.Duration) T {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-r.C:
			if v, ok := m.(T); ok {
				return v
			}
		case <-deadline:
			var zero T
			t.Fatalf("no %T recorded within %s", zero, timeout)
			return zero
		}
	}
}

// Failure is what a Recorder that parents an actor (SpawnChild) records
// when that child fails: the child and the panic's reason. The child is
// stopped.
type Failure struct {
	Who    *actor.PID
	Reason any
}

// SpawnChild spawns a recorder as the parent of child and returns both
// PIDs (stopping the parent stops the child). The recorder records (and answers, with Reply) what the
// child sends its parent, and as the child's supervisor records a Failure
// and stops the child when it fails.
func (r *Recorder) SpawnChild(root *actor.RootContext, child *actor.Props) (parent, pid *actor.PID) {
	spawned := make(chan *actor.PID, 1)
	props := actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			spawned <- ctx.Spawn(child)
			return
		}
		r.receive(ctx)
	}, actor.WithSupervisor(stopAndRecord{r}))
	parent = root.Spawn(props)
	return parent, <-spawned
}

// stopAndRecord is the supervisor strategy of SpawnChild.
type stopAndRecord struct{ r *Recorder }

func (s stopAndRecord) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason any, _ any) {
	s.r.C <- Failure{Who: child, Reason: reason}
	sup.StopChildren(child)
}
