package transport

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// SocketOpts are the socket options of the listeners troupe binds itself
// (client, client HTTP and metrics URLs), etcd's --socket-reuse-address
// and --socket-reuse-port. The peer and actor API remotes listen inside
// protoactor (net.Listen with no control hook), so they never get them.
type SocketOpts struct {
	// ReuseAddress sets SO_REUSEADDR. Go already sets it on every TCP
	// listener on Unix (a port in TIME_WAIT can be bound again), so this
	// only says so explicitly, as etcd does.
	ReuseAddress bool
	// ReusePort sets SO_REUSEPORT: other processes (of the same user)
	// may listen on the same port, and the kernel spreads connections.
	ReusePort bool
}

// listen listens on address over TCP with o's options.
func (o SocketOpts) listen(address string) (net.Listener, error) {
	if !o.ReuseAddress && !o.ReusePort {
		return net.Listen("tcp", address)
	}
	lc := net.ListenConfig{Control: o.control}
	return lc.Listen(context.Background(), "tcp", address)
}

// control sets the options on the socket before it binds.
func (o SocketOpts) control(_, _ string, c syscall.RawConn) error {
	var sockErr error
	err := c.Control(func(fd uintptr) {
		if o.ReuseAddress {
			sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		}
		if sockErr == nil && o.ReusePort {
			sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}
	})
	if err != nil {
		return err
	}
	return sockErr
}
