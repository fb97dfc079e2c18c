package e2e

import "time"

// The timing of the servers these tests start: startServer and
// e2etest.StartCluster pass no timing flags, so troupe and etcd run with
// their defaults. A test that has to wait on real time takes its margins
// from these (a lease TTL, the time a lease takes to expire, an election),
// never from how fast the machine running it happens to be.
const (
	// electionTimeout is --election-timeout's default (10 heartbeats of
	// 100 ms); a new leader extends every lease by it.
	electionTimeout = time.Second
	// leaseCheckInterval is how often the leader looks for expired leases
	// and due checkpoints (etcd's revoke loop, troupe's lessor).
	leaseCheckInterval = 500 * time.Millisecond
)

// defaultMinLeaseTTL is the smallest TTL the server grants, in seconds:
// 3/2 of the election timeout (15 heartbeats of 100 ms), rounded up to 2 s.
const defaultMinLeaseTTL = int64((electionTimeout*3/2 + time.Second - 1) / time.Second)
