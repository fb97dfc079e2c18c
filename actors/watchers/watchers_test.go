package watchers

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/internal/hublink"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// testSink records what the hub delivers; room < 0 means unbounded,
// otherwise it takes that many more responses and then reports full.
type testSink struct {
	mu        sync.Mutex
	room      int
	got       []*messages.WatchEvents
	refused   []*messages.WatchEvents // offered while room was 0
	createdAt map[int64]int           // watch id -> len(got) when created (see created)
}

func (s *testSink) Deliver(r *messages.WatchEvents) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.room == 0 {
		s.refused = append(s.refused, r)
		return false
	}
	if s.room > 0 {
		s.room--
	}
	s.got = append(s.got, r)
	return true
}

func (s *testSink) setRoom(n int) {
	s.mu.Lock()
	s.room = n
	s.mu.Unlock()
}

// events returns the events delivered to watch id as "PUT k@rev" strings,
// and whether a compaction cancel arrived (as "CANCELED compact=N").
func (s *testSink) events(id int64) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.got {
		if r.WatchID != id {
			continue
		}
		if r.Canceled {
			out = append(out, fmt.Sprintf("CANCELED compact=%d", r.CompactRevision))
		}
		for _, e := range r.Events {
			out = append(out, fmt.Sprintf("%s %s@%d", e.Type, e.Kv.Key, e.Kv.ModRevision))
		}
	}
	return out
}

// waitEvents lets the hub work (sync rounds on virtual time) until watch
// id got want, exactly and in order; more events, or none after enough
// rounds, fail the test.
func (s *testSink) waitEvents(t *testing.T, id int64, want ...string) {
	t.Helper()
	for round := 0; ; round++ {
		synctest.Wait()
		got := s.events(id)
		if strings.Join(got, ",") == strings.Join(want, ",") {
			return
		}
		if round == 100 || len(got) > len(want) {
			t.Fatalf("watch %d got\n %q\nwant\n %q", id, got, want)
		}
		time.Sleep(syncInterval)
	}
}

// syncInterval is the hub's; the tests run in synctest bubbles, so its
// rounds come on virtual time.
const syncInterval = 5 * time.Millisecond

// backend stands in for the raft client: the store while the core runs.
type backend struct{ st atomic.Pointer[mvcc.Store] }

func (b *backend) Store() *mvcc.Store { return b.st.Load() }

// fixture is a hub with a store, and an applier stand-in that writes to
// the store and builds the EventsApplied the applier would send.
type fixture struct {
	t       *testing.T
	sys     *actor.ActorSystem
	hub     *actor.PID
	link    *hublink.Link
	backend *backend
	store   *mvcc.Store
	index   uint64
	events  []*mvccpb.Event
}

// run runs test on a started hub in a synctest bubble.
func run(t *testing.T, test func(t *testing.T, f *fixture)) { runCore(t, false, test) }

// runCore with noCore starts the hub before the store is published, as
// the node does (the hub starts before the core).
func runCore(t *testing.T, noCore bool, test func(t *testing.T, f *fixture)) {
	synctest.Test(t, func(t *testing.T) {
		f := &fixture{t: t, link: &hublink.Link{}, backend: &backend{}}
		st, err := mvcc.Open(filepath.Join(t.TempDir(), "db"), mvcc.Options{
			NoSync: true, Logger: slog.New(slog.DiscardHandler),
			Changed: func(_ int64, evs []*mvccpb.Event) { f.events = append(f.events, evs...) },
		})
		if err != nil {
			t.Fatal(err)
		}
		f.store = st
		if !noCore {
			f.backend.st.Store(st)
		}
		f.sys = actortest.NewSystem()
		f.hub = f.sys.Root.Spawn(Props(Config{
			MemberID: 1, Link: f.link, Backend: f.backend,
			SyncInterval: syncInterval, SyncChunkEvents: 3, Logger: actortest.Logger(),
		}))
		synctest.Wait()
		if pid, _ := f.link.Hub(); !pid.Equal(f.hub) {
			t.Fatal("the hub did not publish itself through its link")
		}
		defer func() {
			if err := f.sys.Root.StopFuture(f.hub).Wait(); err != nil {
				t.Error(err)
			}
			actortest.Shutdown(f.sys)
			_ = st.Close()
		}()
		test(t, f)
	})
}

// put writes keys, one revision each, and returns the batch's message.
func (f *fixture) put(keys ...string) *messages.EventsApplied {
	f.t.Helper()
	for _, k := range keys {
		f.index++
		if _, err := f.store.Put(f.index, &pb.PutRequest{Key: []byte(k), Value: []byte("v")}); err != nil {
			f.t.Fatal(err)
		}
	}
	msg := &messages.EventsApplied{Rev: f.store.Rev(), Events: f.events}
	f.events = nil
	return msg
}

func (f *fixture) send(msg any) { f.sys.Root.Send(f.hub, msg) }

func (f *fixture) watch(sink messages.WatchSink, id int64, key, end string, start int64) {
	c := &messages.CreateWatch{Sink: sink, WatchID: id, Key: []byte(key), StartRevision: start}
	if end != "" {
		c.RangeEnd = []byte(end)
	}
	f.send(c)
}

func TestSyncedWatchersGetBatches(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		sink := &testSink{room: -1}
		f.watch(sink, 1, "a", "", f.store.Rev()+1)
		f.watch(sink, 2, "a", "c", f.store.Rev()+1)
		f.send(f.put("a", "b", "c"))
		sink.waitEvents(t, 1, "PUT a@2")
		sink.waitEvents(t, 2, "PUT a@2", "PUT b@3")
	})
}

