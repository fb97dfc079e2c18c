package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"sync"
	"syscall"
	"time"
)

// sniffTimeout bounds how long a new client connection may take to send
// the first bytes that tell HTTP/2 (gRPC) from HTTP/1.x.
const sniffTimeout = 10 * time.Second

// http2Preface starts every HTTP/2 connection; gRPC clients speak HTTP/2
// without TLS, everything else on the client port is HTTP/1.x.
var http2Preface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

// ConnMux splits one listener into a gRPC and an HTTP/1.x listener by the
// first bytes of each connection, as etcd's cmux does: HTTP/2 goes to the
// native gRPC server, so the gRPC path is not slowed, the rest to net/http.
//
// Over TLS (a root from a Security's listener) the handshake runs first,
// on the connection's own goroutine, and the protocol it negotiated
// decides: h2 to gRPC, http/1.1 to HTTP (see negotiate), nothing to the
// first bytes as in plaintext.
type ConnMux struct {
	root       net.Listener
	sec        *Security // nil: plaintext
	grpc, http *chanListener
}

// NewConnMux splits root; run Serve, then serve gRPC on GRPC() and HTTP on
// HTTP(). Closing root ends Serve and closes both halves.
func NewConnMux(root net.Listener) *ConnMux {
	m := &ConnMux{root: root, grpc: newChanListener(root.Addr()), http: newChanListener(root.Addr())}
	if tl, ok := root.(*tlsListener); ok {
		m.sec = tl.sec
	}
	return m
}

// NewHTTPMux returns, for root from a Security's listener, a ConnMux whose
// every connection goes to HTTP() (an HTTP-only server: the metrics URLs,
// --listen-client-http-urls) after the handshake and the checks of the
// client port, so a revoked certificate meets etcd's closed connection
// there too; run Serve. For a plaintext root it returns nil: serve root
// itself.
func NewHTTPMux(root net.Listener) *ConnMux {
	if _, ok := root.(*tlsListener); !ok {
		return nil
	}
	m := NewConnMux(root)
	m.grpc = m.http
	return m
}

// GRPC is the half that gets HTTP/2 connections.
func (m *ConnMux) GRPC() net.Listener { return m.grpc }

// HTTP is the half that gets every other connection.
func (m *ConnMux) HTTP() net.Listener { return m.http }

// Serve accepts until the root listener closes, then closes both halves.
func (m *ConnMux) Serve() {
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

func (m *ConnMux) dispatch(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok && m.sec != nil {
		m.dispatchTLS(tc)
		return
	}
	// Peeking leaves the bytes in the socket, so gRPC gets the *net.TCPConn
	// itself: gRPC reads a bare TCP connection without pinning a buffer per
	// connection, a wrapped one not (measured: ~5% of put throughput).
	if isHTTP2, ok := peekHTTP2(c); ok {
		m.route(isHTTP2).deliver(c)
		return
	}
	m.deliverSniffed(c)
}

// dispatchTLS handshakes c within sniffTimeout and routes it by the
// negotiated protocol.
func (m *ConnMux) dispatchTLS(c *tls.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), sniffTimeout)
	err := c.HandshakeContext(ctx)
	cancel()
	if err != nil {
		m.sec.handshakeFailed(c, err)
		_ = c.Close()
		return
	}
	if m.sec.accepted(c) != nil {
		return
	}
	switch c.ConnectionState().NegotiatedProtocol {
	case "h2":
		m.grpc.deliver(c)
		return
	case "http/1.1":
		m.http.deliver(c)
		return
	}
	m.deliverSniffed(c)
}

// deliverSniffed reads c's first bytes to route it and hands them on
// with it.
func (m *ConnMux) deliverSniffed(c net.Conn) {
	isHTTP2, head, err := sniff(c)
	if err != nil {
		_ = c.Close()
		return
	}
	m.route(isHTTP2).deliver(&sniffedConn{Conn: c, head: head})
}

// route is the listener of a connection that speaks HTTP/2 (gRPC) or not.
func (m *ConnMux) route(isHTTP2 bool) *chanListener {
	if isHTTP2 {
		return m.grpc
	}
	return m.http
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

// chanListener is a net.Listener fed by ConnMux; closing it leaves the
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
