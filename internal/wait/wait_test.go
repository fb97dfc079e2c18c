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
