package watchers

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/troupedb/troupe/messages"
)

// progress returns the progress notifications the sink got, as
// "id@rev" strings, in order.
func (s *testSink) progress() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return progressOf(s.got)
}

// offeredProgress is the progress notifications the hub offered, taken
// or refused for want of room.
func (s *testSink) offeredProgress() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(progressOf(s.refused), progressOf(s.got)...)
}

func progressOf(rs []*messages.WatchEvents) []string {
	var out []string
	for _, r := range rs {
		if len(r.Events) == 0 && !r.Canceled {
			out = append(out, fmt.Sprintf("%d@%d", r.WatchID, r.Revision))
		}
	}
	return out
}

// created notes that watch id is created now: an AllWatches notification
// the sink got before speaks not for it. Call it with the hub idle (after
// synctest.Wait) right before sending the CreateWatch, so that the mark
// falls between the hub's responses from before and after the creation.
func (s *testSink) created(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.createdAt == nil {
		s.createdAt = map[int64]int{}
	}
	s.createdAt[id] = len(s.got)
}

// checkProgressOrder fails the test if a progress notification the sink
// got claims a revision some event before it exceeds, or some event after
// it does not: after progress at R, every event of the watches it speaks
// for is above R. A per-watch notification speaks for its watch, an
// AllWatches one for every watch created before it.
func (s *testSink) checkProgressOrder(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[int64]int64{}     // watch id -> highest event revision so far
	promised := map[int64]int64{} // watch id -> highest progress revision so far
	for i, r := range s.got {
		if len(r.Events) == 0 && !r.Canceled {
			for id, at := range s.createdAt {
				if r.WatchID != id && (r.WatchID != messages.AllWatches || at > i) {
					continue
				}
				if seen[id] > r.Revision {
					t.Fatalf("response %d: progress %d@%d after watch %d's event at %d", i, r.WatchID, r.Revision, id, seen[id])
				}
				promised[id] = max(promised[id], r.Revision)
			}
			continue
		}
		for _, e := range r.Events {
			if p := promised[r.WatchID]; e.Kv.ModRevision <= p {
				t.Fatalf("response %d: watch %d's event at %d after progress at %d", i, r.WatchID, e.Kv.ModRevision, p)
			}
			seen[r.WatchID] = max(seen[r.WatchID], e.Kv.ModRevision)
		}
	}
}

// TestSinkProgressWhileReplaying: a progress request while a watch of the
// sink replays history is dropped (etcd >= 3.5.13 does not defer it); once
// the replay is done the next one is answered behind every event.
func TestSinkProgressWhileReplaying(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		f.send(f.put("a", "b", "a", "c", "a", "a", "a")) // revs 2..8, replayed 3 events a round
		sink := &testSink{room: -1}
		synctest.Wait()
		sink.created(1)
		sink.created(2)
		f.watch(sink, 1, "z", "", f.store.Rev()+1) // synced at once
		f.watch(sink, 2, "a", "", 2)               // replays
		f.send(&messages.RequestSinkProgress{Sink: sink})
		synctest.Wait()
		if got := sink.progress(); len(got) != 0 {
			t.Fatalf("progress %q while watch 2 replays history, want none", got)
		}
		sink.waitEvents(t, 2, "PUT a@2", "PUT a@4", "PUT a@6", "PUT a@7", "PUT a@8")
		f.send(&messages.RequestSinkProgress{Sink: sink})
		synctest.Wait()
		if got := sink.progress(); fmt.Sprint(got) != "[-1@8]" {
			t.Fatalf("progress %q after the replay, want [-1@8]", got)
		}
		sink.checkProgressOrder(t)
	})
}

// TestProgressNeverAheadOfEvents interleaves writes, watches from past
// revisions, full sinks and progress requests of both kinds, and checks
// every sink's order: no event at or below a progress revision after it.
func TestProgressNeverAheadOfEvents(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		sinks := []*testSink{{room: -1}, {room: -1}, {room: 2}}
		keys := []string{"a", "b", "c"}
		answered := 0
		for round := range 60 {
			s := sinks[round%len(sinks)]
			switch round % 7 {
			case 0, 3:
				// from a past revision: unsynced until history caught up
				s.created(int64(round))
				f.watch(s, int64(round), keys[round%3], "", max(1, f.store.Rev()-5))
			case 5:
				s.created(int64(round))
				f.watch(s, int64(round), "a", "z", f.store.Rev()+1)
			case 6:
				s.setRoom(-1) // a full sink drains
			}
			f.send(f.put(keys[round%3], keys[(round+1)%3]))
			for _, s := range sinks {
				f.send(&messages.RequestSinkProgress{Sink: s})
				for id := range int64(round + 1) {
					f.send(&messages.RequestWatchProgress{Sink: s, WatchID: id})
				}
			}
			synctest.Wait()
			if round%4 == 0 {
				time.Sleep(syncInterval) // a sync round
			}
		}
		time.Sleep(20 * syncInterval) // everyone caught up
		for _, s := range sinks {
			f.send(&messages.RequestSinkProgress{Sink: s})
		}
		synctest.Wait()
		for i, s := range sinks {
			s.checkProgressOrder(t)
			got := s.progress()
			answered += len(got)
			if want := fmt.Sprintf("-1@%d", f.store.Rev()); len(got) == 0 || got[len(got)-1] != want {
				t.Fatalf("sink %d: last progress %q, want %s once all its watches caught up", i, got, want)
			}
		}
		if answered < 10 {
			t.Fatalf("only %d progress notifications: the test exercised nothing", answered)
		}
	})
}

