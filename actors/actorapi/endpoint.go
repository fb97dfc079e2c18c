// Package actorapi serves troupe's KV operations (Range, Put, DeleteRange,
// Txn, Compact), lease operations (Grant, Revoke, one-shot KeepAlive,
// TimeToLive, Leases: *messages.LeaseRequest answered with one
// *messages.LeaseResponse under the same rules, see lease.go) and watches
// to protoactor actor systems, as protobuf messages over protoactor remote:
// the actor API. Watches (WatchRequest, WatchResponse, WatchAck,
// WatchEnded) are described in watch.go.
//
// Contract of the endpoint actor (Props):
//
//   - In: *messages.KVRequest from any sender, local or remote. Out: exactly
//     one *messages.KVResponse with the request's id, sent to the request's
//     sender (ctx.Sender(), e.g. a RequestFuture's PID). A request without a
//     sender is logged and dropped: there is nobody to answer.
//   - The operation runs on its own goroutine against Config.KV (an
//     etcdserverpb.KVServer, the same interface the etcd gRPC API serves), so
//     a slow operation never blocks the mailbox. The goroutine gets copies
//     (request, sender PID, actor system) and the endpoint's semaphore and
//     wait group, never the actor's state; it replies with Root.Send.
//   - At most Config.MaxInFlight operations run at once; a request beyond
//     that is answered at once with rpctypes.ErrGRPCRequestTooManyRequests
//     (ResourceExhausted, "etcdserver: too many requests") instead of
//     queueing without bound.
//   - A request whose operation is larger than Config.MaxRequestBytes
//     (protobuf size) is answered with rpctypes.ErrGRPCRequestTooLarge; one
//     without an operation with rpctypes.ErrGRPCEmptyKey's code
//     (InvalidArgument) and message "actorapi: request has no operation".
//   - Errors of Config.KV travel as gRPC status code + message
//     (messages.NewKVError), so rpctypes errors arrive unchanged.
//   - Any other message type is logged with its %T and dropped.
//   - Stopping cancels the context of every running operation; Stopped waits
//     (at most Config.DrainTimeout) for them to reply, so a stopped endpoint
//     leaves no goroutine behind. A restart keeps nothing: the endpoint has
//     no state beyond the in-flight operations, whose replies still go out.
//   - Who sent a request (the services check its permissions as for a
//     gRPC call): its token, and with StampedCertUser its cert_user, the
//     CN of the verified client certificate of the connection it came in
//     on, which Serve's remote writes over whatever the sender put (see
//     certuser.go).
//
// Serve runs the endpoint in an actor system of its own behind a guarded
// remote (see Serve); Props lets a supervisor (the listeners actor) run it
// inside the node's actor system instead.
package actorapi

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/internal/transport"
	"github.com/troupedb/troupe/messages"
)

// Defaults of Config.
const (
	// DefaultMaxRequestBytes is etcd's default --max-request-bytes (1.5 MiB).
	DefaultMaxRequestBytes = 1536 * 1024
	// DefaultMaxInFlight bounds concurrent operations per endpoint.
	DefaultMaxInFlight = 1024
	// DefaultDrainTimeout bounds how long a stopping endpoint waits for
	// running operations.
	DefaultDrainTimeout = 5 * time.Second
)

// ErrNoOperation answers a KVRequest whose op is not set.
var ErrNoOperation = status.Error(codes.InvalidArgument, "actorapi: request has no operation")

