package etcdapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/internal/hublink"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
)

// Bounds of one watch stream, as etcd's.
const (
	// watchSinkLen is how many responses the hub may have queued for one
	// stream (etcd's chanBufLen); past it the stream's watchers fall
	// back to history, so a client that does not read costs no memory.
	// 1024 made 10,000 watches on 10 streams catch up ~30 % faster but
	// doubled their memory (BenchmarkWatchMemory).
	watchSinkLen = 128
	// watchCtrlLen bounds the requests read ahead of the sending loop
	// (etcd's ctrlStreamBufLen); past it reading waits.
	watchCtrlLen = 16
	// maxNoLeaderChecks is how many election timeouts in a row without
	// a leader end a stream that requires one (etcd's maxNoLeaderCnt).
	maxNoLeaderChecks = 3
)

// etcd 3.4's errors for a watch that cannot be created (mvcc package
// errors, sent as a cancel reason).
var (
	errEmptyWatcherRange  = errors.New("mvcc: watcher range is empty")
	errWatcherDuplicateID = errors.New("mvcc: duplicate watch ID provided on the WatchStream")
)

// WatchConfig configures the Watch service.
type WatchConfig struct {
	// Raft gives the member view and the running backend (history reads).
	Raft *raftclient.Client
	// Hub finds the watch hub; Root sends to it.
	Hub             *hublink.Link
	Root            *actor.RootContext
	MaxRequestBytes int // fragment size for watches that ask for fragments
	// ProgressInterval is how often a watch that asked for progress
	// notifications and got no event meanwhile gets one.
	ProgressInterval time.Duration
	// ElectionTimeout paces the no-leader check of streams that require
	// a leader.
	ElectionTimeout time.Duration
	// Stopping, when closed, ends every stream with "server stopped"; nil
	// never does.
	Stopping <-chan struct{}
	// Auth, when set, checks that the sender may read what it watches.
	Auth *Authenticator
}

// Watch is etcd's Watch service: each stream multiplexes many watches,
// served by the watch hub (actors/watchers) through one bounded sink.
type Watch struct {
	pb.UnimplementedWatchServer
	cfg WatchConfig
	enc eventsEncoder // shared by the gRPC streams
}

// NewWatch returns the Watch service.
func NewWatch(cfg WatchConfig) *Watch { return &Watch{cfg: cfg} }

// chanSink is a stream's sink: the hub's responses wait here for the
// stream's sending loop; Deliver never blocks.
type chanSink struct{ c chan *messages.WatchEvents }

func (s *chanSink) Deliver(r *messages.WatchEvents) bool {
	select {
	case s.c <- r:
		return true
	default:
		return false
	}
}

// streamWatch is one watch of a stream, as the stream's loop keeps it.
type streamWatch struct {
	create   messages.CreateWatch // to create it again on a new hub
	prevKV   bool
	fragment bool
	progress bool
	quiet    bool  // progress: no event sent since the last tick
	next     int64 // first revision the client has not been sent
	// user and the range it asked for, checked again when the auth
	// state changes
	user     string
	key, end []byte
}

// watchStream is the state of one Watch RPC; only its loop touches it.
type watchStream struct {
	cfg     WatchConfig
	stream  pb.Watch_WatchServer
	sink    *chanSink
	hub     *actor.PID
	watches map[int64]*streamWatch
	nextID  int64 // next automatic watch id
	// authSeen is the auth state the watches were last checked against.
	authSeen authStamp
	// enc encodes events once for many watches, for the server's codec
	// (watchCodec, from ServerOptions) to write; nil when the stream is
	// not gRPC's (the actor API's takes responses as Go values).
	enc *eventsEncoder
}

// authStamp identifies an auth state: a change of either field may
// change what a user may read.
type authStamp struct {
	enabled  bool
	revision uint64
}