func TestSinkProgressWithoutWatches(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		f.send(f.put("a"))
		sink := &testSink{room: -1}
		f.send(&messages.RequestSinkProgress{Sink: sink})
		f.watch(sink, 1, "a", "", f.store.Rev()+1)
		f.send(&messages.CancelWatch{Sink: sink, WatchID: 1})
		f.send(&messages.RequestSinkProgress{Sink: sink})
		synctest.Wait()
		if got := sink.progress(); len(got) != 0 {
			t.Fatalf("progress %q for a sink without watches, want none (as etcd)", got)
		}
	})
}

// TestProgressNotBeforeClientStart: as etcd, a watch whose client asked
// for a start revision in the future gets no progress notification, nor
// its sink, until the store reaches it.
func TestProgressNotBeforeClientStart(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		f.send(f.put("a")) // 2
		sink := &testSink{room: -1}
		f.send(&messages.CreateWatch{Sink: sink, WatchID: 1, Key: []byte("x"), StartRevision: 3, ClientStartRevision: 3})
		f.send(&messages.RequestSinkProgress{Sink: sink})
		f.send(&messages.RequestWatchProgress{Sink: sink, WatchID: 1})
		synctest.Wait()
		if got := sink.progress(); len(got) != 0 {
			t.Fatalf("progress %q before the start revision the client asked for, want none", got)
		}
		f.send(f.put("a")) // 3
		f.send(&messages.RequestSinkProgress{Sink: sink})
		f.send(&messages.RequestWatchProgress{Sink: sink, WatchID: 1})
		synctest.Wait()
		if got := sink.progress(); fmt.Sprint(got) != "[-1@3 1@3]" {
			t.Fatalf("progress %q at the start revision, want [-1@3 1@3]", got)
		}
	})
}

// TestProgressWaitsForTheHubToCatchUp: a watch created from a store
// revision the hub has not seen yet (its batch is still in the mailbox)
// gets no progress at the hub's older revision, which would go back
// behind the revision its created response showed.
func TestProgressWaitsForTheHubToCatchUp(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		f.send(f.put("a")) // 2
		synctest.Wait()
		late := f.put("a") // 3, not yet sent to the hub
		sink := &testSink{room: -1}
		f.watch(sink, 1, "x", "", f.store.Rev()+1)
		f.send(&messages.RequestSinkProgress{Sink: sink})
		f.send(&messages.RequestWatchProgress{Sink: sink, WatchID: 1})
		synctest.Wait()
		if got := sink.progress(); len(got) != 0 {
			t.Fatalf("progress %q at the hub's revision 2 for a watch from 4, want none", got)
		}
		f.send(late)
		f.send(&messages.RequestSinkProgress{Sink: sink})
		synctest.Wait()
		if got := sink.progress(); fmt.Sprint(got) != "[-1@3]" {
			t.Fatalf("progress %q once the hub caught up, want [-1@3]", got)
		}
	})
}

// TestWatchProgressOnlyForSyncedWatch: the periodic notification of a
// watch that replays history is skipped, and carries the watch's id once
// it is synced.
func TestWatchProgressOnlyForSyncedWatch(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		f.send(f.put("a", "a", "a", "a", "a")) // 2..6
		// A full sink keeps the watch replaying (unsynced) until it has
		// room: the replay's first round may run before the progress
		// request, so with room it could be synced already.
		sink := &testSink{room: 0}
		synctest.Wait()
		sink.created(7)
		f.watch(sink, 7, "a", "", 2)
		f.send(&messages.RequestWatchProgress{Sink: sink, WatchID: 7})
		synctest.Wait()
		if got := sink.offeredProgress(); len(got) != 0 {
			t.Fatalf("progress %q offered while replaying, want none", got)
		}
		sink.setRoom(-1)
		sink.waitEvents(t, 7, "PUT a@2", "PUT a@3", "PUT a@4", "PUT a@5", "PUT a@6")
		f.send(&messages.RequestWatchProgress{Sink: sink, WatchID: 7})
		synctest.Wait()
		if got := sink.progress(); fmt.Sprint(got) != "[7@6]" {
			t.Fatalf("progress %q, want [7@6]", got)
		}
		sink.checkProgressOrder(t)
	})
}
