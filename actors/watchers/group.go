package watchers

import (
	"bytes"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/troupedb/troupe/messages"
)

// watcher is one watch as the hub keeps it.
type watcher struct {
	sink     messages.WatchSink
	id       int64
	key, end []byte // end nil: key alone; empty: no end
	noPut    bool
	noDelete bool
	// next is the first revision the watcher has not received: for an
	// unsynced watcher where history resumes, for a synced one a floor
	// (it may start beyond what the hub has seen; events below are not
	// for it).
	next int64
	// clientStart is the start revision the client asked for (0: none);
	// no progress notification is sent below it, as etcd.
	clientStart int64
	// compacted is set once its history is compacted away: it waits for
	// room in its sink to receive the cancel.
	compacted bool
}

// matches reports whether key is in the watcher's range.
func (w *watcher) matches(key []byte) bool {
	if w.end == nil {
		return bytes.Equal(w.key, key)
	}
	return bytes.Compare(key, w.key) >= 0 && (len(w.end) == 0 || bytes.Compare(key, w.end) < 0)
}

// wants reports whether the watcher takes ev (range and filters).
func (w *watcher) wants(ev *mvccpb.Event) bool {
	if ev.Type == mvccpb.PUT && w.noPut || ev.Type == mvccpb.DELETE && w.noDelete {
		return false
	}
	return ev.Kv.ModRevision >= w.next && w.matches(ev.Kv.Key)
}

// pick returns the events of evs the watcher takes; evs itself when it
// takes them all (shared: nobody changes a delivered slice).
func (w *watcher) pick(evs []*mvccpb.Event) []*mvccpb.Event {
	all := true
	for _, ev := range evs {
		if !w.wants(ev) {
			all = false
			break
		}
	}
	if all {
		return evs
	}
	var out []*mvccpb.Event
	for _, ev := range evs {
		if w.wants(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// group is a set of watchers indexed for matching events: single-key
// watchers by key, range watchers in one set (etcd keeps an interval
// tree; ranges are few in practice, and a scan is exact).
type group struct {
	keys   map[string]map[*watcher]struct{}
	ranges map[*watcher]struct{}
	n      int
}

func newGroup() *group {
	return &group{keys: map[string]map[*watcher]struct{}{}, ranges: map[*watcher]struct{}{}}
}

func (g *group) add(w *watcher) {
	g.n++
	if w.end != nil {
		g.ranges[w] = struct{}{}
		return
	}
	set := g.keys[string(w.key)]
	if set == nil {
		set = map[*watcher]struct{}{}
		g.keys[string(w.key)] = set
	}
	set[w] = struct{}{}
}

func (g *group) has(w *watcher) bool {
	if w.end != nil {
		_, ok := g.ranges[w]
		return ok
	}
	_, ok := g.keys[string(w.key)][w]
	return ok
}

func (g *group) remove(w *watcher) bool {
	if w.end != nil {
		if _, ok := g.ranges[w]; !ok {
			return false
		}
		delete(g.ranges, w)
		g.n--
		return true
	}
	set := g.keys[string(w.key)]
	if _, ok := set[w]; !ok {
		return false
	}
	delete(set, w)
	if len(set) == 0 {
		delete(g.keys, string(w.key))
	}
	g.n--
	return true
}

// each calls f for every watcher; f may remove the watcher it is given.
func (g *group) each(f func(w *watcher)) {
	for _, set := range g.keys {
		for w := range set {
			f(w)
		}
	}
	for w := range g.ranges {
		f(w)
	}
}

// affected returns the watchers some event of evs may concern.
func (g *group) affected(evs []*mvccpb.Event) []*watcher {
	if len(evs) == 1 || sameKey(evs) {
		// the common batch: one key, no duplicates to weed out
		set := g.keys[string(evs[0].Kv.Key)]
		out := make([]*watcher, 0, len(set)+len(g.ranges))
		for w := range set {
			out = append(out, w)
		}
		for w := range g.ranges {
			out = append(out, w)
		}
		return out
	}
	var out []*watcher
	seen := map[*watcher]struct{}{}
	for _, ev := range evs {
		for w := range g.keys[string(ev.Kv.Key)] {
			if _, ok := seen[w]; !ok {
				seen[w] = struct{}{}
				out = append(out, w)
			}
		}
	}
	for w := range g.ranges {
		out = append(out, w)
	}
	return out
}

func sameKey(evs []*mvccpb.Event) bool {
	for _, ev := range evs[1:] {
		if !bytes.Equal(ev.Kv.Key, evs[0].Kv.Key) {
			return false
		}
	}
	return true
}
