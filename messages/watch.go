package messages

import "go.etcd.io/etcd/api/v3/mvccpb"

// Messages of the watch hub (actors/watchers). They never leave the
// process: a remote subscriber goes through the actor API endpoint.

// EventsApplied tells the watch hub what one Apply batch changed: Rev is
// the store revision after the batch, Events the batch's events in
// revision order (consecutive revisions, each with all its events; none
// when the batch changed nothing, for example a replay after a restart).
type EventsApplied struct {
	Rev    int64
	Events []*mvccpb.Event
}

// EventsDropped tells the watch hub that the applier dropped the events of
// one or more batches because too many waited in the hub's mailbox (see
// hublink.Link.SendEvents): the hub takes the store's revision and reads
// what it missed from history. At most one is in the mailbox at a time.
type EventsDropped struct{}

// WatchSink receives the responses of the watches created with it. Deliver
// must not block: it returns false when the sink is full, and then took
// nothing; the hub delivers again from history later.
type WatchSink interface {
	Deliver(r *WatchEvents) bool
}

// WatchEvents is one response to a watch: events (of whole revisions, in
// order), a progress notification (no events; WatchID AllWatches when it
// answers RequestSinkProgress), or a cancel for compaction (Canceled with
// CompactRevision). Revision is the store revision the response is current
// to, for its header.
type WatchEvents struct {
	WatchID         int64
	Events          []*mvccpb.Event
	Revision        int64
	CompactRevision int64
	Canceled        bool
}

// CreateWatch adds a watch on [Key, RangeEnd) (RangeEnd nil: Key alone,
// empty: every key from Key) that delivers to Sink every event from
// StartRevision on (at least 1; the creator resolves etcd's 0 to the
// current revision + 1). WatchID is chosen by the sink's owner and unique
// within the sink. No reply: responses go to the sink.
//
// ClientStartRevision is the start revision the client asked for (0 when
// it asked for none): as etcd, the hub sends the watch no progress
// notification while its revision is below it.
type CreateWatch struct {
	Sink                WatchSink
	WatchID             int64
	Key, RangeEnd       []byte
	StartRevision       int64
	ClientStartRevision int64
	NoPut               bool
	NoDelete            bool
}

// CancelWatch removes one watch of a sink; the hub sends it nothing after.
type CancelWatch struct {
	Sink    WatchSink
	WatchID int64
}

// DropSink removes every watch of a sink whose owner went away.
type DropSink struct {
	Sink WatchSink
}

// RequestWatchProgress asks for a progress notification of one watch (the
// periodic one of a watch created with progress_notify): the hub delivers
// an empty response at its revision if the watch is synced (has every
// event up to it), and nothing otherwise, as etcd's.
type RequestWatchProgress struct {
	Sink    WatchSink
	WatchID int64
}

// RequestSinkProgress asks for one progress notification for every watch
// of a sink (etcd's WatchProgressRequest): the hub delivers an empty
// response with WatchID AllWatches at its revision if every watch of the
// sink is synced, and nothing otherwise, nor to a sink without watches.
// As etcd >= 3.5.13 it is not deferred: the client asks again.
type RequestSinkProgress struct {
	Sink WatchSink
}

// AllWatches is the WatchID of a progress notification for every watch of
// a sink (etcd's clientv3.InvalidWatchID, -1).
const AllWatches int64 = -1

// WatchWindow is how many troupe.v1.WatchResponse messages the actor API
// sends a subscriber ahead of its WatchAck acknowledgements.
const WatchWindow = 128
