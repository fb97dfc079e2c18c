package watchers

import (
	"log/slog"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/troupedb/troupe/messages"
)

// countSink takes every response and keeps none.
type countSink struct{ n int }

func (s *countSink) Deliver(*messages.WatchEvents) bool { s.n++; return true }

// BenchmarkFanOut measures the hub's work for one batch of one event
// delivered to 100 synced watchers of its key, spread over 10 sinks (an
// op is a batch): the watch path's allocations per event.
func BenchmarkFanOut(b *testing.B) {
	const watchers, sinks = 100, 10
	h := &hub{cfg: Config{Logger: slog.Default()}, log: slog.Default(), rev: 1}
	h.synced, h.unsynced, h.bySink = newGroup(), newGroup(), map[messages.WatchSink]map[int64]*watcher{}
	ss := make([]*countSink, sinks)
	for i := range ss {
		ss[i] = &countSink{}
	}
	for i := range watchers {
		h.handleCreate(nil, &messages.CreateWatch{Sink: ss[i%sinks], WatchID: int64(i), Key: []byte("k"), StartRevision: 2})
	}
	ev := &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte("k"), Value: make([]byte, 256)}}
	evs := []*mvccpb.Event{ev}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev.Kv.ModRevision = int64(i) + 2
		h.handleEventsApplied(nil, &messages.EventsApplied{Rev: ev.Kv.ModRevision, Events: evs})
	}
	b.StopTimer()
	if got := ss[0].n; got != b.N*watchers/sinks {
		b.Fatalf("sink 0 got %d responses, want %d", got, b.N*watchers/sinks)
	}
}
