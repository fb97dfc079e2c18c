package memberstate

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

func TestQueueEventsIsBounded(t *testing.T) {
	s := New(Member{ID: 1}, 1)
	for i := 0; i < 3; i++ {
		if !s.QueueEvents(3) {
			t.Fatalf("message %d refused under the limit", i)
		}
	}
	if s.QueueEvents(3) {
		t.Fatal("a fourth message queued with a limit of 3")
	}
	s.EventsTaken()
	if !s.QueueEvents(3) {
		t.Fatal("refused after one was taken")
	}
}

func TestWatchHubSignalsReplacement(t *testing.T) {
	s := New(Member{ID: 1}, 1)
	pid, replaced := s.WatchHub()
	if pid != nil {
		t.Fatal("a hub before any started")
	}
	s.SetWatchHub(actor.NewPID("local", "watchers"))
	select {
	case <-replaced:
	default:
		t.Fatal("the first hub's start was not signalled")
	}
	pid, replaced = s.WatchHub()
	if pid == nil {
		t.Fatal("no hub after SetWatchHub")
	}
	s.SetWatchHub(pid) // a restart
	select {
	case <-replaced:
	default:
		t.Fatal("a restart was not signalled")
	}
}
