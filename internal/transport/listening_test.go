package transport

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

func TestListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := Listening(context.Background(), addr, time.Second); err != nil {
		t.Fatalf("listener at %s: %v", addr, err)
	}
	l.Close()
	start := time.Now()
	err = Listening(context.Background(), addr, 10*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("closed listener: %v, want connection refused", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("refused after %s, want at once", d)
	}
}
