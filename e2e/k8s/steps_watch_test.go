//go:build k8s

package k8s

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"
)

const watchEventTimeout = 30 * time.Second

// decodeChange turns a watch event on a configmap into a change.
func decodeChange(t *testing.T, ev watchEvent) change {
	t.Helper()
	if ev.Type == "ERROR" {
		t.Fatalf("watch error event: %s", ev.Object)
	}
	var o object
	if err := json.Unmarshal(ev.Object, &o); err != nil {
		t.Fatalf("watch event %s: %v", ev.Type, err)
	}
	return change{ev.Type, o.Metadata.Name, rvOf(t, o.Metadata.ResourceVersion)}
}

// expectChanges reads events from w until it has len(want) of them (after
// skipping bookmarks) and compares them with want, in order.
func expectChanges(t *testing.T, w *watchStream, want []change) {
	t.Helper()
	var got []change
	for len(got) < len(want) {
		ev, ok := w.next(t, watchEventTimeout)
		if !ok {
			t.Fatalf("watch ended after %v, want %v", got, want)
		}
		if ev.Type == "BOOKMARK" {
			continue
		}
		got = append(got, decodeChange(t, ev))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("watch events\n got %v\nwant %v", got, want)
	}
}

// since returns the recorded changes after rv.
func (r *run) since(rv int64) []change {
	var out []change
	for _, c := range r.history {
		if c.rv > rv {
			out = append(out, c)
		}
	}
	return out
}

// stepWatchFromRV watches from a past resourceVersion: the changes after it
// are replayed in order, then new ones follow live.
func (r *run) stepWatchFromRV(t *testing.T) {
	if len(r.created) != configMaps {
		t.Fatal("needs the create step")
	}
	from := r.created[19]
	w := r.api.watch(t, r.configMapsPath(url.Values{"watch": {"1"}, "resourceVersion": {strconv.FormatInt(from, 10)}}))
	expectChanges(t, w, r.since(from))
	before := len(r.history)
	r.updateConfigMap(t, cmName(1), "watched")
	r.createConfigMap(t, cmName(configMaps), "new")
	expectChanges(t, w, r.history[before:])
}

// stepWatchWithoutRV watches without a resourceVersion: the current state
// as ADDED events, then changes. On a quiet resource such a watch, and a
// watch-list (sendInitialEvents), must answer at once, not time out.
func (r *run) stepWatchWithoutRV(t *testing.T) {
	var l objectList
	r.api.do(t, "GET", r.configMapsPath(nil), nil, 200, &l)
	current := map[string]int64{}
	for _, it := range l.Items {
		current[it.Metadata.Name] = rvOf(t, it.Metadata.ResourceVersion)
	}
	w := r.api.watch(t, r.configMapsPath(url.Values{"watch": {"1"}}))
	seen := map[string]int64{}
	for len(seen) < len(current) {
		ev, ok := w.next(t, watchEventTimeout)
		if !ok {
			t.Fatalf("watch ended after %d initial events", len(seen))
		}
		c := decodeChange(t, ev)
		if c.typ != "ADDED" {
			t.Fatalf("initial event %v, want ADDED", c)
		}
		seen[c.name] = c.rv
	}
	if fmt.Sprint(seen) != fmt.Sprint(current) {
		t.Fatalf("initial events %v, want the list %v", seen, current)
	}
	before := len(r.history)
	r.updateConfigMap(t, cmName(2), "watched")
	expectChanges(t, w, r.history[before:])

	// A plain watch and a watch-list on a resource nobody writes.
	quiet := "/api/v1/namespaces/" + r.ns + "/podtemplates"
	start := time.Now()
	q := r.api.watch(t, quiet+"?watch=1&timeoutSeconds=3")
	for {
		ev, ok := q.next(t, watchEventTimeout)
		if !ok {
			break
		}
		// Go on to the watch-lists: they may fail the same way.
		t.Errorf("quiet watch: unexpected %s event: %s", ev.Type, ev.Object)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("quiet watch with timeoutSeconds=3 took %v", d)
	}
	for _, path := range []string{quiet, r.configMapsPath(nil)} {
		r.watchList(t, path)
	}
}

// watchList is a client-go informer's start with WatchListClient: initial
// events, then a bookmark marking their end.
func (r *run) watchList(t *testing.T, path string) {
	t.Helper()
	w := r.api.watch(t, path+"?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=30")
	for n := 0; ; n++ {
		ev, ok := w.next(t, watchEventTimeout)
		if !ok {
			t.Fatalf("watch-list %s: ended after %d events without the initial-events-end bookmark", path, n)
		}
		switch ev.Type {
		case "ERROR":
			t.Errorf("watch-list %s: error %s", path, ev.Object)
			return
		case "BOOKMARK":
			var o object
			if err := json.Unmarshal(ev.Object, &o); err != nil {
				t.Fatal(err)
			}
			if o.Metadata.Annotations["k8s.io/initial-events-end"] == "true" {
				return
			}
		}
	}
}