// Config of the endpoint actor.
type Config struct {
	// KV executes the operations; required. Its methods are called from many
	// goroutines at once.
	KV etcdserverpb.KVServer
	// Lease executes LeaseRequests (see lease.go); nil answers them with
	// ErrNoLeaseService.
	Lease LeaseService
	// MaxRequestBytes refuses operations whose protobuf encoding is larger,
	// as etcd's --max-request-bytes does. Zero means DefaultMaxRequestBytes.
	MaxRequestBytes int
	// MaxInFlight is the number of operations that may run at once; more are
	// refused with ResourceExhausted. Zero means DefaultMaxInFlight.
	MaxInFlight int
	// DrainTimeout bounds the wait for running operations when the endpoint
	// stops. Zero means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// Watch serves WatchRequests (see watch.go); nil refuses them.
	Watch etcdserverpb.WatchServer
	// StampedCertUser says the remote in front of the endpoint stamps
	// every request's cert_user with its connection's verified
	// certificate CN (StampCertUser; Serve's does). Without it cert_user
	// is ignored, so that callers of an endpoint behind another remote
	// cannot name a user.
	StampedCertUser bool
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Props of the endpoint actor. It panics if cfg.KV is nil: that is a wiring
// bug, not an operating error.
func Props(cfg Config) *actor.Props {
	if cfg.KV == nil {
		panic("actorapi: Config.KV is nil")
	}
	cfg = cfg.withDefaults()
	return actor.PropsFromProducer(func() actor.Actor { return newEndpoint(cfg) })
}

type endpoint struct {
	cfg Config
	log *slog.Logger

	// Shared with the operation goroutines; synchronisation only.
	slots    chan struct{}   // a token per running operation; cap MaxInFlight
	inflight *sync.WaitGroup // running operations
	ctx      context.Context // cancelled when the endpoint stops
	cancel   context.CancelFunc

	sessions map[string]*watchSession // watch sessions by subscriber PID
}

func newEndpoint(cfg Config) *endpoint {
	ctx, cancel := context.WithCancel(context.Background())
	return &endpoint{
		cfg:      cfg,
		log:      cfg.Logger.With("actor", "actorapi"),
		slots:    make(chan struct{}, cfg.MaxInFlight),
		inflight: &sync.WaitGroup{},
		ctx:      ctx,
		cancel:   cancel,
	}
}

// Receive implements actor.Actor.
func (e *endpoint) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
	case *actor.Stopping:
		e.endSessions()
		e.cancel()
	case *actor.Stopped:
		e.handleStopped()
	case *actor.Restarting:
		e.cancel()
	case *actor.Terminated:
		e.handleTerminated(ctx, msg)
	case actor.AutoReceiveMessage, actor.SystemMessage:
	case *messages.KVRequest:
		e.handleKVRequest(ctx, msg)
	case *messages.LeaseRequest:
		e.handleLeaseRequest(ctx, msg)
	case *messages.WatchRequest:
		e.handleWatchRequest(ctx, msg)
	case *messages.WatchAck:
		e.handleWatchAck(ctx, msg)
	case sessionEnded:
		e.dropSession(ctx, msg.s, true)
	default:
		e.log.Warn("dropping unknown message", "type", fmt.Sprintf("%T", msg), "sender", ctx.Sender())
	}
}

func (e *endpoint) handleStopped() {
	e.cancel()
	done := make(chan struct{})
	go func() { e.inflight.Wait(); close(done) }()
	timer := time.NewTimer(e.cfg.DrainTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		e.log.Error("operations still running after stop", "drainTimeout", e.cfg.DrainTimeout)
	}
}

func (e *endpoint) handleKVRequest(ctx actor.Context, req *messages.KVRequest) {
	sender := ctx.Sender()
	if sender == nil {
		e.log.Warn("dropping request without sender", "id", req.GetId())
		return
	}
	system := ctx.ActorSystem()
	if err := e.check(req); err != nil {
		system.Root.Send(sender, messages.NewKVErrorResponse(req.GetId(), err))
		return
	}
	select {
	case e.slots <- struct{}{}:
	default:
		system.Root.Send(sender, messages.NewKVErrorResponse(req.GetId(), rpctypes.ErrGRPCRequestTooManyRequests))
		return
	}
	e.inflight.Add(1)
	go serve(e.caller(req.GetToken(), req.GetCertUser()), e.cfg.KV, system, sender, req, e.slots, e.inflight)
}