// Watch serves one stream: one goroutine reads requests, this one sends
// responses, so created responses always precede a watch's events.
func (s *Watch) Watch(stream pb.Watch_WatchServer) error {
	ctx := stream.Context()
	ws := &watchStream{
		cfg: s.cfg, stream: stream, sink: &chanSink{c: make(chan *messages.WatchEvents, watchSinkLen)},
		watches: map[int64]*streamWatch{},
	}
	if _, ok := stream.(*grpc.GenericServerStream[pb.WatchRequest, pb.WatchResponse]); ok {
		ws.enc = &s.enc
	}
	hub, replaced := s.cfg.Hub.Hub()
	ws.hub = hub
	defer func() {
		if ws.hub != nil {
			s.cfg.Root.Send(ws.hub, &messages.DropSink{Sink: ws.sink})
		}
	}()
	reqs := make(chan *pb.WatchRequest, watchCtrlLen)
	errc := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	go ws.recvLoop(reqs, errc, done)

	progress := time.NewTicker(s.cfg.ProgressInterval)
	defer progress.Stop()
	var leaderCheck <-chan time.Time
	if requiresLeader(ctx) {
		t := time.NewTicker(s.cfg.ElectionTimeout)
		defer t.Stop()
		leaderCheck = t.C
	}
	noLeader := 0
	for {
		var err error
		select {
		case req := <-reqs:
			err = ws.handleRequest(req)
		case r := <-ws.sink.c:
			err = ws.sendDelivered(r)
		case <-replaced:
			// a new hub knows none of our watches: create them again
			// from where each one is
			ws.hub, replaced = s.cfg.Hub.Hub()
			ws.recreate()
		case <-progress.C:
			ws.tickProgress()
		case <-leaderCheck:
			if noLeader = noLeader + 1; s.cfg.Raft.View().Leader() != 0 {
				noLeader = 0
			}
			if noLeader >= maxNoLeaderChecks {
				return rpctypes.ErrGRPCNoLeader
			}
		case err = <-errc:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.cfg.Stopping:
			return raftclient.ErrStopped
		}
		if err != nil {
			return err
		}
	}
}

// requiresLeader reports whether the client asked for a leader
// (clientv3.WithRequireLeader).
func requiresLeader(ctx context.Context) bool {
	vs := metadata.ValueFromIncomingContext(ctx, rpctypes.MetadataRequireLeaderKey)
	return len(vs) > 0 && vs[0] == rpctypes.MetadataHasLeader
}

// recvLoop reads requests until the stream ends. A client that closes its
// sending side keeps its watches, as with etcd.
func (ws *watchStream) recvLoop(reqs chan<- *pb.WatchRequest, errc chan<- error, done <-chan struct{}) {
	for {
		req, err := ws.stream.Recv()
		if err == io.EOF {
			return
		}
		if err != nil {
			errc <- err
			return
		}
		select {
		case reqs <- req:
		case <-done:
			return
		}
	}
}

func (ws *watchStream) header(rev int64) *pb.ResponseHeader {
	return newHeader(ws.cfg.Raft.View(), rev)
}

func (ws *watchStream) handleRequest(req *pb.WatchRequest) error {
	switch r := req.RequestUnion.(type) {
	case *pb.WatchRequest_CreateRequest:
		if r.CreateRequest != nil {
			return ws.handleCreate(r.CreateRequest)
		}
	case *pb.WatchRequest_CancelRequest:
		if r.CancelRequest != nil {
			return ws.handleCancel(r.CancelRequest.WatchId)
		}
	case *pb.WatchRequest_ProgressRequest:
		if r.ProgressRequest != nil && ws.hub != nil {
			// the hub answers through the sink, behind the events it
			// covers, and only when every watch of the stream is synced
			ws.cfg.Root.Send(ws.hub, &messages.RequestSinkProgress{Sink: ws.sink})
		}
	}
	return nil // etcd ignores what it does not know
}

