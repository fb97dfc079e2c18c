package transport

import (
	"fmt"
	"net"
	"net/url"
	"sync"
)

// Bound holds client and metrics listeners bound before a member starts, as
// etcd's StartEtcd binds every listener before it builds the server: a port
// that is taken fails the start at once, before the peer remote, the WAL
// replay or raft have started (and have to be stopped again). Each listener
// is handed out once; a later bind of the same URL (a restarted listeners
// actor) listens anew.
type Bound struct {
	mu    sync.Mutex
	byURL map[string]net.Listener
}

// BindError names the URL that could not be bound.
type BindError struct {
	URL string
	Err error
}

func (e *BindError) Error() string { return fmt.Sprintf("listen on %s: %v", e.URL, e.Err) }
func (e *BindError) Unwrap() error { return e.Err }

// BindAll listens on every URL of urls with so's options, secured by sec. On an error it
// closes what it bound and returns a *BindError.
func BindAll(urls []url.URL, sec *Security, so SocketOpts) (*Bound, error) {
	b := &Bound{byURL: make(map[string]net.Listener, len(urls))}
	for _, u := range urls {
		lis, err := Listen(u, sec, so)
		if err != nil {
			b.Close()
			return nil, &BindError{URL: u.String(), Err: err}
		}
		b.byURL[u.String()] = lis
	}
	return b, nil
}

// Take hands out the listener bound for u, once; nil when there is none
// (b nil, u not bound, or taken already).
func (b *Bound) Take(u url.URL) net.Listener {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	lis := b.byURL[u.String()]
	delete(b.byURL, u.String())
	return lis
}

// Close closes the listeners not taken.
func (b *Bound) Close() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, lis := range b.byURL {
		_ = lis.Close()
		delete(b.byURL, k)
	}
}
