package transport

import (
	"context"
	"net"
	"time"

	"google.golang.org/grpc"
)

// writeDeadlineConn fails a Write that blocks longer than timeout, as
// etcd's rafthttp connections do with --raft-write-timeout: a member that
// stops reading (paused, wedged) fails the connection instead of holding
// the writer until TCP gives up.
type writeDeadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c writeDeadlineConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// writeTimeoutDialer dials TCP connections whose writes time out after
// timeout.
func writeTimeoutDialer(timeout time.Duration) grpc.DialOption {
	return grpc.WithContextDialer(dialWriteTimeout(timeout))
}

func dialWriteTimeout(timeout time.Duration) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return writeDeadlineConn{Conn: conn, timeout: timeout}, nil
	}
}