func TestReplayedBatchesAreDropped(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		sink := &testSink{room: -1}
		f.watch(sink, 1, "a", "z", f.store.Rev()+1)
		m1 := f.put("a")
		m2 := f.put("b")
		f.send(m1)
		f.send(m2)
		f.send(m1) // a core restart applies again what the hub has
		f.send(&messages.EventsApplied{Rev: m2.Rev})
		f.send(f.put("c"))
		sink.waitEvents(t, 1, "PUT a@2", "PUT b@3", "PUT c@4")
	})
}

func TestGapIsFilledFromHistory(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		sink := &testSink{room: -1}
		f.watch(sink, 1, "a", "z", f.store.Rev()+1)
		f.send(f.put("a"))
		f.put("b", "c") // lost: a snapshot install, a hub message dropped
		f.send(f.put("d"))
		sink.waitEvents(t, 1, "PUT a@2", "PUT b@3", "PUT c@4", "PUT d@5")
	})
}

func TestStartRevisionInThePast(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		f.send(f.put("a", "b", "a", "c", "a")) // revs 2..6; chunks of 3 events
		sink := &testSink{room: -1}
		f.watch(sink, 1, "a", "", 2)
		f.watch(sink, 2, "a", "z", 4)
		sink.waitEvents(t, 1, "PUT a@2", "PUT a@4", "PUT a@6")
		sink.waitEvents(t, 2, "PUT a@4", "PUT c@5", "PUT a@6")
		// then live
		f.send(f.put("a"))
		sink.waitEvents(t, 1, "PUT a@2", "PUT a@4", "PUT a@6", "PUT a@7")
	})
}

func TestFullSinkCatchesUpFromHistory(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		sink := &testSink{room: 1}
		f.watch(sink, 1, "k", "l", f.store.Rev()+1)
		for i := 0; i < 10; i++ {
			f.send(f.put(fmt.Sprintf("k%d", i)))
		}
		sink.waitEvents(t, 1, "PUT k0@2")
		time.Sleep(6 * syncInterval) // sync rounds (virtual time) find the sink full
		sink.setRoom(-1)
		var want []string
		for i := 0; i < 10; i++ {
			want = append(want, fmt.Sprintf("PUT k%d@%d", i, i+2))
		}
		sink.waitEvents(t, 1, want...)
		// synced again: live events arrive
		f.send(f.put("k10"))
		sink.waitEvents(t, 1, append(want, "PUT k10@12")...)
	})
}

func TestCompactedWatcherIsCanceled(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		f.send(f.put("a", "a", "a", "a")) // 2..5
		f.index++
		if _, err := f.store.Compact(f.index, &pb.CompactionRequest{Revision: 4}); err != nil {
			t.Fatal(err)
		}
		sink := &testSink{room: -1}
		f.watch(sink, 1, "a", "", 2)
		f.watch(sink, 2, "a", "", 4) // the compaction revision itself is kept, as etcd
		sink.waitEvents(t, 1, "CANCELED compact=4")
		sink.waitEvents(t, 2, "PUT a@4", "PUT a@5")
		f.send(f.put("a"))
		sink.waitEvents(t, 2, "PUT a@4", "PUT a@5", "PUT a@6")
		sink.waitEvents(t, 1, "CANCELED compact=4") // nothing after the cancel
	})
}

func TestCancelAndDropSink(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		s1, s2 := &testSink{room: -1}, &testSink{room: -1}
		f.watch(s1, 1, "a", "", f.store.Rev()+1)
		f.watch(s1, 2, "a", "", f.store.Rev()+1)
		f.watch(s2, 1, "a", "", f.store.Rev()+1)
		f.send(&messages.CancelWatch{Sink: s1, WatchID: 1})
		f.send(&messages.DropSink{Sink: s2})
		f.send(f.put("a"))
		s1.waitEvents(t, 2, "PUT a@2")
		s1.waitEvents(t, 1)
		s2.waitEvents(t, 1)
	})
}

func TestProgressOnlyWhenSynced(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		f.send(f.put("a"))
		sink := &testSink{room: -1}
		f.watch(sink, 1, "x", "", f.store.Rev()+1)
		f.send(&messages.RequestWatchProgress{Sink: sink, WatchID: 1})
		synctest.Wait()
		sink.mu.Lock()
		defer sink.mu.Unlock()
		if len(sink.got) != 1 {
			t.Fatalf("%d responses to a progress request, want 1", len(sink.got))
		}
		if r := sink.got[0]; r.WatchID != 1 || len(r.Events) != 0 || r.Revision != 2 {
			t.Fatalf("progress %+v", r)
		}
	})
}

// TestHubStartedBeforeCore: the hub starts before the core (no store, no
// revision); a watch from a past revision on an idle member is served
// from history as soon as the store is there, without waiting for a write.
func TestHubStartedBeforeCore(t *testing.T) {
	runCore(t, true, func(t *testing.T, f *fixture) {
		f.put("a", "b", "a") // applied before the hub hears of anything
		f.backend.st.Store(f.store)
		sink := &testSink{room: -1}
		f.watch(sink, 1, "a", "", 1)
		sink.waitEvents(t, 1, "PUT a@2", "PUT a@4")
		// and the batches that were in flight are not delivered twice
		f.send(&messages.EventsApplied{Rev: 4})
		f.send(f.put("a"))
		sink.waitEvents(t, 1, "PUT a@2", "PUT a@4", "PUT a@5")
	})
}
