package chaos

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// recorder is one watcher of a schedule: a clientv3 watch that runs
// through every fault (clientv3 resumes it on another member, or on the
// same one once it is back, from the revision after the last it got) and
// records what arrives.
type recorder struct {
	name     string
	key, end string
	start    int64
	cli      *clientv3.Client
	cancel   context.CancelFunc
	done     chan struct{}

	mu     sync.Mutex
	events []Event
	seen   int64  // highest revision known delivered: an event's or a progress notification's
	closed string // why the watch ended early, "" while it runs
}

// startRecorder watches [key, end) from revision start on a client of eps.
func startRecorder(name string, eps []string, tc *tls.Config, key, end string, start int64) (*recorder, error) {
	cli, err := newClient(eps, tc)
	if err != nil {
		return nil, fmt.Errorf("chaos: client of watcher %s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{name: name, key: key, end: end, start: start, cli: cli, cancel: cancel, done: make(chan struct{})}
	opts := []clientv3.OpOption{clientv3.WithRev(start)}
	if end != "" {
		opts = append(opts, clientv3.WithRange(end))
	}
	// Without require-leader: a watch on a member cut off from the leader
	// stays open and resumes when the member catches up, as a watch must.
	wch := cli.Watch(ctx, key, opts...)
	go r.run(wch)
	return r, nil
}

func (r *recorder) run(wch clientv3.WatchChan) {
	defer close(r.done)
	for wr := range wch {
		r.mu.Lock()
		if err := wr.Err(); err != nil {
			if wr.Canceled {
				r.closed = err.Error()
			}
			r.mu.Unlock()
			continue
		}
		evs := WatchEvents(wr)
		r.events = append(r.events, evs...)
		for _, e := range evs {
			r.seen = max(r.seen, e.Revision)
		}
		if wr.IsProgressNotify() {
			r.seen = max(r.seen, wr.Header.Revision)
		}
		r.mu.Unlock()
	}
}

// catchUp waits until the watcher is known to have everything up to rev,
// asking for progress notifications meanwhile; false if it did not in
// time (or its watch ended).
func (r *recorder) catchUp(ctx context.Context, rev int64) bool {
	for {
		r.mu.Lock()
		seen, closed := r.seen, r.closed
		r.mu.Unlock()
		if seen >= rev {
			return true
		}
		if closed != "" || ctx.Err() != nil {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		_ = r.cli.RequestProgress(pctx) // a lost request is asked again
		cancel()
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// stop ends the watch and returns what it received up to rev.
func (r *recorder) stop(rev int64, caughtUp bool) Watched {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
	}
	r.cli.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	w := Watched{Name: r.name, Key: r.key, End: r.end, StartRev: r.start}
	for _, e := range r.events {
		if e.Revision <= rev {
			w.Events = append(w.Events, e)
		}
	}
	if caughtUp {
		w.UpTo = rev
	}
	return w
}

// startRecorders starts the schedule's watchers from revision start: one
// on every key of the schedule through all endpoints, one on the same
// prefix through a single member (its watch waits out that member's
// faults), and one on a single key.
func startRecorders(cfg Config, eps []string, start int64) ([]*recorder, error) {
	prefixEnd := clientv3.GetPrefixRangeEnd(cfg.KeyPrefix)
	specs := []struct {
		name     string
		eps      []string
		key, end string
	}{
		{"all-prefix", eps, cfg.KeyPrefix, prefixEnd},
		{"one-member-prefix", eps[len(eps)-1:], cfg.KeyPrefix, prefixEnd},
		{"one-key", eps, cfg.key(0), ""},
	}
	var out []*recorder
	for _, s := range specs[:min(cfg.Watchers, len(specs))] {
		r, err := startRecorder(s.name, s.eps, cfg.TLS, s.key, s.end, start)
		if err != nil {
			for _, o := range out {
				o.stop(0, false)
			}
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// checkRecorders waits for every watcher to catch up with rev, the
// cluster's final revision, reads the committed history of the schedule's
// keys back revision by revision (independently of watch), and checks the
// watchers against it.
func (r *Report) checkRecorders(ctx context.Context, cli *clientv3.Client, cfg Config, recs []*recorder, start, rev int64) {
	if len(recs) == 0 {
		return
	}
	var watched []Watched
	for _, rec := range recs {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ok := rec.catchUp(wctx, rev)
		cancel()
		w := rec.stop(rev, ok)
		if !ok {
			r.Violations = append(r.Violations, fmt.Sprintf("watcher %s did not catch up to revision %d in 30s (ended: %q, %d events)", rec.name, rev, rec.closed, len(w.Events)))
		}
		r.WatchEvents += len(w.Events)
		watched = append(watched, w)
	}
	history, err := ReadHistory(ctx, cli, cfg.KeyPrefix, clientv3.GetPrefixRangeEnd(cfg.KeyPrefix), start, rev)
	if err != nil {
		r.Errors = append(r.Errors, err.Error())
		return
	}
	r.Violations = append(r.Violations, CheckWatches(history, watched)...)
}
