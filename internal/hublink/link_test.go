package hublink

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

func TestQueueEventsIsBounded(t *testing.T) {
	var l Link
	for i := 0; i < 3; i++ {
		if !l.QueueEvents(3) {
			t.Fatalf("message %d refused under the limit", i)
		}
	}
	if l.QueueEvents(3) {
		t.Fatal("a fourth message queued with a limit of 3")
	}
	l.EventsTaken()
	if !l.QueueEvents(3) {
		t.Fatal("refused after one was taken")
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
