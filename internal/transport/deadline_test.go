package transport

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestWriteTimeout: a write to a member that stops reading fails once it
// has blocked for the timeout (--raft-write-timeout); writes that find
// room in the socket buffers go through.
func TestWriteTimeout(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := lis.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	const timeout = 200 * time.Millisecond
	conn, err := dialWriteTimeout(timeout)(context.Background(), lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	peer := <-accepted // never reads
	defer peer.Close()

	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatalf("write with room in the buffers: %v", err)
	}
	// Fill the socket buffers: the write that blocks fails after the timeout.
	chunk := make([]byte, 1<<20)
	start := time.Now()
	for i := 0; ; i++ {
		_, err := conn.Write(chunk)
		if err == nil {
			if i > 256 { // 256 MiB would not fit in any socket buffer
				t.Fatal("writes to a peer that never reads did not block")
			}
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("blocked write: %v, want a deadline error", err)
		}
		break
	}
	if d := time.Since(start); d < timeout {
		t.Fatalf("blocked write failed after %v, before the %v timeout", d, timeout)
	}
}
