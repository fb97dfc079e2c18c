package transport

import (
	"context"
	"crypto/tls"
	"net"

	"google.golang.org/grpc/credentials"
)

// serverCreds are the gRPC server credentials of a Security. A connection
// that ConnMux or a TLS listener already made a *tls.Conn is handshaken
// there (or here, once) and kept; a raw one (the peer remote's own
// listener) is wrapped. Either way gRPC gets credentials.TLSInfo with the
// verified chains, where the auth layer reads the client's common name.
type serverCreds struct{ sec *Security }

func (c *serverCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn := raw
	tc := tlsConnOf(raw)
	if tc == nil {
		tc = tls.Server(raw, c.sec.ServerConfig())
		conn = tc
	}
	if err := tc.Handshake(); err != nil {
		c.sec.handshakeFailed(raw, err)
		return nil, nil, err
	}
	if err := c.sec.accepted(tc); err != nil {
		return nil, nil, err
	}
	return conn, tlsAuthInfo(tc.ConnectionState()), nil
}

func (c *serverCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errServerOnly
}

func (c *serverCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2"}
}
func (c *serverCreds) Clone() credentials.TransportCredentials { return &serverCreds{sec: c.sec} }
func (c *serverCreds) OverrideServerName(string) error         { return nil }

// tlsConnOf finds the TLS connection under what ConnMux delivers.
func tlsConnOf(c net.Conn) *tls.Conn {
	switch c := c.(type) {
	case *tls.Conn:
		return c
	case *sniffedConn:
		tc, _ := c.Conn.(*tls.Conn)
		return tc
	}
	return nil
}

func tlsAuthInfo(st tls.ConnectionState) credentials.TLSInfo {
	return credentials.TLSInfo{State: st, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
}

// clientCreds are the gRPC dial credentials of a Security: each handshake
// takes the current CA pool and client certificate, and the server name
// from the target.
type clientCreds struct {
	sec        *Security
	skipVerify bool
}

func (c *clientCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cfg, err := c.sec.ClientConfig("")
	if err != nil {
		return nil, nil, err
	}
	if c.skipVerify {
		cfg.InsecureSkipVerify = true
	}
	// grpc's own TLS credentials set the server name from the authority,
	// offer h2 and check it was negotiated.
	return credentials.NewTLS(cfg).ClientHandshake(ctx, authority, raw)
}

func (c *clientCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errClientOnly
}

func (c *clientCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2"}
}
func (c *clientCreds) Clone() credentials.TransportCredentials {
	return &clientCreds{sec: c.sec, skipVerify: c.skipVerify}
}
func (c *clientCreds) OverrideServerName(string) error { return nil }
