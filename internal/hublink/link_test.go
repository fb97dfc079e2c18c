package hublink

import (
	"fmt"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupedb/troupe/messages"
)

// sender records what SendEvents sends (the rest of the context is not
// used).
type sender struct {
	actor.SenderContext
	sent []string
}

func (s *sender) Send(_ *actor.PID, msg any) { s.sent = append(s.sent, fmt.Sprintf("%T", msg)) }

// TestSendEventsIsBoundedAndTellsOfDrops: past the limit batches are
// dropped, and the hub hears of it once until it takes the notice.
func TestSendEventsIsBoundedAndTellsOfDrops(t *testing.T) {
	var l Link
	var s sender
	batch := &messages.EventsApplied{Rev: 2}
	l.SendEvents(&s, batch, 3) // no hub yet: dropped silently
	l.Publish(actor.NewPID("local", "watchers"))
	for range 5 {
		l.SendEvents(&s, batch, 3)
	}
	want := "[*messages.EventsApplied *messages.EventsApplied *messages.EventsApplied *messages.EventsDropped]"
	if fmt.Sprint(s.sent) != want {
		t.Fatalf("sent %v, want %v", s.sent, want)
	}
	l.EventsTaken()
	l.SendEvents(&s, batch, 3) // room again
	l.SendEvents(&s, batch, 3) // full, a notice is on its way
	l.DropNoticeTaken()
	l.SendEvents(&s, batch, 3) // full, the hub took the notice: a new one
	want = "[*messages.EventsApplied *messages.EventsDropped]"
	if got := fmt.Sprint(s.sent[4:]); got != want {
		t.Fatalf("then sent %v, want %v", got, want)
	}
	l.Publish(actor.NewPID("local", "watchers")) // a new incarnation never got the last notice
	l.SendEvents(&s, batch, 3)
	if got := s.sent[len(s.sent)-1]; got != "*messages.EventsDropped" || len(s.sent) != 7 {
		t.Fatalf("after a restart sent %v, want a new EventsDropped", s.sent)
	}
}

func TestLinkSignalsReplacement(t *testing.T) {
	var l Link
	pid, replaced := l.Hub()
	if pid != nil {
		t.Fatal("a hub before any started")
	}
	l.Publish(actor.NewPID("local", "watchers"))
	select {
	case <-replaced:
	default:
		t.Fatal("the first hub's start was not signalled")
	}
	pid, replaced = l.Hub()
	if pid == nil {
		t.Fatal("no hub after Publish")
	}
	l.Publish(pid) // a restart
	select {
	case <-replaced:
	default:
		t.Fatal("a restart was not signalled")
	}
}
