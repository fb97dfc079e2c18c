// Package listeners is the listeners actor: it owns the member's client
// endpoints (the etcd v3 gRPC API and, on the same port, etcd's HTTP
// endpoints and JSON gateway on every --listen-client-urls address; /metrics and /health on
// every --listen-metrics-urls address; the actor API) and their serving
// goroutines, started in Started and stopped in Stopping, so a restart of
// the actor rebinds cleanly. What the endpoints answer is
// internal/etcdapi's; how they listen and what their servers take is
// internal/transport's. It also publishes this member's name and client
// URLs into the membership.
//
// Out: ListenersStarted to the parent once every endpoint accepts. A
// client endpoint that cannot be bound fails the actor with a ListenError.
package listeners

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/grpc"

	"github.com/troupedb/troupe/actors/actorapi"
	"github.com/troupedb/troupe/internal/authtoken"
	"github.com/troupedb/troupe/internal/etcdapi"
	"github.com/troupedb/troupe/internal/hublink"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/internal/transport"
	"github.com/troupedb/troupe/messages"
)

// Config of the listeners actor.
type Config struct {
	ClientURLs  []url.URL
	MetricsURLs []url.URL // --listen-metrics-urls
	// Bound holds client and metrics listeners the node bound before it
	// started (nil: none); the first Started serves on them, a restart binds
	// anew.
	Bound *transport.Bound
	// ClientHTTPURLs (--listen-client-http-urls), when set, serve the
	// HTTP endpoints, and ClientURLs serve gRPC only.
	ClientHTTPURLs []url.URL
	// Security of the client endpoints (gRPC and HTTP, the actor API) and
	// of connections to other members' client endpoints; nil is plaintext.
	Security *transport.Security
	// Socket are the options of the client and metrics listeners bound
	// here (--socket-reuse-address, --socket-reuse-port).
	Socket transport.SocketOpts
	// Raft proposes and reads through this member's raft actor; its view
	// is the member's read model.
	Raft *raftclient.Client
	// Hub finds the watch hub.
	Hub             *hublink.Link
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
	// GRPC are the gRPC server's stream and keep-alive limits; HTTP the
	// access rules of the HTTP endpoints; NoStrictReconfigCheck is
	// --strict-reconfig-check=false.
	GRPC                  transport.GRPCLimits
	HTTP                  etcdapi.HTTPOptions
	NoStrictReconfigCheck bool
	// WarningUnaryRequestDuration: slower unary requests are logged at warn.
	WarningUnaryRequestDuration time.Duration
	Logger                      *slog.Logger
	// Tokens, BcryptCost and ClientCertAuth are the auth settings of the
	// etcd API (see etcdapi.Config); Tokens belongs to the node.
	Tokens         authtoken.Provider
	BcryptCost     int
	ClientCertAuth bool
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
	api     *etcdapi.Services
	servers []*grpc.Server
	https   []*http.Server
	roots   []net.Listener  // client listeners, split by a transport.ConnMux
	done    []chan struct{} // one per serving goroutine
	actors  *actorapi.Server

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
	l.api = etcdapi.New(etcdapi.Config{
		Raft: l.cfg.Raft, Hub: l.cfg.Hub, Root: ctx.ActorSystem().Root,
		MaxRequestBytes: l.cfg.MaxRequestBytes, MaxTxnOps: l.cfg.MaxTxnOps, QuotaBytes: l.cfg.QuotaBytes,
		MinLeaseTTL:           l.cfg.MinLeaseTTL,
		WatchProgressInterval: l.cfg.WatchProgressInterval, ElectionTimeout: l.cfg.ElectionTimeout,
		Dialer: transport.Dialer{Security: l.cfg.Security}, Logger: l.log,
		HTTP: l.cfg.HTTP, NoStrictReconfigCheck: l.cfg.NoStrictReconfigCheck,
		WarningUnaryRequestDuration: l.cfg.WarningUnaryRequestDuration,
		Tokens:                      l.cfg.Tokens, BcryptCost: l.cfg.BcryptCost, ClientCertAuth: l.cfg.ClientCertAuth,
	})
	var grpcAddr net.Addr
	var grpcURL url.URL
	for _, u := range l.cfg.ClientURLs {
		if addr := l.serveClients(u); grpcAddr == nil {
			grpcAddr, grpcURL = addr, u
		}
	}
	for _, u := range l.cfg.ClientHTTPURLs {
		l.serveClientHTTP(u, grpcURL, grpcAddr)
	}
	for _, u := range l.cfg.MetricsURLs {
		l.serveMetrics(u)
	}
	if l.cfg.ActorAddress != "" {
		l.serveActorAPI()
	}
	l.startPublisher()
	ctx.Send(ctx.Parent(), &messages.ListenersStarted{})
}

