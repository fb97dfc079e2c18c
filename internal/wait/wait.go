// Package wait connects a goroutine waiting for the outcome of a raft
// request with the actor that learns it: a request id registered here is
// triggered once, from any goroutine, with the result. It plays the part of
// etcd's pkg/wait: a sharded map of buffered channels, cheaper than an actor
// future per request.
package wait

import "sync"

const shards = 64

// Registry maps request ids to the channel their result, a T, goes to.
// One registry holds one kind of result, so a waiter never has to guess
// what it received.
type Registry[T any] struct {
	shards [shards]shard[T]
	// chans are empty channels whose waiter received its result, for
	// RegisterReused: a channel is an allocation per request otherwise.
	chans sync.Pool
}

type shard[T any] struct {
	mu sync.Mutex
	m  map[uint64]chan T
}

// New returns an empty Registry.
func New[T any]() *Registry[T] {
	r := &Registry[T]{}
	for i := range r.shards {
		r.shards[i].m = make(map[uint64]chan T)
	}
	return r
}

// Register returns the channel that receives id's result. Registering an
// id twice is a broken invariant: ids come from one generator.
func (r *Registry[T]) Register(id uint64) <-chan T {
	return r.add(id, make(chan T, 1))
}

// RegisterReused is Register with a channel that may have served an
// earlier id. Give it back with Reuse once its result was received, and
// only then: after Cancel a trigger may still be sending to it.
func (r *Registry[T]) RegisterReused(id uint64) chan T {
	ch, ok := r.chans.Get().(chan T)
	if !ok {
		ch = make(chan T, 1)
	}
	return r.add(id, ch)
}

// add registers ch as id's result channel.
func (r *Registry[T]) add(id uint64, ch chan T) chan T {
	s := &r.shards[id%shards]
	s.mu.Lock()
	if _, dup := s.m[id]; dup {
		s.mu.Unlock()
		panic("wait: duplicate request id")
	}
	s.m[id] = ch
	s.mu.Unlock()
	return ch
}

// Reuse gives back a channel of RegisterReused whose result was
// received: Trigger forgot its id before sending, so nothing else will
// send to it.
func (r *Registry[T]) Reuse(ch chan T) { r.chans.Put(ch) }

// Trigger delivers x to id's waiter, if one is registered, and forgets id.
// It never blocks. It reports whether a waiter was found.
func (r *Registry[T]) Trigger(id uint64, x T) bool {
	s := &r.shards[id%shards]
	s.mu.Lock()
	ch, ok := s.m[id]
	delete(s.m, id)
	s.mu.Unlock()
	if ok {
		ch <- x
	}
	return ok
}

// Cancel forgets id without delivering anything (the waiter gave up).
func (r *Registry[T]) Cancel(id uint64) {
	s := &r.shards[id%shards]
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// Len reports how many ids are waiting.
func (r *Registry[T]) Len() int {
	n := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// TriggerAll delivers x to every registered waiter and forgets them all,
// as a restart of the core does for requests it can no longer answer.
func (r *Registry[T]) TriggerAll(x T) int {
	n := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for id, ch := range s.m {
			ch <- x
			delete(s.m, id)
			n++
		}
		s.mu.Unlock()
	}
	return n
}
