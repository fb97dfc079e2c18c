package node

import "github.com/troupedb/troupe/internal/transport"

// clientSecurity is the TLS configuration of the client endpoints (the
// etcd API and its HTTP endpoints, the actor API) and of the connections a
// follower opens to the leader's client endpoint. nil is plaintext, the
// only mode so far: the TLS flags will fill it in here.
func (c *Config) clientSecurity() *transport.Security { return nil }

// peerSecurity is the TLS configuration of the peer remote (raft messages
// and snapshots between members). nil is plaintext, the only mode so far:
// the peer TLS flags will fill it in here.
func (c *Config) peerSecurity() *transport.Security { return nil }
