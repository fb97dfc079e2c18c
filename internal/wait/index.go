package wait

import (
	"context"
	"sync"
)

// Index lets goroutines wait until a monotonically increasing index (the
// applied raft index) reaches a value. The applier calls Advance after each
// batch; linearizable reads call Wait with their read index.
type Index struct {
	mu      sync.Mutex
	current uint64
	waiters map[uint64][]chan struct{}
}

// NewIndex returns an Index starting at start.
func NewIndex(start uint64) *Index {
	return &Index{current: start, waiters: make(map[uint64][]chan struct{})}
}

// Current returns the index reached so far.
func (w *Index) Current() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current
}

// Advance moves the index to i (ignored if not ahead) and wakes waiters
// whose index is reached.
func (w *Index) Advance(i uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i <= w.current {
		return
	}
	w.current = i
	for at, chs := range w.waiters {
		if at <= i {
			for _, ch := range chs {
				close(ch)
			}
			delete(w.waiters, at)
		}
	}
}

// Reset sets the index to i even if it is behind, as a restart of the core
// does after reopening the backend. Waiters stay and are woken by Advance.
func (w *Index) Reset(i uint64) {
	w.mu.Lock()
	w.current = i
	w.mu.Unlock()
}

// Wait blocks until the index reaches i or ctx ends.
func (w *Index) Wait(ctx context.Context, i uint64) error {
	w.mu.Lock()
	if w.current >= i {
		w.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	w.waiters[i] = append(w.waiters[i], ch)
	w.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