func (ws *watchStream) handleCreate(creq *pb.WatchCreateRequest) error {
	// the watches made before an auth change are checked before a new one
	if err := ws.recheck(); err != nil {
		return err
	}
	st := ws.cfg.Raft.Store()
	if st == nil || ws.hub == nil {
		return errCoreDown // clientv3 retries on another stream
	}
	key, end := creq.Key, creq.RangeEnd
	if len(key) == 0 {
		key = []byte{0} // the smallest key
	}
	switch {
	case len(end) == 0:
		end = nil // key alone
	case len(end) == 1 && end[0] == 0:
		end = []byte{} // every key from key on
	}
	rev := st.Rev()
	var id int64
	var user string
	var err error
	if creq.StartRevision < 0 {
		// as etcd >= 3.6.6, before any other check: refused as from a
		// compacted revision (without a compact revision to resume from)
		err = rpctypes.ErrCompacted
	} else if user, err = ws.permitted(key, creq.RangeEnd); err != nil {
		err = errors.New(watchDenied(err))
	} else if len(end) != 0 && bytes.Compare(key, end) >= 0 {
		err = errEmptyWatcherRange // before the id: it takes none
	} else {
		id, err = ws.watchID(creq.WatchId)
	}
	if err != nil {
		return ws.stream.Send(&pb.WatchResponse{
			Header: ws.header(rev), WatchId: -1, Created: true, Canceled: true, CancelReason: err.Error(),
		})
	}
	start := creq.StartRevision
	if start == 0 {
		start = rev + 1
	}
	w := &streamWatch{
		create: messages.CreateWatch{
			Sink: ws.sink, WatchID: id, Key: key, RangeEnd: end, StartRevision: start,
			ClientStartRevision: creq.StartRevision,
		},
		prevKV: creq.PrevKv, fragment: creq.Fragment, progress: creq.ProgressNotify, quiet: true, next: start,
		user: user, key: key, end: creq.RangeEnd,
	}
	for _, f := range creq.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			w.create.NoPut = true
		case pb.WatchCreateRequest_NODELETE:
			w.create.NoDelete = true
		}
	}
	ws.watches[id] = w
	// created first: the hub's responses for id come after it
	if err := ws.stream.Send(&pb.WatchResponse{Header: ws.header(rev), WatchId: id, Created: true}); err != nil {
		return err
	}
	c := w.create
	ws.cfg.Root.Send(ws.hub, &c)
	return nil
}

// watchID returns the id for a new watch: the client's, or (0) the next
// free one, as etcd 3.4.
func (ws *watchStream) watchID(asked int64) (int64, error) {
	if asked != 0 {
		if _, used := ws.watches[asked]; used {
			return 0, errWatcherDuplicateID
		}
		return asked, nil
	}
	for {
		id := ws.nextID
		ws.nextID++
		if _, used := ws.watches[id]; !used {
			return id, nil
		}
	}
}

func (ws *watchStream) handleCancel(id int64) error {
	if _, ok := ws.watches[id]; !ok {
		return nil // etcd answers nothing
	}
	return ws.cancelWatch(id, "")
}

// cancelWatch cancels watch id and tells the client, with reason (empty
// for a cancel the client asked for).
func (ws *watchStream) cancelWatch(id int64, reason string) error {
	delete(ws.watches, id)
	if ws.hub != nil {
		ws.cfg.Root.Send(ws.hub, &messages.CancelWatch{Sink: ws.sink, WatchID: id})
	}
	rev := int64(0)
	if st := ws.cfg.Raft.Store(); st != nil {
		rev = st.Rev()
	}
	return ws.stream.Send(&pb.WatchResponse{Header: ws.header(rev), WatchId: id, Canceled: true, CancelReason: reason})
}

// sendDelivered sends r and what else the hub delivered meanwhile, up to
// a sink's worth, before the loop selects again: a select over the loop's
// cases cost more than the send it picked (6 % of a member's CPU with 100
// watchers on 10 streams, one response per watcher and put).
func (ws *watchStream) sendDelivered(r *messages.WatchEvents) error {
	for n := 1; ; n++ {
		if err := ws.handleEvents(r); err != nil {
			return err
		}
		if n == watchSinkLen {
			return nil
		}
		select {
		case r = <-ws.sink.c:
		default:
			return nil
		}
	}
}

