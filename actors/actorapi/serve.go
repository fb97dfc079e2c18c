package actorapi

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/troupedb/troupe/internal/metrics"
	"github.com/troupedb/troupe/internal/transport"
)

// EndpointName is the name the endpoint is spawned under: clients address
// it as actor.NewPID(address, EndpointName).
const EndpointName = "kv"

// DefaultMaxMessageBytes is the gRPC send and receive limit of the remote
// Serve starts. gRPC's limit applies to a whole remote batch (up to 1000
// messages), so it is far above MaxRequestBytes.
const DefaultMaxMessageBytes = transport.DefaultMaxMessageBytes

// DefaultAcceptedTypes are the message types a served endpoint takes from
// remote peers: the actor API request, and what remote watches need.
var DefaultAcceptedTypes = []string{
	"troupe.v1.KVRequest",
	"troupe.v1.LeaseRequest",
	"troupe.v1.WatchRequest",
	"troupe.v1.WatchAck",
	"actor.Watch",
	"actor.Unwatch",
	"actor.Terminated",
}

// ServeConfig configures Serve.
type ServeConfig struct {
	// Address to listen on, host:port; port 0 picks a free port (see
	// Server.Address).
	Address string
	// Security of the remote (its listener and its connections to the
	// remotes of clients); nil is plaintext.
	Security *transport.Security
	// KV executes the operations; required.
	KV etcdserverpb.KVServer
	// Lease executes lease requests; nil refuses them.
	Lease LeaseService
	// Watch serves watch sessions; nil refuses them.
	Watch etcdserverpb.WatchServer
	// MaxRequestBytes, MaxInFlight and DrainTimeout: see Config.
	MaxRequestBytes int
	MaxInFlight     int
	DrainTimeout    time.Duration
	// MaxMessageBytes is the gRPC send/receive limit of the remote, for
	// both directions. Zero means DefaultMaxMessageBytes.
	MaxMessageBytes int
	// AcceptedTypes are the protobuf message names remote peers may send;
	// anything else is dropped before it reaches protoactor. Nil means
	// DefaultAcceptedTypes.
	AcceptedTypes []string
	// LeaveGRPCLogger keeps the discarding gRPC logger Remote.Start
	// installs instead of calling SetGRPCLogger(Logger): for a process that
	// sets gRPC's logger itself, once all its remotes have started.
	LeaveGRPCLogger bool
	// Logger for the actor system, the endpoint, the guard and gRPC's own
	// errors; nil means slog.Default().
	Logger *slog.Logger
}

// Server is a running actor API: an actor system of its own, its remote,
// and the endpoint.
type Server struct {
	system   *actor.ActorSystem
	remote   *remote.Remote
	endpoint *actor.PID
	guard    *transport.Guard
	stopOnce sync.Once
}

// Serve starts an actor system with a remote listening at cfg.Address and
// spawns the endpoint (Props) in it as EndpointName. Inbound remote traffic
// passes the guard (transport.Guard) first, so malformed or foreign
// messages are dropped instead of crashing the process, and each request
// is stamped with its connection's verified certificate CN
// (StampCertUser), whatever cert_user its sender put.
func Serve(cfg ServeConfig) (*Server, error) {
	if cfg.KV == nil {
		return nil, errors.New("actorapi: ServeConfig.KV is nil")
	}
	host, port, err := transport.SplitHostPort(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("actorapi: address %q: %w", cfg.Address, err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	accepted := cfg.AcceptedTypes
	if accepted == nil {
		accepted = DefaultAcceptedTypes
	}

	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	r, g := transport.NewRemote(system, host, port, transport.RemoteConfig{
		Security: cfg.Security, MaxMessageBytes: cfg.MaxMessageBytes, AcceptedTypes: accepted,
		Stamp:       StampCertUser,
		GuardLogger: logger.With("actor", "actorapi", "part", "guard"),
	})
	if err := transport.StartRemote(r); err != nil {
		return nil, fmt.Errorf("actorapi: listen on %s: %w", cfg.Address, err)
	}
	// Remote.Start silenced gRPC's logger for the whole process (etcd's
	// gRPC server included); put back one that reports errors. Like
	// Remote.Start's own call, this races with gRPC code already running
	// in the process (grpclog.SetLoggerV2 is a plain global write).
	if !cfg.LeaveGRPCLogger {
		transport.SetGRPCLogger(logger)
	}

	pid, err := system.Root.SpawnNamed(Props(Config{
		KV:              cfg.KV,
		Lease:           cfg.Lease,
		Watch:           cfg.Watch,
		MaxRequestBytes: cfg.MaxRequestBytes,
		MaxInFlight:     cfg.MaxInFlight,
		DrainTimeout:    cfg.DrainTimeout,
		StampedCertUser: true,
		Logger:          logger,
	}).Configure(metrics.Mailbox("actorapi")), EndpointName)
	if err != nil {
		r.Shutdown(false)
		return nil, fmt.Errorf("actorapi: spawn endpoint: %w", err)
	}
	return &Server{guard: g, system: system, remote: r, endpoint: pid}, nil
}

// DialOptions are the remote dial options a program calling the actor API
// gives its own remote: plaintext transport and the given send/receive
// limit (remote.WithDialOptions replaces protoactor's defaults, so the
// transport credentials must be repeated), so that large replies are not
// refused on its side. Same as transport.RemoteDialOptions, for programs
// outside this module.
func DialOptions(maxMessageBytes int) []grpc.DialOption {
	return transport.RemoteDialOptions(nil, maxMessageBytes)
}

// SetGRPCLogger is transport.SetGRPCLogger, for programs outside this
// module: call it after Remote.Start, which silences gRPC's logger.
func SetGRPCLogger(logger *slog.Logger) { transport.SetGRPCLogger(logger) }

// Address is the host:port the server listens on, with the real port when
// ServeConfig.Address asked for port 0.
func (s *Server) Address() string { return s.system.ProcessRegistry.Address }

// PID of the endpoint.
func (s *Server) PID() *actor.PID { return s.endpoint }

// System is the server's own actor system.
func (s *Server) System() *actor.ActorSystem { return s.system }

// Stop stops the endpoint (cancelling and draining running operations,
// whose replies still go out) and then the remote. ActorSystem.Shutdown
// alone would leave the actors running. Later calls do nothing.
func (s *Server) Stop() { s.stopOnce.Do(s.stop) }

func (s *Server) stop() {
	if err := s.system.Root.StopFuture(s.endpoint).Wait(); err != nil {
		s.system.Logger().Error("stopping actor api endpoint", "error", err)
	}
	s.guard.Settle()
	transport.ShutdownRemote(s.remote, s.system.Logger())
	s.system.Shutdown()
}
