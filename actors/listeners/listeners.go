// Package listeners is the listeners actor: it owns the member's client
// endpoints (the etcd v3 gRPC API and, on the same port, etcd's HTTP
// endpoints on every --listen-client-urls address; /metrics and /health on
// every --listen-metrics-urls address) and their serving goroutines, started in Started and stopped in Stopping,
// so a restart of the actor rebinds cleanly.
//
// Out: ListenersStarted to the parent once every endpoint accepts.
package listeners

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/troupedb/troupe/actors/actorapi"
	"github.com/troupedb/troupe/actors/watchers"
	"github.com/troupedb/troupe/internal/metrics"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/internal/transport"
	"github.com/troupedb/troupe/messages"
)

// Config of the listeners actor.
type Config struct {
	ClientURLs  []url.URL
	MetricsURLs []url.URL // --listen-metrics-urls
	// Security of the client endpoints (gRPC and HTTP, the actor API) and
	// of connections to other members' client endpoints; nil is plaintext.
	Security *transport.Security
	// Raft proposes and reads through this member's raft actor; its view
	// is the member's read model.
	Raft *raftclient.Client
	// Hub finds the watch hub.
	Hub             *watchers.Link
	MaxRequestBytes int
	MaxTxnOps       int
	QuotaBytes      int64 // <= 0: no quota
	// MinLeaseTTL is the smallest TTL granted, in seconds (etcd: 1.5
	// election timeouts rounded up).
	MinLeaseTTL int64
	// ActorAddress is where the actor API listens (host:port, protoactor
	// remote); empty disables it.
	ActorAddress string
	// Name and AdvertiseClientURLs are published into the membership.
	Name                string
	AdvertiseClientURLs []string
	// WatchProgressInterval is --experimental-watch-progress-notify-interval;
	// ElectionTimeout paces the no-leader check of watch streams.
	WatchProgressInterval time.Duration
	ElectionTimeout       time.Duration
	Logger                *slog.Logger
}

// ListenError is a client endpoint that cannot be bound: restarting will not
// help, the node stops with it.
type ListenError struct {
	URL string
	Err error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("listen on %s: %v (fix: free the port or change --listen-client-urls / --listen-actor-url)", e.URL, e.Err)
}
func (e *ListenError) Unwrap() error { return e.Err }

// Props returns the listeners actor's props.
func Props(cfg Config) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor { return &listeners{cfg: cfg} })
}

type listeners struct {
	cfg     Config
	log     *slog.Logger
	servers []*grpc.Server
	https   []*http.Server
	roots   []net.Listener  // client listeners, split by connMux
	done    []chan struct{} // one per serving goroutine
	actors  *actorapi.Server
	root    *actor.RootContext
	lease   *Lease

	publishStop, publishDone chan struct{} // the attribute publisher goroutine
}

// Receive dispatches on the message type.
func (l *listeners) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		l.handleStarted(ctx)
	case *actor.Stopping, *actor.Restarting:
		l.stop()
	case *actor.Stopped:
	default:
		l.log.Warn("unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (l *listeners) handleStarted(ctx actor.Context) {
	l.log = l.cfg.Logger.With("actor", "listeners", "member", l.cfg.Raft.View().MemberID)
	l.root = ctx.ActorSystem().Root
	kv := NewKV(KVConfig{
		Raft: l.cfg.Raft, MaxRequestBytes: l.cfg.MaxRequestBytes, MaxTxnOps: l.cfg.MaxTxnOps,
		QuotaBytes: l.cfg.QuotaBytes,
	})
	l.lease = NewLease(kv, l.cfg.MinLeaseTTL, l.dialer())
	for _, u := range l.cfg.ClientURLs {
		lis, err := transport.Listen(u, l.cfg.Security)
		if err != nil {
			l.stop()
			panic(&ListenError{URL: u.String(), Err: err})
		}
		mux := transport.NewConnMux(lis)
		srv := l.newGRPCServer(kv)
		l.roots = append(l.roots, lis)
		l.servers = append(l.servers, srv)
		l.goServe(u, "grpc", func() error { return srv.Serve(mux.GRPC()) })
		l.goServe(u, "http", l.newHTTPServer(mux.HTTP(), newClientHTTPHandler(l.cfg.Raft.View(), kv)))
		l.goServe(u, "mux", func() error { mux.Serve(); return nil })
		l.log.Info("serving client requests", "url", u.String())
	}
	for _, u := range l.cfg.MetricsURLs {
		lis, err := transport.Listen(u, l.cfg.Security)
		if err != nil {
			l.stop()
			panic(&ListenError{URL: u.String(), Err: err})
		}
		l.goServe(u, "http", l.newHTTPServer(lis, newMetricsHTTPHandler(l.cfg.Raft.View(), kv)))
		l.log.Info("serving metrics", "url", u.String())
	}
	if l.cfg.ActorAddress != "" {
		srv, err := actorapi.Serve(actorapi.ServeConfig{
			Address: l.cfg.ActorAddress, Security: l.cfg.Security, KV: kv, Lease: l.lease, Watch: l.newWatch(), MaxRequestBytes: l.cfg.MaxRequestBytes, Logger: l.cfg.Logger,
		})
		if err != nil {
			l.stop()
			panic(&ListenError{URL: l.cfg.ActorAddress, Err: err})
		}
		l.actors = srv
		l.log.Info("serving actor API", "address", srv.Address())
	}
	l.publishStop, l.publishDone = make(chan struct{}), make(chan struct{})
	go func(stop, done chan struct{}) {
		defer close(done)
		if err := publishAttributes(kv, l.cfg.Name, l.cfg.AdvertiseClientURLs, stop); err != nil {
			l.log.Debug("member attributes not published", "err", err)
			return
		}
		l.log.Info("published member attributes", "name", l.cfg.Name, "client-urls", l.cfg.AdvertiseClientURLs)
	}(l.publishStop, l.publishDone)
	ctx.Send(ctx.Parent(), &messages.ListenersStarted{})
}

