// Package etcdapi is the etcd v3 API of a member as plain Go: the KV,
// Watch, Lease, Cluster, Maintenance and Auth gRPC services, the
// interceptors in front of them (metrics, panic recovery, the learner
// and require-leader gates) and etcd's HTTP endpoints
// (/health, /version, /metrics, /readyz, /livez) and its JSON gateway
// (/v3/kv/range and the rest, see newGateway). It owns no listener,
// server or serving goroutine: the listeners actor builds the servers
// (with internal/transport), registers the services on them and starts
// and stops them; the actor API (actors/actorapi) serves the same KV,
// Lease and Watch values.
//
// Contract:
//   - Every method runs on gRPC or HTTP goroutines, concurrently. Writes
//     go through raft (raftclient.Client.Propose) and return once the
//     applier applied them; linearizable reads take a shared read index
//     and then read the backend on the caller's goroutine; nothing waits
//     in an actor's mailbox behind writes.
//   - Answers and errors are etcd 3.6.8's, byte for byte where clients
//     look (rpctypes errors, response headers, HTTP bodies); the version
//     troupe reports is internal/etcdversion's. A few error texts
//     still begin with "listeners:", the package these services came from;
//     they are kept as clients have seen them.
//   - Keep-alives and time-to-live requests on a follower, and a
//     MemberPromote, are forwarded to the leader's client endpoint over
//     gRPC (Config.Dialer), with the request's auth token; Close drops
//     those connections, after the servers stopped.
//   - Auth as etcd 3.6.8 (see Authenticator): a request's user comes from
//     its token or, with --client-cert-auth, its certificate's CN; what
//     is served here without raft is checked here (Range, read-only Txn,
//     Watch, LeaseTimeToLive with keys, admin-only Maintenance and
//     Cluster calls), proposals carry the user and auth revision and the
//     applier checks them. Beyond etcd, a watch is checked again when the
//     auth state changes (watchauth.go), and passwords are hashed and
//     checked a bounded number at a time (Auth).
package etcdapi

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/troupedb/troupe/internal/authtoken"
	"github.com/troupedb/troupe/internal/hublink"
	"github.com/troupedb/troupe/internal/metrics"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/internal/transport"
)

// Config of the services.
type Config struct {
	// Raft proposes and reads through this member's raft actor; its view
	// is the member's read model.
	Raft *raftclient.Client
	// Hub finds the watch hub; Root sends to it.
	Hub             *hublink.Link
	Root            *actor.RootContext
	MaxRequestBytes int
	MaxTxnOps       int
	QuotaBytes      int64 // <= 0: no quota
	// MinLeaseTTL is the smallest TTL granted, in seconds (etcd: 1.5
	// election timeouts rounded up).
	MinLeaseTTL int64
	// WatchProgressInterval is --experimental-watch-progress-notify-interval
	// (0: etcd's 10 minutes); ElectionTimeout paces the no-leader check of
	// watch streams (0: one second).
	WatchProgressInterval time.Duration
	ElectionTimeout       time.Duration
	// Dialer connects to the leader's client endpoint, for what a
	// follower forwards.
	Dialer transport.Dialer
	// WarningUnaryRequestDuration is etcd's --warning-unary-request-duration:
	// a unary request slower than it is logged at warn; 0 turns it off.
	WarningUnaryRequestDuration time.Duration
	// NoStrictReconfigCheck is --strict-reconfig-check=false (see Cluster).
	NoStrictReconfigCheck bool
	// HTTP is what the HTTP endpoints allow (CORS, hosts, pprof).
	HTTP HTTPOptions
	// Logger reports panics recovered while serving a request.
	Logger *slog.Logger

	// Tokens issues and checks auth tokens (--auth-token); nil: none is
	// ever valid. BcryptCost is --bcrypt-cost. ClientCertAuth is
	// --client-cert-auth: a verified client certificate's common name is
	// the user of a request without a token.
	Tokens         authtoken.Provider
	BcryptCost     int
	ClientCertAuth bool
}

// Services are the etcd API services of one member.
type Services struct {
	cfg Config
	// stopping is closed by Drain: the streams end so that a graceful
	// stop of the servers does not wait for clients to hang up.
	stopping    chan struct{}
	drainOnce   sync.Once
	kv          *KV
	lease       *Lease
	watch       *Watch
	maintenance *Maintenance
	cluster     *Cluster
	auth        *Auth

	// gateways are the connections of the JSON gateways to this member's
	// own client endpoints (one per client listener); Close closes them.
	gatewaysMu sync.Mutex
	gateways   []*grpc.ClientConn
}

// New returns the services; Close them after the servers they are
// registered on stopped.
func New(cfg Config) *Services {
	authn := NewAuthenticator(cfg.Raft.View(), cfg.Tokens, cfg.ClientCertAuth, cfg.Logger)
	kv := NewKV(KVConfig{
		Raft: cfg.Raft, MaxRequestBytes: cfg.MaxRequestBytes, MaxTxnOps: cfg.MaxTxnOps,
		QuotaBytes: cfg.QuotaBytes, Auth: authn,
	})
	progress, election := cfg.WatchProgressInterval, cfg.ElectionTimeout
	if progress <= 0 {
		progress = 10 * time.Minute // etcd's default
	}
	if election <= 0 {
		election = time.Second
	}
	stopping := make(chan struct{})
	lease := NewLease(kv, cfg.MinLeaseTTL, cfg.Dialer)
	lease.stopping = stopping
	return &Services{
		cfg:      cfg,
		stopping: stopping,
		kv:       kv,
		lease:    lease,
		watch: NewWatch(WatchConfig{
			Raft: cfg.Raft, Hub: cfg.Hub, Root: cfg.Root, MaxRequestBytes: cfg.MaxRequestBytes,
			ProgressInterval: progress, ElectionTimeout: election, Stopping: stopping, Auth: authn,
		}),
		maintenance: &Maintenance{KV: kv},
		cluster: &Cluster{
			View: cfg.Raft.View(), Backend: memberBackend{raft: cfg.Raft},
			RequestTimeout: cfg.Raft.RequestTimeout(), dial: cfg.Dialer,
			NoStrictReconfigCheck: cfg.NoStrictReconfigCheck, Auth: authn,
		},
		auth: NewAuth(AuthConfig{
			KV: kv, Authenticator: authn, Tokens: authn.tokens, BcryptCost: cfg.BcryptCost,
			Hashers: bcryptHashers(), Logger: cfg.Logger,
		}),
	}
}

