// Package actortest has helpers for tests that drive one actor with
// messages: a recorder actor that stands in for a collaborator.
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
func (r *Recorder) Props() *actor.Props {
	return actor.PropsFromFunc(func(ctx actor.Context) {
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
	})
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
