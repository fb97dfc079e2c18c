package transport

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Listening returns nil if something accepts TCP connections at address
// (host:port) within timeout, else the dial error. A request over
// protoactor remote to a member that is down waits for its whole timeout;
// asking this first fails at once when nothing listens (connection
// refused), as etcd's HTTP requests to a peer URL do.
func Listening(ctx context.Context, address string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", address)
	if err != nil {
		return fmt.Errorf("transport: %s: %w", address, err)
	}
	return c.Close()
}
