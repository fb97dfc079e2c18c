package watchers

import (
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/troupedb/troupe/messages"
)

// gateSink blocks its first Deliver until open is closed: it holds the
// hub inside one message, as a long sync round would, so the batches
// sent meanwhile pile up in the hub's mailbox. (A real sink never blocks.)
type gateSink struct {
	testSink
	entered chan struct{}
	open    chan struct{}
}

func (s *gateSink) Deliver(r *messages.WatchEvents) bool {
	select {
	case <-s.entered:
	default:
		close(s.entered)
		<-s.open
	}
	return s.testSink.Deliver(r)
}

// TestDroppedBatchesWithoutFurtherWrite: the hub's mailbox is full, so
// the applier drops the last batches of a burst, and no write follows.
// The hub must still deliver their events to its synced watches and then
// answer progress at the store's final revision, as kube-apiserver's
// consistent reads wait for a progress notification at a revision it
// read: before the applier told the hub of the drop, it noticed the gap
// only at the next batch, and on a quiet resource that never came.
func TestDroppedBatchesWithoutFurtherWrite(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		const limit = 2
		publish := func(msg *messages.EventsApplied) { f.link.SendEvents(f.sys.Root, msg, limit) }
		gate := &gateSink{testSink: testSink{room: -1}, entered: make(chan struct{}), open: make(chan struct{})}
		sink := &testSink{room: -1}
		synctest.Wait()
		sink.created(1)
		f.watch(gate, 1, "a", "", f.store.Rev()+1)
		f.watch(sink, 1, "a", "z", f.store.Rev()+1)
		publish(f.put("a")) // 2: the hub blocks delivering it
		<-gate.entered
		publish(f.put("b"))      // 3, queued
		publish(f.put("c", "d")) // 4..5, queued: the mailbox is full
		publish(f.put("e"))      // 6, dropped
		publish(f.put("f", "g")) // 7..8, dropped; nothing is written after
		close(gate.open)
		sink.waitEvents(t, 1, "PUT a@2", "PUT b@3", "PUT c@4", "PUT d@5", "PUT e@6", "PUT f@7", "PUT g@8")
		f.send(&messages.RequestSinkProgress{Sink: sink})
		f.send(&messages.RequestWatchProgress{Sink: sink, WatchID: 1})
		synctest.Wait()
		if got := sink.progress(); fmt.Sprint(got) != "[-1@8 1@8]" {
			t.Fatalf("progress %q after the dropped batches, want [-1@8 1@8] (the store's revision)", got)
		}
		sink.checkProgressOrder(t)
		gate.waitEvents(t, 1, "PUT a@2")
	})
}

// TestDropNoticeWhileCoreDown: told of dropped batches while the core
// restarts (no store), the hub takes the store's revision at a sync round
// once the core is back, still without a further write.
func TestDropNoticeWhileCoreDown(t *testing.T) {
	run(t, func(t *testing.T, f *fixture) {
		sink := &testSink{room: -1}
		f.watch(sink, 1, "a", "z", f.store.Rev()+1)
		f.send(f.put("a"))
		f.put("b", "c") // dropped
		sink.waitEvents(t, 1, "PUT a@2")
		f.backend.st.Store(nil)
		f.send(&messages.EventsDropped{})
		synctest.Wait()
		f.backend.st.Store(f.store)
		sink.waitEvents(t, 1, "PUT a@2", "PUT b@3", "PUT c@4")
		f.send(&messages.RequestSinkProgress{Sink: sink})
		synctest.Wait()
		if got := sink.progress(); fmt.Sprint(got) != "[-1@4]" {
			t.Fatalf("progress %q, want [-1@4]", got)
		}
	})
}