// handleEvents sends one hub response to the client, without what it was
// sent before (a new hub replays from the revision a watch reached).
func (ws *watchStream) handleEvents(r *messages.WatchEvents) error {
	if err := ws.recheck(); err != nil {
		return err
	}
	if r.WatchID == messages.AllWatches && len(r.Events) == 0 && !r.Canceled {
		// the answer to a progress request, for every watch of the stream
		// (clientv3 hands it to each of them); a client may have chosen
		// id -1 for a watch, whose events and cancel go on below
		return ws.stream.Send(&pb.WatchResponse{Header: ws.header(r.Revision), WatchId: messages.AllWatches})
	}
	w, ok := ws.watches[r.WatchID]
	if !ok {
		return nil // canceled meanwhile
	}
	if r.Canceled {
		delete(ws.watches, r.WatchID)
		return ws.stream.Send(&pb.WatchResponse{
			Header: ws.header(r.Revision), WatchId: r.WatchID, CompactRevision: r.CompactRevision, Canceled: true,
		})
	}
	evs := r.Events
	for len(evs) > 0 && evs[0].Kv.ModRevision < w.next {
		evs = evs[1:]
	}
	if len(r.Events) > 0 && len(evs) == 0 {
		return nil // all sent before
	}
	w.next = max(w.next, r.Revision+1)
	if len(evs) > 0 {
		w.next = max(w.next, evs[len(evs)-1].Kv.ModRevision+1)
		w.quiet = false
		if w.prevKV {
			evs = ws.withPrevKV(evs)
		}
	}
	if len(evs) > 0 && ws.enc != nil && !w.prevKV && !w.fragment {
		resp, err := ws.enc.response(r.WatchID, r.Revision, evs, ws.header)
		if err != nil {
			return err
		}
		return ws.stream.SendMsg(resp)
	}
	resp := &pb.WatchResponse{Header: ws.header(r.Revision), WatchId: r.WatchID, Events: evs}
	if w.fragment {
		return sendFragments(resp, ws.cfg.MaxRequestBytes, ws.stream.Send)
	}
	return ws.stream.Send(resp)
}

// withPrevKV returns copies of evs with each key's previous version, read
// at the revision before the event, as etcd (none if compacted away).
func (ws *watchStream) withPrevKV(evs []*mvccpb.Event) []*mvccpb.Event {
	st := ws.cfg.Raft.Store()
	out := make([]*mvccpb.Event, len(evs))
	for i, ev := range evs {
		e := &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
		if st != nil {
			r, err := st.Range(&pb.RangeRequest{Key: ev.Kv.Key, Revision: ev.Kv.ModRevision - 1})
			if err == nil && len(r.Kvs) > 0 {
				e.PrevKv = r.Kvs[0]
			}
		}
		out[i] = e
	}
	return out
}

// recreate creates every watch again on a new hub, from the revision the
// client has reached.
func (ws *watchStream) recreate() {
	if ws.hub == nil {
		return
	}
	for _, w := range ws.watches {
		c := w.create
		c.StartRevision = w.next
		ws.cfg.Root.Send(ws.hub, &c)
	}
}

// tickProgress asks the hub for a progress notification of each watch
// that wants them and was sent no event since the last tick, as etcd.
func (ws *watchStream) tickProgress() {
	if err := ws.recheck(); err != nil {
		return // the stream's send failed; the next send reports it
	}
	for id, w := range ws.watches {
		if !w.progress {
			continue
		}
		if w.quiet && ws.hub != nil {
			ws.cfg.Root.Send(ws.hub, &messages.RequestWatchProgress{Sink: ws.sink, WatchID: id})
		}
		w.quiet = true
	}
}

// sendFragments sends wr in pieces of about maxBytes when it is larger and
// holds more than one event, as etcd's: every piece but the last has
// Fragment set.
func sendFragments(wr *pb.WatchResponse, maxBytes int, send func(*pb.WatchResponse) error) error {
	if proto.Size(wr) < maxBytes || len(wr.Events) < 2 {
		return send(wr)
	}
	evs := wr.Events
	for len(evs) > 0 {
		cur := &pb.WatchResponse{Header: wr.Header, WatchId: wr.WatchId, Fragment: true}
		n := 0
		for n < len(evs) {
			cur.Events = evs[:n+1]
			if n > 0 && proto.Size(cur) >= maxBytes {
				cur.Events = evs[:n]
				break
			}
			n++
		}
		evs = evs[len(cur.Events):]
		if len(evs) == 0 {
			cur.Fragment = false
		}
		if err := send(cur); err != nil {
			return err
		}
	}
	return nil
}
