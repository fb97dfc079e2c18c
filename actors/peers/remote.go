package peers

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/troupedb/troupe/internal/transport"
)

// MaxMessageBytes is the gRPC send and receive limit of the peer remote,
// for both directions. gRPC's limit applies to a whole remote batch
// (endpointWriterBatchSize messages), so it is far above raft's
// MaxSizePerMsg and the snapshot chunk size.
const MaxMessageBytes = transport.DefaultMaxMessageBytes

// endpointWriterBatchSize bounds the messages protoactor puts in one gRPC
// message (its default is 1000): with raft appends of up to ~1 MiB and
// snapshot chunks of 512 KiB, 64 stay well under MaxMessageBytes.
const endpointWriterBatchSize = 64

// AcceptedTypes are the protobuf message names the peer remote takes from
// other members; anything else is dropped by the guard (transport.Guard)
// before it reaches protoactor's reader. DeadLetterResponse is what a remote
// answers a request to an actor it does not have (a probe of a member
// whose inbox is not up).
var AcceptedTypes = []string{
	"troupe.v1.RaftEnvelope",
	"troupe.v1.SnapshotChunk",
	"troupe.v1.SnapshotChunkAck",
	"troupe.v1.GetPeerStatus",
	"troupe.v1.PeerStatus",
	"troupe.v1.GetMembers",
	"troupe.v1.Members",
	"troupe.v1.GetHashKV",
	"troupe.v1.HashKV",
	"actor.DeadLetterResponse",
}

// StartRemote starts the peer remote of system, listening on address
// (host:port of --listen-peer-urls; port 0 picks a free one, see
// system.Address()). Call it before spawning any actor other members must
// reach. Inbound traffic passes the guard with AcceptedTypes. Remote.Start
// silences gRPC's logger process-wide; StartRemote puts back one that
// reports errors to logger (transport.SetGRPCLogger). sec secures the
// remote's listener and its connections to other members; nil is
// plaintext. A write to another member that blocks longer than
// writeTimeout (--raft-write-timeout; 0: none) fails its connection.
//
// opts are applied after StartRemote's own remote options, e.g.
// remote.WithAdvertisedHost("10.0.0.1:2380") when listening on 0.0.0.0.
// Stop it with Shutdown(true) after the actor tree has stopped.
func StartRemote(system *actor.ActorSystem, address string, sec *transport.Security, writeTimeout time.Duration, logger *slog.Logger, opts ...remote.ConfigOption) (*remote.Remote, error) {
	if logger == nil {
		logger = slog.Default()
	}
	host, port, err := transport.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("peers: listen address %q: %w", address, err)
	}
	all := append([]remote.ConfigOption{remote.WithEndpointWriterBatchSize(endpointWriterBatchSize)}, opts...)
	r, _ := transport.NewRemote(system, host, port, transport.RemoteConfig{
		Security: sec, MaxMessageBytes: MaxMessageBytes, AcceptedTypes: AcceptedTypes,
		GuardLogger: logger.With("actor", "peers", "part", "guard"), WriteTimeout: writeTimeout,
	}, all...)
	if err := transport.StartRemote(r); err != nil {
		return nil, fmt.Errorf("peers: listen on %s: %w", address, err)
	}
	transport.SetGRPCLogger(logger)
	return r, nil
}