// check refuses requests that must not reach the KV.
func (e *endpoint) check(req *messages.KVRequest) error {
	var op proto.Message
	switch o := req.GetOp().(type) {
	case *messages.KVRequest_Range:
		op = o.Range
	case *messages.KVRequest_Put:
		op = o.Put
	case *messages.KVRequest_DeleteRange:
		op = o.DeleteRange
	case *messages.KVRequest_Txn:
		op = o.Txn
	case *messages.KVRequest_Compact:
		op = o.Compact
	}
	if op == nil {
		return ErrNoOperation
	}
	if proto.Size(op) > e.cfg.MaxRequestBytes {
		return rpctypes.ErrGRPCRequestTooLarge
	}
	return nil
}

// serve runs on its own goroutine: one operation, one reply. It must not
// touch the endpoint; everything it needs is passed in.
func serve(ctx context.Context, kv etcdserverpb.KVServer, system *actor.ActorSystem, sender *actor.PID,
	req *messages.KVRequest, slots chan struct{}, inflight *sync.WaitGroup,
) {
	defer inflight.Done()
	resp := execute(ctx, kv, req)
	<-slots // free the slot before replying: a client seeing the reply may send at once
	system.Root.Send(sender, resp)
}

// execute calls kv for req and wraps the outcome. A panic in kv becomes an
// Internal error for this request instead of killing the process.
func execute(ctx context.Context, kv etcdserverpb.KVServer, req *messages.KVRequest) (resp *messages.KVResponse) {
	id := req.GetId()
	defer func() {
		if r := recover(); r != nil {
			resp = messages.NewKVErrorResponse(id, status.Errorf(codes.Internal, "actorapi: panic in KV: %v", r))
		}
	}()
	var err error
	resp = &messages.KVResponse{Id: id}
	switch o := req.GetOp().(type) {
	case *messages.KVRequest_Range:
		var r *etcdserverpb.RangeResponse
		if r, err = kv.Range(ctx, o.Range); err == nil {
			resp.Result = &messages.KVResponse_Range{Range: r}
		}
	case *messages.KVRequest_Put:
		var r *etcdserverpb.PutResponse
		if r, err = kv.Put(ctx, o.Put); err == nil {
			resp.Result = &messages.KVResponse_Put{Put: r}
		}
	case *messages.KVRequest_DeleteRange:
		var r *etcdserverpb.DeleteRangeResponse
		if r, err = kv.DeleteRange(ctx, o.DeleteRange); err == nil {
			resp.Result = &messages.KVResponse_DeleteRange{DeleteRange: r}
		}
	case *messages.KVRequest_Txn:
		var r *etcdserverpb.TxnResponse
		if r, err = kv.Txn(ctx, o.Txn); err == nil {
			resp.Result = &messages.KVResponse_Txn{Txn: r}
		}
	case *messages.KVRequest_Compact:
		var r *etcdserverpb.CompactionResponse
		if r, err = kv.Compact(ctx, o.Compact); err == nil {
			resp.Result = &messages.KVResponse_Compact{Compact: r}
		}
	default:
		err = ErrNoOperation
	}
	if err != nil {
		return messages.NewKVErrorResponse(id, err)
	}
	return resp
}

// caller is the context of a request's operation: cancelled when the
// endpoint stops, carrying who sent it (withCaller). cert_user counts only
// behind a remote that stamps it (Config.StampedCertUser).
func (e *endpoint) caller(token, certUser string) context.Context {
	if !e.cfg.StampedCertUser {
		certUser = ""
	}
	return withCaller(e.ctx, token, certUser)
}

// withCaller returns ctx carrying who sent a request: its auth token as
// a gRPC request's "token" metadata does, and the CN of its connection's
// verified client certificate that the remote stamped on it (see
// certuser.go), so the services check the request as they check a gRPC
// one. Empty values add nothing.
func withCaller(ctx context.Context, token, certUser string) context.Context {
	ctx = transport.WithCertUser(ctx, certUser)
	if token == "" {
		return ctx
	}
	return metadata.NewIncomingContext(ctx, metadata.Pairs(rpctypes.TokenFieldNameGRPC, token))
}
