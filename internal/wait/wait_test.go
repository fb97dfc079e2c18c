package wait

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestRegistryTriggerOnce(t *testing.T) {
	r := New[string]()
	ch := r.Register(7)
	if !r.Trigger(7, "x") {
		t.Fatal("trigger found no waiter")
	}
	if r.Trigger(7, "y") {
		t.Fatal("second trigger found a waiter")
	}
	if got := <-ch; got != "x" {
		t.Fatalf("got %v", got)
	}
	r.Register(8)
	r.Cancel(8)
	if r.Len() != 0 {
		t.Fatalf("len = %d", r.Len())
	}
}

func TestIndexWait(t *testing.T) {
	w := NewIndex(3)
	if err := w.Wait(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := uint64(4); i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Wait(context.Background(), i); err != nil {
				t.Error(err)
			}
		}()
	}
	w.Advance(5)
	w.Advance(9)
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := w.Wait(ctx, 100); err == nil {
		t.Fatal("wait past the index returned without error")
	}
}

// TestRegisterReused: a channel given back after its result was received
// serves the next id empty, and gets only that id's result.
func TestRegisterReused(t *testing.T) {
	r := New[int]()
	ch := r.RegisterReused(1)
	r.Trigger(1, 5)
	if got := <-ch; got != 5 {
		t.Fatalf("got %d, want 5", got)
	}
	r.Reuse(ch)
	for id := uint64(2); id < 5; id++ {
		ch := r.RegisterReused(id)
		if len(ch) != 0 {
			t.Fatalf("reused channel for id %d holds %d results", id, len(ch))
		}
		r.Trigger(id-1, 99) // an id already answered finds nobody
		r.Trigger(id, int(id))
		if got := <-ch; got != int(id) {
			t.Fatalf("id %d got %d", id, got)
		}
		r.Reuse(ch)
	}
	if r.Len() != 0 {
		t.Fatalf("len = %d", r.Len())
	}
}
