package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The remote reader of the served protoactor version trusts its peers: in
// remote/endpoint_reader.go, onMessageBatch indexes TypeNames, Senders and
// Targets with the envelope's numbers unchecked, and the proto serializer
// (remote/proto_serializer.go, Deserialize) calls New on the result of
// protoregistry.GlobalTypes.FindMessageByName without checking it, so a type
// this process has not linked in is a nil dereference. ListProcesses and
// GetProcessDiagnostics panic("implement me"). gRPC does not recover panics
// in handlers, so any of these ends the process.
//
// The guard sits in front of the reader as gRPC interceptors: every received
// MessageBatch is checked envelope by envelope and the ones the reader
// cannot handle, or that are not accepted types, are dropped and logged
// (the stream and the other envelopes carry on); a panic that still happens
// in a handler is recovered, logged with its stack and ends only that
// stream or call.
//
// With a Stamp (RemoteConfig.Stamp), every envelope the guard lets through
// is rewritten by it with the verified client certificate CN of the
// stream's connection: protoactor does not tell an actor which connection
// a message came from, and the guard is the last place that knows.

// Guard checks inbound remote traffic; see above. NewRemote puts one in
// front of every remote it configures.
type Guard struct {
	accepted map[string]bool
	stamp    Stamp // nil: messages pass unchanged
	log      *slog.Logger
	streams  atomic.Int64 // inbound streams whose handler runs
	// endedAt is when a stream's handler last returned (unix ns):
	// protoactor unlists the stream a moment later, on a goroutine of its
	// own (see ShutdownRemote).
	endedAt atomic.Int64
}

// streamSettle is how long after a stream ended protoactor may still list
// it; Settle waits that long, before a remote is shut down.
const streamSettle = 100 * time.Millisecond

// Settle waits until no stream ended within streamSettle: call it before
// ShutdownRemote, once the actors that used the remote have stopped.
func (g *Guard) Settle() {
	if d := streamSettle - time.Since(time.Unix(0, g.endedAt.Load())); d > 0 {
		time.Sleep(d)
	}
}

// Streams is the number of inbound streams whose handler runs.
func (g *Guard) Streams() int64 { return g.streams.Load() }

func newGuard(accepted []string, stamp Stamp, log *slog.Logger) *Guard {
	g := &Guard{accepted: make(map[string]bool, len(accepted)), stamp: stamp, log: log}
	for _, t := range accepted {
		g.accepted[t] = true
	}
	return g
}

func (g *Guard) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainStreamInterceptor(g.stream),
		grpc.ChainUnaryInterceptor(g.unary),
	}
}

func (g *Guard) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			g.log.Error("recovered panic in remote stream", "method", info.FullMethod, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "actorapi: panic in %s", info.FullMethod)
		}
	}()
	g.streams.Add(1)
	defer func() {
		g.streams.Add(-1)
		g.endedAt.Store(time.Now().UnixNano())
	}()
	gs := &guardedStream{ServerStream: ss, g: g}
	if g.stamp != nil {
		// A stream lives on one connection, whose certificate the
		// handshake verified once.
		gs.cn, _ = VerifiedCommonName(ss.Context())
	}
	return handler(srv, gs)
}

func (g *Guard) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			g.log.Error("recovered panic in remote call", "method", info.FullMethod, "panic", fmt.Sprint(r))
			resp, err = nil, status.Errorf(codes.Unimplemented, "actorapi: %s failed", info.FullMethod)
		}
	}()
	return handler(ctx, req)
}

// guardedStream filters every MessageBatch the remote reader receives.
type guardedStream struct {
	grpc.ServerStream
	g  *Guard
	cn string // the connection's verified client certificate CN, for the stamp
}

func (s *guardedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		if !errors.Is(err, io.EOF) {
			s.g.log.Debug("remote stream ended", "err", err)
		}
		// The reader forgets a stream (endpointReaderConnections) only
		// when it ends with io.EOF; one ending with an error stays listed
		// with its channel closed, and Remote.Shutdown then sends on that
		// channel and panics. Every end is an EOF to the reader.
		return io.EOF
	}
	if rm, ok := m.(*remote.RemoteMessage); ok {
		if batch := rm.GetMessageBatch(); batch != nil {
			s.g.filter(batch, s.cn)
		}
	}
	return nil
}

// filter removes from batch, in place, the envelopes the reader cannot
// handle safely or that are not accepted, and stamps the others with cn.
func (g *Guard) filter(batch *remote.MessageBatch, cn string) {
	kept := batch.Envelopes[:0]
	for _, env := range batch.Envelopes {
		if reason := g.reject(batch, env); reason != "" {
			g.log.Warn("dropping remote message", "reason", reason, "typeId", env.GetTypeId())
			continue
		}
		if g.stamp != nil {
			env.MessageData = g.stamp(batch.TypeNames[env.GetTypeId()], env.MessageData, cn)
		}
		kept = append(kept, env)
	}
	for i := len(kept); i < len(batch.Envelopes); i++ {
		batch.Envelopes[i] = nil
	}
	batch.Envelopes = kept
}

// reject says why env must not reach the reader, or "" if it may.
func (g *Guard) reject(batch *remote.MessageBatch, env *remote.MessageEnvelope) string {
	if env == nil {
		return "nil envelope"
	}
	if t := env.GetTarget(); t < 0 || int(t) >= len(batch.GetTargets()) || batch.Targets[t] == nil {
		return "target index out of range"
	}
	if s := env.GetSender(); s < 0 || int(s) > len(batch.GetSenders()) || (s > 0 && batch.Senders[s-1] == nil) {
		return "sender index out of range"
	}
	if id := env.GetTypeId(); id < 0 || int(id) >= len(batch.GetTypeNames()) {
		return "type index out of range"
	}
	if env.GetSerializerId() != 0 {
		return "serializer is not protobuf"
	}
	name := batch.TypeNames[env.GetTypeId()]
	if !g.accepted[name] {
		return "type not accepted: " + name
	}
	if _, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name)); err != nil {
		return "type not linked in: " + name
	}
	return ""
}
