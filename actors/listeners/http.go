package listeners

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/metrics"
)

// clusterVersion is what etcd 3.4.23 reports as etcdcluster in /version.
const clusterVersion = "3.4.0"

// healthTimeout bounds the linearizable read /health makes, as etcd's.
const healthTimeout = time.Second

// sniffTimeout bounds how long a new client connection may take to send
// the first bytes that tell HTTP/2 (gRPC) from HTTP/1.x.
const sniffTimeout = 10 * time.Second

// http2Preface starts every HTTP/2 connection; gRPC clients speak HTTP/2
// without TLS, everything else on the client port is HTTP/1.x.
var http2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// versions is etcd's /version answer, fields in etcd's order.
type versions struct {
	Server  string `json:"etcdserver"`
	Cluster string `json:"etcdcluster"`
}

// newClientHTTPHandler serves etcd 3.4's HTTP endpoints of a client URL:
// /health, /version, /metrics, and /readyz and /livez as etcd 3.5 serves
// them (3.4 has neither).
func newClientHTTPHandler(state *memberview.View, kv *KV) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/health", healthHandler(state, kv))
	mux.Handle("/version", getOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		b, _ := json.Marshal(versions{Server: ServerVersion, Cluster: clusterVersion})
		_, _ = w.Write(b)
	})))
	mux.Handle("/metrics", metrics.Handler(kv.cfg.Raft))
	mux.Handle("/readyz", probeHandler(state, kv, "readyz"))
	mux.Handle("/livez", probeHandler(state, kv, "livez"))
	return cors(mux)
}

// newMetricsHTTPHandler serves a --listen-metrics-urls address: /metrics
// and /health, as etcd does there.
func newMetricsHTTPHandler(state *memberview.View, kv *KV) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/health", healthHandler(state, kv))
	mux.Handle("/metrics", metrics.Handler(kv.cfg.Raft))
	return mux
}

// cors sets the headers etcd's client HTTP handler sets on every answer.
func cors(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Headers", "accept, content-type, authorization")
		w.Header().Set("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		h.ServeHTTP(w, r)
	})
}

func getOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// healthy is etcd 3.4's health check: no alarm is active, a leader is
// known and a linearizable read (through raft) succeeds within a second.
func healthy(ctx context.Context, state *memberview.View, kv *KV) bool {
	if state.Alarms().Len() > 0 || state.Leader() == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	return kv.linearizableRead(ctx) == nil
}

// healthHandler answers {"health":"true"} with 200, or {"health":"false"}
// with 503, byte for byte as etcd 3.4 (which sends the failure with
// http.Error: a newline after it, and no reason; 3.5 added "reason").
func healthHandler(state *memberview.View, kv *KV) http.Handler {
	return getOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy(r.Context(), state, kv) {
			http.Error(w, `{"health":"false"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"health":"true"}`))
	}))
}

// probeHandler answers as etcd 3.5's /readyz and /livez: "ok" with 200, or
// "<name> check failed" with 503.
func probeHandler(state *memberview.View, kv *KV, name string) http.Handler {
	return getOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if name == "readyz" && !healthy(r.Context(), state, kv) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(name + " check failed\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
}

// connMux splits one listener into a gRPC and an HTTP/1.x listener by the
// first bytes of each connection, as etcd's cmux does: HTTP/2 goes to the
// native gRPC server, so the gRPC path is not slowed, the rest to net/http.
type connMux struct {
	root       net.Listener
	grpc, http *chanListener
}

func newConnMux(root net.Listener) *connMux {
	return &connMux{root: root, grpc: newChanListener(root.Addr()), http: newChanListener(root.Addr())}
}

// serve accepts until the root listener closes, then closes both halves.
func (m *connMux) serve() {
	defer m.grpc.Close()
	defer m.http.Close()
	for {
		c, err := m.root.Accept()
		if err != nil {
			return
		}
		go m.dispatch(c)
	}
}

func (m *connMux) dispatch(c net.Conn) {
	// Peeking leaves the bytes in the socket, so gRPC gets the *net.TCPConn
	// itself: gRPC reads a bare TCP connection without pinning a buffer per
	// connection, a wrapped one not (measured: ~5% of put throughput).
	if isHTTP2, ok := peekHTTP2(c); ok {
		to := m.http
		if isHTTP2 {
			to = m.grpc
		}
		to.deliver(c)
		return
	}
	isHTTP2, head, err := sniff(c)
	if err != nil {
		_ = c.Close()
		return
	}
	to := m.http
	if isHTTP2 {
		to = m.grpc
	}
	to.deliver(&sniffedConn{Conn: c, head: head})
}

// peekHTTP2 looks at the first bytes of a TCP connection without reading
// them (MSG_PEEK). ok is false when it could not decide (not TCP, or the
// preface arrives in pieces); the caller then reads them with sniff.
func peekHTTP2(c net.Conn) (isHTTP2, ok bool) {
	tc, isTCP := c.(*net.TCPConn)
	if !isTCP {
		return false, false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return false, false
	}
	if err := c.SetReadDeadline(time.Now().Add(sniffTimeout)); err != nil {
		return false, false
	}
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	buf := make([]byte, len(http2Preface))
	var n int
	var perr error
	err = raw.Read(func(fd uintptr) bool {
		n, _, perr = syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK)
		// Wait for the first bytes only: data already peeked does not make
		// the socket readable again.
		return perr != syscall.EAGAIN
	})
	if err != nil || perr != nil || n == 0 {
		return false, false
	}
	if !bytes.HasPrefix(http2Preface, buf[:n]) {
		return false, true // HTTP/1.x or anything else
	}
	if n == len(buf) {
		return true, true
	}
	return false, false // a piece of the preface: read it the slow way
}

// sniff reads until the bytes read either are the HTTP/2 preface or cannot
// begin it.
func sniff(c net.Conn) (isHTTP2 bool, head []byte, err error) {
	if err := c.SetReadDeadline(time.Now().Add(sniffTimeout)); err != nil {
		return false, nil, err
	}
	buf := make([]byte, len(http2Preface))
	n := 0
	for n < len(buf) {
		k, err := c.Read(buf[n:])
		n += k
		if !bytes.HasPrefix(http2Preface, buf[:n]) {
			break
		}
		if err != nil {
			return false, nil, err
		}
	}
	return bytes.Equal(buf[:n], http2Preface), buf[:n], c.SetReadDeadline(time.Time{})
}

// sniffedConn replays the sniffed bytes before reading on.
type sniffedConn struct {
	net.Conn
	head []byte
}

func (c *sniffedConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// chanListener is a net.Listener fed by connMux; closing it leaves the
// root listener alone.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// serveHTTP runs srv on lis until it is shut down.
func serveHTTP(srv *http.Server, lis net.Listener) error {
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
