package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/troupedb/troupe/internal/authtoken"
	"github.com/troupedb/troupe/internal/raftclient"
)

// etcd 3.6's defaults of the auth flags.
const (
	DefaultAuthToken    = "simple"
	DefaultAuthTokenTTL = 300 // seconds
	DefaultBcryptCost   = 10
)

// checkAuthToken refuses an --auth-token etcd refuses (unknown type,
// malformed options, unreadable or mismatched JWT keys), with etcd's
// error, before anything starts.
func (c *Config) checkAuthToken() error {
	p, err := authtoken.New(c.AuthToken, authtoken.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return authTokenError(c.AuthToken, err)
	}
	p.Stop()
	return nil
}

func authTokenError(spec string, err error) error {
	return fmt.Errorf("--auth-token=%q: failed to create token provider: %w (fix: 'simple', or 'jwt,pub-key=<file>,priv-key=<file>,sign-method=<RS256|ES256|...>[,ttl=5m]')", spec, err)
}

var errNotCommitted = errors.New("the token names an index not committed")

// tokenProvider is the member's token provider: owned by the node (it
// outlives core and listener restarts, as tokens outlive them in etcd),
// stopped by its shutdown. A simple token is valid once this member
// applied the Authenticate entry that made it.
func (c *Config) tokenProvider(rc *raftclient.Client) (authtoken.Provider, error) {
	p, err := authtoken.New(c.AuthToken, authtoken.Options{
		SimpleTTL: time.Duration(c.AuthTokenTTL) * time.Second,
		WaitApplied: func(ctx context.Context, index uint64) error {
			// Only an index raft committed can be an Authenticate entry
			// not applied here yet: a forged token naming a later one
			// must not park a waiter until the log gets there. Beyond the
			// commit index this member knows, the leader's (a read index)
			// tells whether the entry is committed.
			if index > rc.View().RaftIndex() {
				committed, err := rc.ReadIndex(ctx)
				if err != nil {
					return err
				}
				if index > committed {
					return errNotCommitted
				}
			}
			return rc.WaitApplied(ctx, index)
		},
		Logger: c.Logger,
	})
	if err != nil {
		return nil, authTokenError(c.AuthToken, err)
	}
	return p, nil
}

// clientCertAuth is --client-cert-auth: a verified client certificate's
// common name is the user of a request without a token (etcd's
// ClientCertAuthEnabled, the flag alone, not a trusted CA without it).
func (c *Config) clientCertAuth() bool { return c.ClientTLS.ClientCertAuth }
