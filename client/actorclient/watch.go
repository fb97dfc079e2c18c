package actorclient

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/remote"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/troupedb/troupe/messages"
)

// ErrWatchEndpointGone ends a watch whose member's actor API went away.
var ErrWatchEndpointGone = status.Error(codes.Unavailable, "actorclient: the member's actor API went away")

// Watcher is one watch created through the actor API. Its responses (of
// etcd's shape: events, progress notifications, the final cancel) arrive
// on C in order; C is closed when the watch ends, and Err then says why
// (nil after Close or a cancel without error).
type Watcher struct {
	// ID is the watch id the member chose (or the one asked for).
	ID int64
	// Created is the created response, with its header.
	Created *etcdserverpb.WatchResponse
	C       <-chan *etcdserverpb.WatchResponse

	system *actor.ActorSystem
	pid    *actor.PID
	stop   chan struct{} // closed by Close: the subscriber stops waiting on C
	once   sync.Once
	mu     sync.Mutex
	err    error
}

// Err returns why C was closed (nil before, or after a plain cancel).
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close cancels the watch: the subscriber actor stops, and the member,
// which watches it, removes its watch. C is closed.
func (w *Watcher) Close() {
	w.once.Do(func() { close(w.stop) })
	_ = w.system.Root.StopFuture(w.pid).Wait()
}

// Watch creates a watch (etcd's WatchCreateRequest: key, range_end,
// start_revision, prev_kv, filters, progress_notify, fragment, watch_id)
// and waits for the member's created response. Each Watcher is one
// subscriber actor in the client's system, and one watch stream on the
// member; it acknowledges each response once it is on C, so at most
// messages.WatchWindow responses are ever in flight.
func (c *Client) Watch(ctx context.Context, req *etcdserverpb.WatchCreateRequest) (*Watcher, error) {
	ch := make(chan *etcdserverpb.WatchResponse, messages.WatchWindow)
	w := &Watcher{C: ch, system: c.system, stop: make(chan struct{})}
	created := make(chan *etcdserverpb.WatchResponse, 1)
	sub := &subscriber{endpoint: c.target, req: req, token: c.token, ch: ch, created: created, w: w}
	pid := c.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return sub }))
	w.pid = pid
	wctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	select {
	case r, ok := <-created:
		if !ok {
			err := w.Err()
			if err == nil {
				err = fmt.Errorf("%w: watch ended before it was created", ErrUnexpectedReply)
			}
			return nil, err
		}
		if r.Canceled {
			w.Close()
			return nil, cancelError(r.CancelReason)
		}
		w.ID, w.Created = r.WatchId, r
		return w, nil
	case <-wctx.Done():
		w.Close()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("actorclient: no created response from %s within %v: %w", c.target, c.timeout, context.DeadlineExceeded)
	}
}

// subscriber is the actor the member sends one watch's responses to.
type subscriber struct {
	endpoint *actor.PID
	req      *etcdserverpb.WatchCreateRequest
	token    string
	ch       chan *etcdserverpb.WatchResponse
	created  chan *etcdserverpb.WatchResponse
	w        *Watcher
	done     bool
	events   *eventstream.Subscription
}

// endpointGone: the client's remote lost the member's address.
type endpointGone struct{}

func (s *subscriber) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		// The endpoint going away (member stopped, link lost) ends the
		// watch. Not through ctx.Watch: a member would then owe this
		// actor a Terminated, and dial a client that may be long gone
		// when it stops.
		root, self, addr := ctx.ActorSystem().Root, ctx.Self(), s.endpoint.Address
		s.events = ctx.ActorSystem().EventStream.Subscribe(func(evt any) {
			if e, ok := evt.(*remote.EndpointTerminatedEvent); ok && e.Address == addr {
				root.Send(self, endpointGone{})
			}
		})
		ctx.Request(s.endpoint, &messages.WatchRequest{Request: &etcdserverpb.WatchRequest{
			RequestUnion: &etcdserverpb.WatchRequest_CreateRequest{CreateRequest: s.req},
		}, Token: s.token})
	case *messages.WatchResponse:
		s.handleResponse(ctx, msg.GetResponse())
	case *messages.WatchEnded:
		s.finish(ctx, msg.GetError().Err())
	case endpointGone:
		s.finish(ctx, ErrWatchEndpointGone)
	case *actor.Stopping:
		s.finish(ctx, nil)
	case *actor.Stopped:
		if s.events != nil {
			ctx.ActorSystem().EventStream.Unsubscribe(s.events)
		}
	}
}

func (s *subscriber) handleResponse(ctx actor.Context, r *etcdserverpb.WatchResponse) {
	if s.done || r == nil {
		return
	}
	if r.Created && s.created != nil {
		s.created <- r
		close(s.created)
		s.created = nil
		ctx.Request(s.endpoint, &messages.WatchAck{Responses: 1})
		if r.Canceled {
			s.finish(ctx, nil)
		}
		return
	}
	// Blocks this actor only: the member sends at most WatchWindow
	// responses ahead of the acknowledgement that follows.
	select {
	case s.ch <- r:
	case <-s.w.stop:
		return // closing: nobody reads C any more
	}
	ctx.Request(s.endpoint, &messages.WatchAck{Responses: 1})
	if r.Canceled {
		s.finish(ctx, nil)
	}
}

// finish closes C once; the actor stops, which the member sees.
func (s *subscriber) finish(ctx actor.Context, err error) {
	if s.done {
		return
	}
	s.done = true
	s.w.mu.Lock()
	s.w.err = err
	s.w.mu.Unlock()
	if s.created != nil {
		close(s.created)
		s.created = nil
	}
	close(s.ch)
	ctx.Stop(ctx.Self())
}

// cancelError is the error of a watch the member cancelled at creation:
// a reason in gRPC's status text (etcd's "rpc error: code = PermissionDenied
// desc = etcdserver: permission denied") is that status again, so that
// errors.Is(err, rpctypes.ErrGRPCPermissionDenied) holds; any other
// reason is InvalidArgument with the reason as message.
func cancelError(reason string) error {
	const prefix, sep = "rpc error: code = ", " desc = "
	if rest, ok := strings.CutPrefix(reason, prefix); ok {
		if name, desc, ok := strings.Cut(rest, sep); ok {
			for c := codes.OK; c <= codes.Unauthenticated; c++ {
				if c.String() == name {
					return status.Error(c, desc)
				}
			}
		}
	}
	return status.Error(codes.InvalidArgument, reason)
}
