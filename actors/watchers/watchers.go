// Package watchers is the watch hub actor: it fans the events the applier
// applied out to every watch of the member (gRPC Watch streams and actor
// API subscribers, both behind a messages.WatchSink).
//
// It lives under the node supervisor beside the core, not inside it: a
// core restart (which replays the WAL) must not cancel client watches.
//
// In: EventsApplied (from the applier, one per Apply batch, never
// blocking it; at most 1024 wait in the mailbox, see
// hublink.Link.SendEvents, beyond which the applier drops a batch's
// events and sends EventsDropped, one at a time, so the hub reads them
// from history without waiting for a later batch), CreateWatch,
// CancelWatch, RequestWatchProgress, RequestSinkProgress, DropSink (from
// the sinks' owners), its own syncDue timer.
// Out: WatchEvents to the sinks, through their non-blocking Deliver.
//
// Progress notifications come from the hub, not from the sinks' owners,
// because only the hub knows what it has delivered: one goes into the
// sink behind every event at or below its revision, and only when every
// watch it speaks for is synced, so no event at or below that revision
// can follow it (as etcd >= 3.5.13; kube-apiserver's consistent reads
// from its watch cache rely on it).
//
// Like etcd's watchable store it keeps synced watchers, which get each
// batch's events straight from EventsApplied, and unsynced ones (a start
// revision in the past, or a sink that was full): every SyncInterval it
// reads history from the store (Backend.Store().Events) in bounded chunks
// for up to MaxWatchersPerSync of them and moves those that caught up
// back to synced. Nothing queues in the hub: a sink that is full simply
// makes its watcher unsynced, and history is the queue.
//
// Invariants: a watcher receives every event of its range from its start
// revision on, once, in order. The hub keeps rev, the last revision every
// synced watcher has; events at or below it (re-applied after a core
// restart replays the WAL) are dropped, and a batch that does not follow
// it (a snapshot install, a lost message) or an EventsDropped makes every
// synced watcher unsynced, so history fills the gap. A watcher whose next revision was
// compacted away is canceled with the compact revision, as etcd's. A
// restart of the hub loses its watchers: it publishes itself again
// through its Link, which tells the sinks' owners to create
// their watches again from the revision each one reached.
package watchers

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/internal/hublink"
	"github.com/troupedb/troupe/internal/metrics"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// Defaults of Config.
const (
	DefaultSyncInterval       = 100 * time.Millisecond
	DefaultMaxWatchersPerSync = 512  // etcd's maxWatchersPerSync
	DefaultSyncChunkEvents    = 1000 // events read from history per sync round
)

// Config of the hub.
type Config struct {
	MemberID uint64
	// Link is where the hub publishes itself and counts its queue.
	Link *hublink.Link
	// Backend gives the running core's store, nil while it is down.
	Backend            Backend
	SyncInterval       time.Duration
	MaxWatchersPerSync int
	SyncChunkEvents    int
	Logger             *slog.Logger
}

// Backend is the running core's backend (a raftclient.Client).
type Backend interface {
	Store() *mvcc.Store
}

