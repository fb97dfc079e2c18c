package transport

import (
	"context"
	"math"
	"net"
	"net/url"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
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

// For is d for a member endpoint at u: d's Security when u is https,
// plaintext otherwise (see Security.For).
func (d Dialer) For(u url.URL) Dialer {
	d.Security = d.Security.For(u)
	return d
}

// Dial returns a connection to target, a gRPC target name: host:port goes
// through gRPC's default (dns) resolver, passthrough:///host:port is dialed
// as it is. The connection connects lazily; close it when done.
func (d Dialer) Dial(target string, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	return d.dial(target, d.Security.dialCredentials(), extra...)
}

func (d Dialer) dial(target string, creds credentials.TransportCredentials, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, extra...)
	if d.NetDial != nil {
		opts = append(opts, grpc.WithContextDialer(d.NetDial))
	}
	return grpc.NewClient(target, opts...)
}

// DialSelf returns a connection to a member's own client listener at
// addr, as etcd's JSON gateway dials its own gRPC endpoint: an
// unspecified host (0.0.0.0, ::) is reached on loopback, and answers of
// any size are taken (the client port's request limit is the server's).
// Over TLS the member's certificate is not verified (it need not name
// loopback), as etcd's gateway; the client certificate is presented.
func (d Dialer) DialSelf(addr net.Addr) (*grpc.ClientConn, error) {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	return d.dial("passthrough:///"+net.JoinHostPort(host, port), d.Security.selfCredentials(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
}
