package actorapi

import (
	"context"
	"errors"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/troupedb/troupe/messages"
)

// Watches over the actor API: every subscriber PID gets one watch session,
// served by the same etcdserverpb.WatchServer as the gRPC API (so ids,
// created and canceled responses, filters, prev_kv, progress and the hub's
// ordering and no-gap guarantees are the same), through a stream whose
// Recv takes the subscriber's WatchRequests and whose Send delivers
// WatchResponses to the subscriber's PID.
//
// Bounds: at most WatchWindow responses are unacknowledged (WatchAck); the
// session's Send waits for acknowledgements, so its watches fall back to
// history and the member holds nothing for a subscriber that stopped
// reading. At most watchRequestQueue requests wait for the session; a
// subscriber that sends more has its session ended with "too many
// requests". The endpoint watches each subscriber PID: a Terminated (the
// actor stopped, or its actor system's endpoint went away) ends its
// session and the hub forgets its watches.

// WatchWindow is how many WatchResponses a session sends ahead of the
// subscriber's acknowledgements.
const WatchWindow = messages.WatchWindow

const watchRequestQueue = 64

// ErrWatchUnavailable ends a watch session on an endpoint without a watch
// service.
var ErrWatchUnavailable = status.Error(codes.Unimplemented, "actorapi: watch is not served here")

// watchSession is one subscriber's stream. Its fields are set before the
// serving goroutine starts; the endpoint actor and that goroutine share
// only the channels.
type watchSession struct {
	sub     *actor.PID
	root    *actor.RootContext
	reqs    chan *etcdserverpb.WatchRequest
	credits chan struct{} // one token per response that may be sent
	ctx     context.Context
	cancel  context.CancelFunc
}

// sessionEnded tells the endpoint a session's serving goroutine returned.
type sessionEnded struct{ s *watchSession }

func (e *endpoint) handleWatchRequest(ctx actor.Context, msg *messages.WatchRequest) {
	sub := ctx.Sender()
	if sub == nil || msg.GetRequest() == nil {
		e.log.Warn("dropping watch request without sender or request")
		return
	}
	s := e.sessions[sub.String()]
	if s == nil {
		s = e.startSession(ctx, sub, msg)
	}
	select {
	case s.reqs <- msg.GetRequest():
	default:
		s.end(rpctypes.ErrGRPCRequestTooManyRequests)
		e.dropSession(ctx, s, true)
	}
}

func (e *endpoint) startSession(ctx actor.Context, sub *actor.PID, first *messages.WatchRequest) *watchSession {
	c, cancel := context.WithCancel(e.caller(first.GetToken(), first.GetCertUser()))
	s := &watchSession{
		sub: sub, root: ctx.ActorSystem().Root, reqs: make(chan *etcdserverpb.WatchRequest, watchRequestQueue),
		credits: make(chan struct{}, WatchWindow), ctx: c, cancel: cancel,
	}
	for i := 0; i < WatchWindow; i++ {
		s.credits <- struct{}{}
	}
	if e.sessions == nil {
		e.sessions = map[string]*watchSession{}
	}
	e.sessions[sub.String()] = s
	ctx.Watch(sub)
	self, srv := ctx.Self(), e.cfg.Watch
	e.inflight.Add(1)
	go func() {
		defer e.inflight.Done()
		err := ErrWatchUnavailable
		if srv != nil {
			err = srv.Watch(s)
		}
		if s.ctx.Err() == nil {
			s.end(err)
		}
		s.root.Send(self, sessionEnded{s})
	}()
	return s
}

// end tells the subscriber the stream ended, unless it was canceled.
func (s *watchSession) end(err error) {
	if err == nil || errors.Is(err, context.Canceled) {
		err = status.Error(codes.Canceled, "actorapi: watch stream ended")
	}
	s.root.Send(s.sub, &messages.WatchEnded{Error: messages.NewKVError(err)})
	s.cancel()
}

// dropSession forgets s. unwatch is false for a subscriber that is gone:
// an Unwatch to its address would only make protoactor dial it (and a
// graceful remote shutdown then waits ~10 s for that dial).
func (e *endpoint) dropSession(ctx actor.Context, s *watchSession, unwatch bool) {
	s.cancel()
	if e.sessions[s.sub.String()] == s {
		delete(e.sessions, s.sub.String())
		if unwatch {
			ctx.Unwatch(s.sub)
		}
	}
}

func (e *endpoint) handleWatchAck(ctx actor.Context, msg *messages.WatchAck) {
	sub := ctx.Sender()
	if sub == nil {
		return
	}
	if s := e.sessions[sub.String()]; s != nil {
		for i := uint32(0); i < msg.GetResponses() && i < WatchWindow; i++ {
			select {
			case s.credits <- struct{}{}:
			default:
				return // more acknowledged than sent: ignore
			}
		}
	}
}

// handleTerminated ends the session of a subscriber that went away.
func (e *endpoint) handleTerminated(ctx actor.Context, msg *actor.Terminated) {
	if s := e.sessions[msg.GetWho().String()]; s != nil {
		e.dropSession(ctx, s, false)
	}
}

// etcdserverpb.Watch_WatchServer over protoactor messages.

func (s *watchSession) Send(r *etcdserverpb.WatchResponse) error {
	select {
	case <-s.credits:
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
	s.root.Send(s.sub, &messages.WatchResponse{Response: r})
	return nil
}

func (s *watchSession) Recv() (*etcdserverpb.WatchRequest, error) {
	select {
	case r := <-s.reqs:
		return r, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

func (s *watchSession) Context() context.Context     { return s.ctx }
func (s *watchSession) SetHeader(metadata.MD) error  { return nil }
func (s *watchSession) SendHeader(metadata.MD) error { return nil }
func (s *watchSession) SetTrailer(metadata.MD)       {}
func (s *watchSession) SendMsg(any) error            { return errors.New("actorapi: SendMsg unused") }
func (s *watchSession) RecvMsg(any) error            { return errors.New("actorapi: RecvMsg unused") }

var _ etcdserverpb.Watch_WatchServer = (*watchSession)(nil)

// endSessions tells every subscriber its stream ends because the endpoint
// stops, as etcd's "server stopped", so it need not wait to notice.
func (e *endpoint) endSessions() {
	for _, s := range e.sessions {
		s.end(rpctypes.ErrGRPCStopped)
	}
}
