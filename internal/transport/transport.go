// Package transport is troupe's one home for how bytes reach and leave a
// member: listening on the --listen-*-urls addresses, splitting a client
// port between gRPC and HTTP (ConnMux), the gRPC server options of the
// client endpoints, gRPC client connections to other members' client
// endpoints (Dialer), and the protoactor remotes of the peers and of the
// actor API (NewRemote, the Guard in front of their readers, their dial
// options, ShutdownRemote, SetGRPCLogger).
//
// Users: actors/listeners (client listeners and gRPC servers),
// internal/etcdapi (dialing the leader to forward lease keep-alives and
// MemberPromote), actors/peers (the peer remote), actors/actorapi (the
// actor API remote) and node (shutting the peer remote down).
//
// TLS goes here. Every listener, server and connection built by this
// package takes a *Security, and every caller passes one through: the
// node builds one for the client side and one for the peer side. Today
// Security is always nil, which means plaintext, exactly as before this
// package existed. The TLS work fills Security in (certificates, client
// certificate authentication, reload) and applies it in its three
// methods below; no caller has to change.
package transport

import (
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Security is the TLS configuration of one side of the transport: the
// client endpoints, or the peer remote. A nil *Security, like the zero
// value, means plaintext, the only mode so far.
type Security struct{}

// listener returns lis as clients must meet it: lis itself in plaintext
// (TLS: a listener that runs the handshake).
func (s *Security) listener(lis net.Listener) net.Listener { return lis }

// serverOptions are the gRPC server options that secure a server: none in
// plaintext (TLS: grpc.Creds).
func (s *Security) serverOptions() []grpc.ServerOption { return nil }

// dialCredentials secure a gRPC client connection: insecure credentials in
// plaintext (TLS: credentials.NewTLS).
func (s *Security) dialCredentials() credentials.TransportCredentials {
	return insecure.NewCredentials()
}
