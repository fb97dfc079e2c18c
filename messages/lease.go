package messages

import "time"

// LeaderChanged tells the lessor what raft saw: the leader (0 when none)
// and the term. Only the leader's lessor expires leases.
type LeaderChanged struct {
	Leader uint64
	Term   uint64
}

// RenewLease asks the leader's lessor to renew lease ID for its whole TTL
// (one keep-alive). It answers RenewLeaseResult.
type RenewLease struct {
	ID int64
}

// RenewLeaseResult answers RenewLease: TTL is the lease's TTL in seconds, 0
// when there is no such lease (or it just expired), as etcd 3.4 answers a
// keep-alive. Err is ErrNotLeader when this member's lessor does not lead.
type RenewLeaseResult struct {
	TTL int64
	Err error
}

// GetLeaseTTL asks the leader's lessor how long lease ID has left. It
// answers LeaseTTL.
type GetLeaseTTL struct {
	ID int64
}

// LeaseTTL answers GetLeaseTTL. Found is false for an unknown lease.
// Remaining is what the leader's clock leaves of it; GrantedTTL is the TTL
// it was granted with, in seconds. Err is ErrNotLeader on a follower.
type LeaseTTL struct {
	Found      bool
	Remaining  time.Duration
	GrantedTTL int64
	Err        error
}

// GetLeases asks the leader's lessor for every lease id, soonest expiry
// first, as etcd 3.4 lists them. It answers Leases.
type GetLeases struct{}

// Leases answers GetLeases. Err is ErrNotLeader on a follower.
type Leases struct {
	IDs []int64
	Err error
}