// Props returns the hub's props; opts can add a dispatcher.
func Props(cfg Config, opts ...actor.PropsOption) *actor.Props {
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.MaxWatchersPerSync <= 0 {
		cfg.MaxWatchersPerSync = DefaultMaxWatchersPerSync
	}
	if cfg.SyncChunkEvents <= 0 {
		cfg.SyncChunkEvents = DefaultSyncChunkEvents
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return actor.PropsFromProducer(func() actor.Actor { return &hub{cfg: cfg} }, opts...)
}

type syncDue struct{}

type hub struct {
	cfg Config
	log *slog.Logger

	// rev: every synced watcher has every event up to rev (0: unknown yet).
	rev      int64
	synced   *group
	unsynced *group
	bySink   map[messages.WatchSink]map[int64]*watcher

	syncTimer *time.Timer // non-nil while a syncDue is scheduled
	// behind: the applier dropped batches and the hub has not taken the
	// store's revision yet (the core was down when it was told).
	behind bool
}

// Receive dispatches on the message type.
func (h *hub) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		h.handleStarted(ctx)
	case *actor.Stopping, *actor.Restarting:
		h.stopTimers()
	case *actor.Stopped:
	case *messages.EventsApplied:
		h.cfg.Link.EventsTaken()
		h.handleEventsApplied(ctx, msg)
		h.report()
	case *messages.EventsDropped:
		h.cfg.Link.DropNoticeTaken() // first: a drop from now on sends a new one
		h.behind = true
		h.catchUp(ctx)
		h.report()
	case *messages.CreateWatch:
		h.handleCreate(ctx, msg)
		h.report()
	case *messages.CancelWatch:
		h.remove(msg.Sink, msg.WatchID)
		h.report()
	case *messages.DropSink:
		h.handleDropSink(msg)
		h.report()
	case syncDue:
		h.syncTimer = nil
		h.handleSync(ctx)
		h.report()
	case *messages.RequestWatchProgress:
		h.handleWatchProgress(msg)
	case *messages.RequestSinkProgress:
		h.handleSinkProgress(msg)
	default:
		h.log.Warn("unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (h *hub) handleStarted(ctx actor.Context) {
	h.log = h.cfg.Logger.With("actor", "watchers", "member", h.cfg.MemberID)
	h.synced, h.unsynced, h.bySink = newGroup(), newGroup(), map[messages.WatchSink]map[int64]*watcher{}
	if st := h.cfg.Backend.Store(); st != nil {
		h.rev = st.Rev()
	}
	h.report()
	// Last: the sinks' owners re-create their watches on this signal.
	h.cfg.Link.Publish(ctx.Self())
}

func (h *hub) handleCreate(ctx actor.Context, msg *messages.CreateWatch) {
	h.learnRev(ctx)
	ws := h.bySink[msg.Sink]
	if ws == nil {
		ws = map[int64]*watcher{}
		h.bySink[msg.Sink] = ws
	}
	if _, ok := ws[msg.WatchID]; ok {
		// the owner chooses unique ids: a duplicate is a bug there
		h.log.Warn("duplicate watch id ignored", "watch-id", msg.WatchID)
		return
	}
	w := &watcher{
		sink: msg.Sink, id: msg.WatchID, key: msg.Key, end: msg.RangeEnd,
		noPut: msg.NoPut, noDelete: msg.NoDelete, next: max(msg.StartRevision, 1),
		clientStart: msg.ClientStartRevision,
	}
	ws[w.id] = w
	if h.rev != 0 && w.next <= h.rev {
		h.unsynced.add(w)
		h.scheduleSync(ctx, true)
	} else {
		h.synced.add(w)
	}
}

func (h *hub) remove(sink messages.WatchSink, id int64) {
	ws := h.bySink[sink]
	w, ok := ws[id]
	if !ok {
		return
	}
	delete(ws, id)
	if len(ws) == 0 {
		delete(h.bySink, sink)
	}
	if !h.synced.remove(w) {
		h.unsynced.remove(w)
	}
}

func (h *hub) handleDropSink(msg *messages.DropSink) {
	for id := range h.bySink[msg.Sink] {
		h.remove(msg.Sink, id)
	}
}

// learnRev takes the store's revision as the hub's when the hub has none
// yet (it starts before the core, and an idle member sends no batch), so
// a watch from a past revision is served from history at once. Watchers
// placed meanwhile resume from history.
func (h *hub) learnRev(ctx actor.Context) {
	if h.rev != 0 {
		return
	}
	if st := h.cfg.Backend.Store(); st != nil {
		h.unsyncAll(ctx)
		h.rev = st.Rev()
	}
}

// handleEventsApplied delivers a batch to the synced watchers.
func (h *hub) handleEventsApplied(ctx actor.Context, msg *messages.EventsApplied) {
	// Chaos tests: a hub restart loses its watchers and this batch.
	_ = failpoint.Inject("watchHubPanic")
	evs := msg.Events
	for len(evs) > 0 && evs[0].Kv.ModRevision <= h.rev {
		evs = evs[1:] // applied again after a core restart
	}
	first := msg.Rev + 1 // first revision of evs
	if len(evs) > 0 {
		first = evs[0].Kv.ModRevision
	}
	if msg.Rev <= h.rev && len(evs) == 0 {
		return
	}
	if h.rev == 0 || first > h.rev+1 {
		// A gap: what came between is only in the store.
		h.unsyncAll(ctx)
		h.rev = msg.Rev
		return
	}
	resumeAt := h.rev + 1
	h.rev = msg.Rev
	if len(evs) == 0 {
		return
	}
	for _, w := range h.synced.affected(evs) {
		picked := w.pick(evs)
		if len(picked) == 0 {
			continue
		}
		if !w.sink.Deliver(&messages.WatchEvents{WatchID: w.id, Events: picked, Revision: msg.Rev}) {
			// full: it catches up from history once its sink drained
			w.next = max(w.next, resumeAt)
			h.synced.remove(w)
			h.unsynced.add(w)
			h.scheduleSync(ctx, false)
		}
	}
}

// catchUp takes the store's revision after the applier dropped batches
// the hub will never get: every synced watcher resumes from history after
// the hub's old revision, and progress notifications speak for the
// store's revision once they caught up. Batches still in the mailbox at
// or below that revision are dropped as replays. While the core is down
// it tries again at the next sync round.
func (h *hub) catchUp(ctx actor.Context) {
	if !h.behind {
		return
	}
	st := h.cfg.Backend.Store()
	if st == nil {
		h.scheduleSync(ctx, false)
		return
	}
	h.behind = false
	if rev := st.Rev(); rev > h.rev {
		h.unsyncAll(ctx)
		h.rev = rev
	}
}

// unsyncAll moves every synced watcher to the unsynced ones, resuming
// after the hub's revision.
func (h *hub) unsyncAll(ctx actor.Context) {
	if h.synced.n == 0 {
		return
	}
	h.synced.each(func(w *watcher) {
		w.next = max(w.next, h.rev+1)
		h.unsynced.add(w)
	})
	h.synced = newGroup()
	h.scheduleSync(ctx, true)
}

// handleSync serves the unsynced watchers from history, one bounded chunk.
func (h *hub) handleSync(ctx actor.Context) {
	h.catchUp(ctx)
	if h.unsynced.n == 0 {
		return
	}
	st := h.cfg.Backend.Store()
	if st == nil {
		h.scheduleSync(ctx, false) // the core is restarting
		return
	}
	upTo := st.Rev()
	if upTo < h.rev {
		upTo = h.rev
	}
	ws := h.chooseUnsynced()
	if h.cancelCompacted(ws, st.CompactRev()) {
		ws = h.chooseUnsynced()
	}
	from := upTo + 1
	for _, w := range ws {
		if !w.compacted {
			from = min(from, w.next)
		}
	}
	var evs []*mvccpb.Event
	last := upTo
	if from <= upTo {
		var err error
		evs, err = st.Events(from, upTo, h.cfg.SyncChunkEvents)
		if errors.Is(err, mvcc.ErrCompacted) {
			h.scheduleSync(ctx, true) // compacted meanwhile: cancel next round
			return
		}
		if err != nil {
			h.log.Warn("read watch history", "from", from, "err", err)
			h.scheduleSync(ctx, false)
			return
		}
		if len(evs) >= h.cfg.SyncChunkEvents {
			last = evs[len(evs)-1].Kv.ModRevision
		}
	}
	more := false
	for _, w := range ws {
		if w.compacted || w.next > last {
			continue
		}
		picked := w.pick(evs)
		if len(picked) > 0 && !w.sink.Deliver(&messages.WatchEvents{WatchID: w.id, Events: picked, Revision: last}) {
			continue // still full: next round
		}
		w.next = last + 1
		more = true
	}
	for _, w := range ws {
		if !w.compacted && w.next > upTo {
			// caught up: from here on the batches bring the rest, and
			// next keeps it from taking again what history gave
			h.unsynced.remove(w)
			h.synced.add(w)
		}
	}
	switch {
	case h.unsynced.n == 0:
	case more && (last < upTo || h.unsynced.n > len(ws)):
		h.scheduleSync(ctx, true) // more history or more watchers: go on
	case more:
		h.scheduleAfter(ctx, retryInterval) // some sinks were full: soon
	default:
		h.scheduleSync(ctx, false)
	}
}

// chooseUnsynced returns up to MaxWatchersPerSync unsynced watchers.
func (h *hub) chooseUnsynced() []*watcher {
	var ws []*watcher
	h.unsynced.each(func(w *watcher) {
		if len(ws) < h.cfg.MaxWatchersPerSync {
			ws = append(ws, w)
		}
	})
	return ws
}

// cancelCompacted cancels the watchers of ws whose next revision is
// compacted away, as etcd: a response with the compact revision. A full
// sink gets it in a later round. It reports whether any was removed.
func (h *hub) cancelCompacted(ws []*watcher, compactRev int64) bool {
	removed := false
	for _, w := range ws {
		if w.next >= compactRev && !w.compacted {
			continue
		}
		w.compacted = true
		if w.sink.Deliver(&messages.WatchEvents{WatchID: w.id, CompactRevision: compactRev, Canceled: true}) {
			h.remove(w.sink, w.id)
			removed = true
		}
	}
	return removed
}

// handleWatchProgress sends one watch an empty response at the hub's
// revision if it is current, as etcd's periodic progress notify; an
// unsynced one gets events soon enough.
func (h *hub) handleWatchProgress(msg *messages.RequestWatchProgress) {
	w, ok := h.bySink[msg.Sink][msg.WatchID]
	if !ok || !h.current(w) {
		return
	}
	w.sink.Deliver(&messages.WatchEvents{WatchID: w.id, Revision: h.rev})
}

// handleSinkProgress sends a sink one empty response for all its watches
// if every one is current, and nothing otherwise: as etcd >= 3.5.13 it is
// not deferred until they are (the client asks again), and a sink without
// watches gets nothing.
func (h *hub) handleSinkProgress(msg *messages.RequestSinkProgress) {
	ws := h.bySink[msg.Sink]
	if len(ws) == 0 {
		return
	}
	for _, w := range ws {
		if !h.current(w) {
			return
		}
	}
	msg.Sink.Deliver(&messages.WatchEvents{WatchID: messages.AllWatches, Revision: h.rev})
}

// current reports whether a progress notification at the hub's revision
// may speak for w: w is synced, so it has every event up to that revision;
// it does not start past it (its owner read a newer store revision than
// the hub has seen: the notification would go back behind the revision
// the client was shown); and, as etcd, the start revision the client
// asked for is not in the future.
func (h *hub) current(w *watcher) bool {
	return h.rev != 0 && h.synced.has(w) && w.next <= h.rev+1 && w.clientStart <= h.rev
}

// report publishes the watcher counts (etcd's debugging gauges).
func (h *hub) report() {
	metrics.WatcherTotal.Set(float64(h.synced.n + h.unsynced.n))
	metrics.SlowWatcherTotal.Set(float64(h.unsynced.n))
}

// retryInterval paces sync rounds while sinks drain (etcd retries its
// victims every 10 ms).
const retryInterval = 10 * time.Millisecond

// scheduleSync schedules a sync round now, or after SyncInterval unless
// one is scheduled already.
func (h *hub) scheduleSync(ctx actor.Context, now bool) {
	if now {
		h.scheduleAfter(ctx, 0)
		return
	}
	if h.syncTimer == nil {
		h.scheduleAfter(ctx, h.cfg.SyncInterval)
	}
}

// scheduleAfter (re)schedules the sync round after d.
func (h *hub) scheduleAfter(ctx actor.Context, d time.Duration) {
	if h.syncTimer != nil {
		h.syncTimer.Stop()
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	h.syncTimer = time.AfterFunc(d, func() { root.Send(self, syncDue{}) })
}

func (h *hub) stopTimers() {
	if h.syncTimer != nil {
		h.syncTimer.Stop()
		h.syncTimer = nil
	}
}
