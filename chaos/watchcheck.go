package chaos

import (
	"context"
	"fmt"
	"sort"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Event is one change of one key as the store committed it or a watcher
// received it. A revision holds at most one event per key (etcd refuses a
// transaction that writes a key twice), so (Revision, Key) names an event.
type Event struct {
	Revision int64 // the change's revision (a delete's own revision)
	Key      string
	Delete   bool
	Value    string // a put's value
}

func (e Event) String() string {
	if e.Delete {
		return fmt.Sprintf("del(%s)@%d", e.Key, e.Revision)
	}
	return fmt.Sprintf("put(%s, %q)@%d", e.Key, e.Value, e.Revision)
}

// eventOf turns a clientv3 event into an Event.
func eventOf(ev *clientv3.Event) Event {
	e := Event{Revision: ev.Kv.ModRevision, Key: string(ev.Kv.Key), Delete: ev.Type == mvccpb.DELETE}
	if !e.Delete {
		e.Value = string(ev.Kv.Value)
	}
	return e
}

// WatchEvents returns the events of one watch response, in the order
// received: a watcher appends them to its Watched.Events.
func WatchEvents(wr clientv3.WatchResponse) []Event {
	out := make([]Event, 0, len(wr.Events))
	for _, ev := range wr.Events {
		out = append(out, eventOf(ev))
	}
	return out
}

// Watched is what one watcher asked for and received.
type Watched struct {
	Name string
	// Key and End are the watched range as etcd takes them: End "" is the
	// key Key alone, "\x00" every key from Key on.
	Key, End string
	// StartRev is the revision the watch started from (WithRev); every
	// committed event in the range from there on is due.
	StartRev int64
	// Events are the events received, in order.
	Events []Event
	// UpTo, if > 0, is a revision the watcher is known to have caught up
	// to (the header of a progress notification, or of its last response
	// once writes stopped): every due event up to it must have arrived.
	// 0 checks only that what arrived is a prefix of what is due (a watch
	// cancelled early, by compaction for example).
	UpTo int64
}

func (w Watched) inRange(key string) bool {
	switch w.End {
	case "":
		return key == w.Key
	case "\x00":
		return key >= w.Key
	}
	return key >= w.Key && key < w.End
}

// CheckWatches checks every watcher's events against the committed
// history (every event in commit order, as HistoryFromReads or
// HistoryFromWatch give it): ordered by revision, no duplicate, nothing
// outside the range or before the start, no gap, each equal to the
// committed one, and complete up to UpTo. The order of the events of one
// revision (a transaction's writes) is not checked: a history read back by
// Get cannot tell it. The history must start at or before every
// watcher's StartRev. It returns one line per violation, at most one per
// watcher for the comparison with the history (the first difference).
func CheckWatches(history []Event, watchers []Watched) []string {
	var out []string
	for _, w := range watchers {
		out = append(out, checkWatch(history, w)...)
	}
	return out
}

func checkWatch(history []Event, w Watched) []string {
	var out []string
	bad := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("watcher %s [%q, %q) from %d: ", w.Name, w.Key, w.End, w.StartRev)+fmt.Sprintf(format, args...))
	}
	seen := map[Event]bool{}
	var inside []Event // compared with the history; the others are reported here
	for i, e := range w.Events {
		if i > 0 && e.Revision < w.Events[i-1].Revision {
			bad("event %d %v after %v: out of order", i, e, w.Events[i-1])
		}
		if id := (Event{Revision: e.Revision, Key: e.Key}); seen[id] {
			bad("event %d %v: duplicate", i, e)
			continue
		}
		seen[Event{Revision: e.Revision, Key: e.Key}] = true
		if !w.inRange(e.Key) || e.Revision < w.StartRev {
			bad("event %d %v: outside the watched range or before the start", i, e)
		} else {
			inside = append(inside, e)
		}
	}
	var due []Event
	for _, e := range history {
		if e.Revision >= w.StartRev && w.inRange(e.Key) {
			due = append(due, e)
		}
	}
	got := byRevisionThenKey(inside)
	due = byRevisionThenKey(due)
	for i, e := range got {
		if i >= len(due) {
			bad("event %v beyond the committed history (last due: %s)", e, lastOf(due))
			return out
		}
		if e == due[i] {
			continue
		}
		if j := indexOf(due[i:], e); j >= 0 {
			bad("gap: %d due events missing before %v, first %v", j, e, due[i])
		} else {
			bad("event %v was not committed (due there: %v)", e, due[i])
		}
		return out
	}
	if w.UpTo > 0 {
		n := sort.Search(len(due), func(i int) bool { return due[i].Revision > w.UpTo })
		if len(got) < n {
			bad("caught up to %d but %d due events never arrived, first %v", w.UpTo, n-len(got), due[len(got)])
		}
	}
	return out
}

