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
// TLS lives here too. Every listener, server and connection built by this
// package takes a *Security (NewSecurity, from etcd's TLS flags), and
// every caller passes one through: the node builds one for the client
// side and one for the peer side. A nil *Security is plaintext. Files are
// re-read when they change, per handshake: a rotated certificate, CA
// bundle or CRL is used by the next connection without a restart.
//
// Identity: VerifiedCommonName reads the verified client certificate's CN
// of a gRPC call's connection; a remote's Guard with a Stamp writes it into
// each message of the actor API, whose endpoint passes it on with
// WithCertUser (certuser.go).
package transport
