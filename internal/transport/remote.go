package transport

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
)

// DefaultMaxMessageBytes is the gRPC send and receive limit of the
// remotes NewRemote configures. gRPC's limit applies to a whole remote
// batch (up to 1000 messages), so it is far above --max-request-bytes,
// raft's MaxSizePerMsg and the snapshot chunk size.
const DefaultMaxMessageBytes = 256 << 20

// endpointWriterQueueSize is the initial length of the queue of each of a
// remote's endpoint writers (one per remote it sends to). protoactor's
// default, 1,000,000 slots, is 16 MB allocated up front per connected
// remote: two thirds of a leader's live heap with two peers (measured,
// 30.5 MB of 61 MB). The queue is a ring that doubles when full and never
// drops, so this number is the memory it starts with, not a limit; the
// writer takes up to its batch size per gRPC message and raft keeps at
// most a few hundred messages in flight to a member, so it rarely grows.
const endpointWriterQueueSize = 1024

// remoteWindowBytes is the HTTP/2 flow-control window of a remote's
// connections and streams, on the receiving side of both the listener
// and the dialed connections. Set explicitly, it turns gRPC's bandwidth
// estimation off: left on, the receiver of a remote stream answered
// nearly every data frame (one raft envelope) with a BDP ping and
// window updates, and the sender read them: on a leader under 256
// clients, 223 reads of control frames on its two outgoing peer
// connections for 273 writes of envelopes. 16 MiB is the largest window
// that estimation could grow to, so a member far away (a high
// bandwidth-delay product) is not held back more than before; a window
// update goes out once per 4 MiB received. It bounds what a stream may
// buffer unread on the receiver, not what is allocated up front.
const remoteWindowBytes = 16 << 20

// RemoteConfig configures a protoactor remote's transport.
type RemoteConfig struct {
	// Security of the remote's listener and of its connections to other
	// remotes; nil is plaintext.
	Security *Security
	// MaxMessageBytes is the gRPC send/receive limit, for both directions
	// and both the server and the dialing side. Zero means
	// DefaultMaxMessageBytes.
	MaxMessageBytes int
	// AcceptedTypes are the protobuf full names (e.g.
	// "troupe.v1.RaftEnvelope") remote peers may send; the Guard drops
	// anything else before protoactor's reader sees it.
	AcceptedTypes []string
	// Stamp, when set, marks every accepted message with the verified
	// client certificate CN of its connection (see Stamp); the actor API
	// sets it, the peers do not.
	Stamp Stamp
	// GuardLogger logs what the guard drops and the panics it recovers.
	GuardLogger *slog.Logger
	// WriteTimeout, when positive, fails a write to another remote that
	// blocks longer (etcd's --raft-write-timeout); the connection is then
	// closed and protoactor dials again. Every message a remote sends
	// goes out on a connection it dialed, so this covers them all; its
	// listener (protoactor's own) only answers the connection handshake.
	WriteTimeout time.Duration
}

// NewRemote returns system's remote listening on host:port (port 0 picks a
// free one), not started: its server takes cfg's limits and puts a Guard
// in front of protoactor's reader, its connections to other remotes use
// RemoteDialOptions. extra options are applied after these (e.g.
// remote.WithAdvertisedHost). Start it with StartRemote, stop it with
// ShutdownRemote after the actors that use it.
func NewRemote(system *actor.ActorSystem, host string, port int, cfg RemoteConfig, extra ...remote.ConfigOption) (*remote.Remote, *Guard) {
	maxBytes := cfg.MaxMessageBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxMessageBytes
	}
	g := newGuard(cfg.AcceptedTypes, cfg.Stamp, cfg.GuardLogger)
	serverOpts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxBytes),
		grpc.MaxSendMsgSize(maxBytes),
		grpc.StaticStreamWindowSize(remoteWindowBytes),
		grpc.StaticConnWindowSize(remoteWindowBytes),
	}, g.serverOptions()...)
	serverOpts = append(serverOpts, cfg.Security.serverOptions()...)
	dialOpts := append(RemoteDialOptions(cfg.Security, maxBytes),
		grpc.WithStaticStreamWindowSize(remoteWindowBytes),
		grpc.WithStaticConnWindowSize(remoteWindowBytes),
	)
	if cfg.WriteTimeout > 0 {
		dialOpts = append(dialOpts, writeTimeoutDialer(cfg.WriteTimeout))
	}
	opts := append([]remote.ConfigOption{
		remote.WithServerOptions(serverOpts...),
		remote.WithDialOptions(dialOpts...),
		remote.WithEndpointWriterQueueSize(endpointWriterQueueSize),
	}, extra...)
	return remote.NewRemote(system, remote.Configure(host, port, opts...)), g
}

// RemoteDialOptions are a remote's dial options: sec's transport
// credentials and the given send/receive limit (remote.WithDialOptions
// replaces protoactor's defaults, so the credentials must be repeated).
// A program that calls a remote uses the same, so that large replies are
// not refused on its side.
func RemoteDialOptions(sec *Security, maxMessageBytes int) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(sec.dialCredentials()),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessageBytes),
			grpc.MaxCallSendMsgSize(maxMessageBytes),
		),
	}
}

// StartRemote starts r, turning the panic Remote.Start raises when it
// cannot listen into an error. Remote.Start silences gRPC's logger for the
// whole process: call SetGRPCLogger after it.
func StartRemote(r *remote.Remote) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	r.Start()
	return nil
}

// CallerRemoteOptions are the options of a program's own remote that
// calls a member's remote (the actor API): the send/receive limit both
// ways and sec's TLS on its listener too, since the member answers by
// dialing the caller's remote back. nil sec is plaintext.
func CallerRemoteOptions(sec *Security, maxMessageBytes int) []remote.ConfigOption {
	serverOpts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMessageBytes),
		grpc.MaxSendMsgSize(maxMessageBytes),
	}, sec.serverOptions()...)
	return []remote.ConfigOption{
		remote.WithServerOptions(serverOpts...),
		remote.WithDialOptions(RemoteDialOptions(sec, maxMessageBytes)...),
		remote.WithEndpointWriterQueueSize(endpointWriterQueueSize),
	}
}