// serveClients serves the etcd API on u: gRPC and HTTP on one port, or
// gRPC alone when --listen-client-http-urls serves HTTP elsewhere. It
// returns where u listens.
func (l *listeners) serveClients(u url.URL) net.Addr {
	lis := l.listen(u)
	srv := grpc.NewServer(append(l.api.ServerOptions(), transport.ServerOptions(l.cfg.Security.For(u), l.cfg.MaxRequestBytes, l.cfg.GRPC)...)...)
	l.api.Register(srv)
	if len(l.cfg.ClientHTTPURLs) > 0 {
		l.roots = append(l.roots, lis)
		l.servers = append(l.servers, srv)
		l.goServe(u, "grpc", func() error { return srv.Serve(lis) })
		l.log.Info("serving client grpc requests", "url", u.String())
		return lis.Addr()
	}
	mux := transport.NewConnMux(lis)
	handler, err := l.api.ClientHandler(u, lis.Addr())
	if err != nil {
		_ = lis.Close()
		l.stop()
		panic(&ListenError{URL: u.String(), Err: err})
	}
	l.roots = append(l.roots, lis)
	l.servers = append(l.servers, srv)
	l.goServe(u, "grpc", func() error { return srv.Serve(mux.GRPC()) })
	l.goServe(u, "http", l.newHTTPServer(mux.HTTP(), handler))
	l.goServe(u, "mux", func() error { mux.Serve(); return nil })
	l.log.Info("serving client requests", "url", u.String())
	return lis.Addr()
}

// serveClientHTTP serves the client HTTP endpoints (the JSON gateway,
// /health, /metrics, ...) alone on u (--listen-client-http-urls); the
// gateway calls the gRPC endpoint at grpcAddr.
func (l *listeners) serveClientHTTP(u url.URL, grpcURL url.URL, grpcAddr net.Addr) {
	lis := l.listen(u)
	handler, err := l.api.ClientHandler(grpcURL, grpcAddr)
	if err != nil {
		_ = lis.Close()
		l.stop()
		panic(&ListenError{URL: u.String(), Err: err})
	}
	l.goServe(u, "http", l.newHTTPServer(lis, handler))
	l.log.Info("serving client http requests", "url", u.String())
}

// serveMetrics serves /metrics and /health on u.
func (l *listeners) serveMetrics(u url.URL) {
	l.goServe(u, "http", l.newHTTPServer(l.listen(u), l.api.MetricsHandler()))
	l.log.Info("serving metrics", "url", u.String())
}

// listen binds u, or stops every endpoint and fails with a ListenError.
func (l *listeners) listen(u url.URL) net.Listener {
	if lis := l.cfg.Bound.Take(u); lis != nil {
		return lis
	}
	lis, err := transport.Listen(u, l.cfg.Security, l.cfg.Socket)
	if err != nil {
		l.stop()
		panic(&ListenError{URL: u.String(), Err: err})
	}
	return lis
}

// serveActorAPI starts the actor API on its own remote, serving the same
// KV, Lease and Watch services as the gRPC API.
func (l *listeners) serveActorAPI() {
	srv, err := actorapi.Serve(actorapi.ServeConfig{
		Address: l.cfg.ActorAddress, Security: l.cfg.Security, KV: l.api.KV(), Lease: l.api.Lease(), Watch: l.api.Watch(), MaxRequestBytes: l.cfg.MaxRequestBytes, Logger: l.cfg.Logger,
	})
	if err != nil {
		l.stop()
		panic(&ListenError{URL: l.cfg.ActorAddress, Err: err})
	}
	l.actors = srv
	l.log.Info("serving actor API", "address", srv.Address())
}

// startPublisher publishes this member's attributes on a goroutine that
// stop ends and waits for.
func (l *listeners) startPublisher() {
	l.publishStop, l.publishDone = make(chan struct{}), make(chan struct{})
	go func(api *etcdapi.Services, stop, done chan struct{}) {
		defer close(done)
		if err := api.PublishAttributes(l.cfg.Name, l.cfg.AdvertiseClientURLs, stop); err != nil {
			l.log.Debug("member attributes not published", "err", err)
			return
		}
		l.log.Info("published member attributes", "name", l.cfg.Name, "client-urls", l.cfg.AdvertiseClientURLs)
	}(l.api, l.publishStop, l.publishDone)
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
	mux := transport.NewHTTPMux(lis)
	if mux == nil {
		return func() error { return serveHTTP(srv, lis) }
	}
	// Over TLS the mux handshakes and checks each connection first; its
	// goroutine ends when srv's shutdown closes lis (the mux's root) and
	// is waited for here.
	return func() error {
		done := make(chan struct{})
		go func() { defer close(done); mux.Serve() }()
		err := serveHTTP(srv, &rootClosing{Listener: mux.HTTP(), root: lis})
		_ = lis.Close()
		<-done
		return err
	}
}

// rootClosing is the HTTP half of a mux whose Close also closes the
// mux's root listener, so that shutting srv down ends the mux too.
type rootClosing struct {
	net.Listener
	root net.Listener
}

func (r *rootClosing) Close() error {
	err := r.Listener.Close()
	_ = r.root.Close()
	return err
}

// serveHTTP runs srv on lis until it is shut down.
func serveHTTP(srv *http.Server, lis net.Listener) error {
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
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
	if l.api != nil {
		l.api.Drain() // streams end now; the graceful stop waits only for unary calls
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
	if l.api != nil {
		l.api.Close()
		l.api = nil
	}
	l.servers, l.https, l.roots, l.done = nil, nil, nil, nil
}