// KV is the KV service.
func (s *Services) KV() *KV { return s.kv }

// Lease is the Lease service.
func (s *Services) Lease() *Lease { return s.lease }

// Watch is the Watch service.
func (s *Services) Watch() *Watch { return s.watch }

// Auth is the Auth service.
func (s *Services) Auth() *Auth { return s.auth }

// bcryptHashers is how many bcrypt computations run at once: half the
// cores (at least one), so password checks never take the whole member.
func bcryptHashers() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// ServerOptions are the interceptors a gRPC server of these services
// needs: metrics, panic recovery, and the learner and require-leader gates;
// and the codec that writes watch events encoded once (watchencode.go).
func (s *Services) ServerOptions() []grpc.ServerOption {
	// A panic while serving one request (a bug, or input nothing checked)
	// fails that request with Internal and is logged; it must not take the
	// process down, as an unrecovered panic on a gRPC goroutine would.
	recovered := recovery.WithRecoveryHandler(func(p any) error {
		s.cfg.Logger.Error("panic serving a request", "panic", p, "stack", string(debug.Stack()))
		return status.Errorf(codes.Internal, "troupe: internal error: %v", p)
	})
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(logSlowUnary(s.logger(), s.cfg.WarningUnaryRequestDuration),
			metrics.UnaryServerInterceptor, recovery.UnaryServerInterceptor(recovered), unaryGate(s.cfg.Raft.View())),
		grpc.ChainStreamInterceptor(metrics.StreamServerInterceptor, recovery.StreamServerInterceptor(recovered), streamGate(s.cfg.Raft.View())),
		watchServerOption(),
	}
}

func (s *Services) logger() *slog.Logger {
	if s.cfg.Logger == nil {
		return slog.Default()
	}
	return s.cfg.Logger
}

// Register registers the services, and gRPC's health service (serving),
// on srv, a server built with ServerOptions.
func (s *Services) Register(srv *grpc.Server) {
	pb.RegisterKVServer(srv, s.kv)
	pb.RegisterLeaseServer(srv, s.lease)
	pb.RegisterWatchServer(srv, s.watch)
	pb.RegisterMaintenanceServer(srv, s.maintenance)
	pb.RegisterClusterServer(srv, s.cluster)
	pb.RegisterAuthServer(srv, s.auth)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
}

// ClientHandler serves etcd's HTTP endpoints of the client listener at
// addr, its JSON gateway (/v3/...) among them, which calls the gRPC
// services through a connection to addr (made lazily; Close closes it),
// over TLS when grpcURL, the URL addr serves, is https.
func (s *Services) ClientHandler(grpcURL url.URL, addr net.Addr) (http.Handler, error) {
	if s.cfg.HTTP.NoGateway {
		return newClientHTTPHandler(s.cfg.Raft.View(), s.kv, nil, s.cfg.HTTP), nil
	}
	conn, err := s.cfg.Dialer.For(grpcURL).DialSelf(addr)
	if err != nil {
		return nil, fmt.Errorf("etcdapi: gateway connection to %s: %w", addr, err)
	}
	gateway, err := newGateway(conn)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("etcdapi: gateway: %w", err)
	}
	s.gatewaysMu.Lock()
	s.gateways = append(s.gateways, conn)
	s.gatewaysMu.Unlock()
	return newClientHTTPHandler(s.cfg.Raft.View(), s.kv, gateway, s.cfg.HTTP), nil
}

// MetricsHandler serves a --listen-metrics-urls address.
func (s *Services) MetricsHandler() http.Handler {
	return newMetricsHTTPHandler(s.cfg.Raft.View(), s.kv)
}

// PublishAttributes makes this member's name and client URLs part of the
// membership through raft; it returns once they are, or with an error
// once stop is closed.
func (s *Services) PublishAttributes(name string, clientURLs []string, stop <-chan struct{}) error {
	return publishAttributes(s.kv, name, clientURLs, stop)
}

// Close drops the connections to other members and the gateways'
// connections to this one.
func (s *Services) Close() {
	s.lease.Close()
	s.gatewaysMu.Lock()
	defer s.gatewaysMu.Unlock()
	for _, conn := range s.gateways {
		_ = conn.Close()
	}
	s.gateways = nil
}

// Drain ends every Watch and LeaseKeepAlive stream with etcd's "server
// stopped" (Unavailable: clientv3 reconnects, to another member if it
// has one), as etcd's streams end when its server stops. Call it before
// stopping the servers gracefully; unary calls in flight still finish.
func (s *Services) Drain() { s.drainOnce.Do(func() { close(s.stopping) }) }