func byRevisionThenKey(evs []Event) []Event {
	out := append([]Event(nil), evs...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Revision != out[j].Revision {
			return out[i].Revision < out[j].Revision
		}
		return out[i].Key < out[j].Key
	})
	return out
}

func indexOf(evs []Event, e Event) int {
	for i := range evs {
		if evs[i] == e {
			return i
		}
	}
	return -1
}

func lastOf(evs []Event) string {
	if len(evs) == 0 {
		return "none"
	}
	return evs[len(evs)-1].String()
}

// RevisionRead is a full read of the checked key range at one revision:
// Get(key, WithRange(end), WithRev(Revision)).
type RevisionRead struct {
	Revision int64
	KVs      []*mvccpb.KeyValue
}

// HistoryFromReads derives the committed events from reads at consecutive
// revisions: a key whose mod revision is the read's revision was put
// there, a key of the previous read missing from this one was deleted
// there. The first read is the base: the history covers the revisions
// after it.
func HistoryFromReads(reads []RevisionRead) ([]Event, error) {
	var out []Event
	for i := 1; i < len(reads); i++ {
		prev, cur := reads[i-1], reads[i]
		if cur.Revision != prev.Revision+1 {
			return nil, fmt.Errorf("chaos: reads at revisions %d then %d: want consecutive revisions", prev.Revision, cur.Revision)
		}
		present := map[string]bool{}
		var evs []Event
		for _, kv := range cur.KVs {
			present[string(kv.Key)] = true
			if kv.ModRevision == cur.Revision {
				evs = append(evs, Event{Revision: cur.Revision, Key: string(kv.Key), Value: string(kv.Value)})
			}
		}
		for _, kv := range prev.KVs {
			if !present[string(kv.Key)] {
				evs = append(evs, Event{Revision: cur.Revision, Key: string(kv.Key), Delete: true})
			}
		}
		out = append(out, byRevisionThenKey(evs)...)
	}
	return out, nil
}

// ReadHistory reads [key, end) at every revision from from-1 to to and
// returns the events committed in from..to. The revisions must not be
// compacted yet.
func ReadHistory(ctx context.Context, cli *clientv3.Client, key, end string, from, to int64) ([]Event, error) {
	reads := make([]RevisionRead, 0, to-from+2)
	for rev := max(from-1, 1); rev <= to; rev++ {
		resp, err := cli.Get(ctx, key, clientv3.WithRange(end), clientv3.WithRev(rev))
		if err != nil {
			return nil, fmt.Errorf("chaos: read history at revision %d: %w", rev, err)
		}
		reads = append(reads, RevisionRead{Revision: rev, KVs: resp.Kvs})
	}
	return HistoryFromReads(reads)
}

// HistoryFromWatch watches every key from revision from until the events
// of revision to arrived and returns the events of [key, end) in from..to
// in commit order. Every revision after the first holds at least one event
// of some key, so watching them all gives a clear end without relying on
// progress notifications. ctx bounds the wait; to must be a revision the
// store has reached, and from must not be compacted yet.
func HistoryFromWatch(ctx context.Context, cli *clientv3.Client, key, end string, from, to int64) ([]Event, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := Watched{Key: key, End: end}
	wch := cli.Watch(wctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(from))
	var out []Event
	for {
		select {
		case wr, ok := <-wch:
			if !ok {
				return nil, fmt.Errorf("chaos: history watch from %d closed: %w", from, ctx.Err())
			}
			if err := wr.Err(); err != nil {
				return nil, fmt.Errorf("chaos: history watch from %d: %w", from, err)
			}
			done := false
			for _, e := range WatchEvents(wr) {
				if e.Revision > to {
					done = true
					break
				}
				if in.inRange(e.Key) {
					out = append(out, e)
				}
				done = done || e.Revision == to
			}
			if done {
				return out, nil
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("chaos: history watch from %d did not reach %d: %w", from, to, ctx.Err())
		}
	}
}