// goServe runs serve on a goroutine that stop waits for.
func (l *listeners) goServe(u url.URL, what string, serve func() error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := serve(); err != nil {
			l.log.Error(what+" serve", "url", u.String(), "err", err)
		}
	}()
	l.done = append(l.done, done)
}

// newHTTPServer returns the serving function of an HTTP server on lis.
func (l *listeners) newHTTPServer(lis net.Listener, h http.Handler) func() error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	l.https = append(l.https, srv)
	return func() error { return serveHTTP(srv, lis) }
}

func (l *listeners) newGRPCServer(kv *KV) *grpc.Server {
	// A panic while serving one request (a bug, or input nothing checked)
	// fails that request with Internal and is logged; it must not take the
	// process down, as an unrecovered panic on a gRPC goroutine would.
	recovered := recovery.WithRecoveryHandler(func(p any) error {
		l.log.Error("panic serving a request", "panic", p, "stack", string(debug.Stack()))
		return status.Errorf(codes.Internal, "troupe: internal error: %v", p)
	})
	srv := grpc.NewServer(append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(metrics.UnaryServerInterceptor, recovery.UnaryServerInterceptor(recovered), unaryGate(l.cfg.Raft.View())),
		grpc.ChainStreamInterceptor(metrics.StreamServerInterceptor, recovery.StreamServerInterceptor(recovered), streamGate(l.cfg.Raft.View())),
	}, transport.ServerOptions(l.cfg.Security, l.cfg.MaxRequestBytes)...)...)
	pb.RegisterKVServer(srv, kv)
	pb.RegisterLeaseServer(srv, l.lease)
	pb.RegisterWatchServer(srv, l.newWatch())
	pb.RegisterMaintenanceServer(srv, &Maintenance{KV: kv})
	pb.RegisterClusterServer(srv, &Cluster{View: l.cfg.Raft.View(), Backend: memberBackend{raft: l.cfg.Raft}, RequestTimeout: l.cfg.Raft.RequestTimeout(), dial: l.dialer()})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	return srv
}

// dialer connects to other members' client endpoints.
func (l *listeners) dialer() transport.Dialer { return transport.Dialer{Security: l.cfg.Security} }

func (l *listeners) newWatch() *Watch {
	progress, election := l.cfg.WatchProgressInterval, l.cfg.ElectionTimeout
	if progress <= 0 {
		progress = 10 * time.Minute // etcd's default
	}
	if election <= 0 {
		election = time.Second
	}
	return NewWatch(WatchConfig{
		Raft: l.cfg.Raft, Hub: l.cfg.Hub, Root: l.root, MaxRequestBytes: l.cfg.MaxRequestBytes,
		ProgressInterval: progress, ElectionTimeout: election,
	})
}

// stop closes every endpoint and waits for its serving goroutine.
func (l *listeners) stop() {
	if l.publishStop != nil {
		close(l.publishStop)
		<-l.publishDone
		l.publishStop = nil
	}
	if l.actors != nil {
		l.actors.Stop()
		l.actors = nil
	}
	for _, srv := range l.servers {
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			srv.Stop() // streams that do not end on their own
		}
	}
	for _, srv := range l.https {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close()
		}
		cancel()
	}
	for _, lis := range l.roots {
		_ = lis.Close()
	}
	for _, done := range l.done {
		<-done
	}
	if l.lease != nil {
		l.lease.Close()
		l.lease = nil
	}
	l.servers, l.https, l.roots, l.done = nil, nil, nil, nil
}
