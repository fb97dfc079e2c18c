package transport

import (
	"io"
	"net"
	"testing"
)

// TestConnMuxRoutes: the HTTP/2 preface goes to gRPC, anything else
// (even 24 bytes or more at once) to HTTP, with the sniffed bytes replayed.
func TestConnMuxRoutes(t *testing.T) {
	root, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewConnMux(root)
	done := make(chan struct{})
	go func() { m.Serve(); close(done) }()
	for _, tc := range []struct {
		send string
		to   *chanListener
	}{
		{"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", m.http},
		{"GET / HTTP/1.0\r\n\r\n", m.http},
		{string(http2Preface) + "\x00\x00\x00\x04", m.grpc},
	} {
		c, err := net.Dial("tcp", root.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(tc.send)); err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).CloseWrite()
		got, err := tc.to.Accept()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(got)
		if err != nil || string(b) != tc.send {
			t.Errorf("routed %q, read back %q (%v)", tc.send, b, err)
		}
		_ = got.Close()
		_ = c.Close()
	}
	_ = root.Close()
	<-done
	if _, err := m.grpc.Accept(); err == nil {
		t.Error("gRPC half still accepts after the root closed")
	}
}
