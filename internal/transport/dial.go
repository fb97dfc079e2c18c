package transport

import (
	"context"
	"net"

	"google.golang.org/grpc"
)

// Dialer opens gRPC client connections to other members' client endpoints
// (a follower forwarding lease keep-alives or a MemberPromote to the
// leader). The zero value dials plaintext TCP.
type Dialer struct {
	// Security of the connections; nil is plaintext.
	Security *Security
	// NetDial, when set, replaces the TCP dial of gRPC (tests: an
	// in-memory listener).
	NetDial func(ctx context.Context, addr string) (net.Conn, error)
}

// Dial returns a connection to target, a gRPC target name: host:port goes
// through gRPC's default (dns) resolver, passthrough:///host:port is dialed
// as it is. The connection connects lazily; close it when done.
func (d Dialer) Dial(target string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(d.Security.dialCredentials())}
	if d.NetDial != nil {
		opts = append(opts, grpc.WithContextDialer(d.NetDial))
	}
	return grpc.NewClient(target, opts...)
}
