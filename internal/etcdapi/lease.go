package etcdapi

import (
	"context"
	"errors"
	"io"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/internal/transport"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/alarm"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// leaderRetryInterval is how long a keep-alive or time-to-live waits
// before it tries again while leadership is changing.
const leaderRetryInterval = 50 * time.Millisecond

// Lease serves etcd's Lease service. Grant and revoke go through raft like
// KV writes. Keep-alive and time-to-live need the leader's clock: on the
// leader they ask the lessor actor, on a follower they are forwarded to
// the leader's Lease service over gRPC (see leaseForwarder).
type Lease struct {
	pb.UnimplementedLeaseServer
	kv     *KV
	minTTL int64
	fwd    *leaseForwarder
	// stopping, when closed, ends every keep-alive stream (nil: never).
	stopping <-chan struct{}
}

// NewLease returns the Lease service; minTTL is the smallest TTL a lease
// gets, in seconds (etcd: 1.5 election timeouts, rounded up); dial
// connects to the leader. Close it after the gRPC servers stopped.
func NewLease(kv *KV, minTTL int64, dial transport.Dialer) *Lease {
	return &Lease{kv: kv, minTTL: minTTL, fwd: newLeaseForwarder(kv.cfg.Raft.View(), dial)}
}

// Close drops the connections to other members.
func (s *Lease) Close() { s.fwd.close() }

// LeaseGrant creates a lease. ID 0 lets the server choose, as etcd: the
// proposer picks the id before proposing, so every member applies the same.
func (s *Lease) LeaseGrant(ctx context.Context, req *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if req.TTL > mvcc.MaxLeaseTTL {
		return nil, rpctypes.ErrGRPCLeaseTTLTooLarge
	}
	r := &pb.LeaseGrantRequest{ID: req.ID, TTL: max(req.TTL, s.minTTL)}
	if err := s.kv.checkQuota(ctx, alarm.Cost(&pb.InternalRaftRequest{LeaseGrant: r})); err != nil {
		return nil, err
	}
	for r.ID == 0 {
		r.ID = int64(s.kv.cfg.Raft.NextID() & (1<<63 - 1))
	}
	out, err := proposeAs[*pb.LeaseGrantResponse](ctx, s.kv, &pb.InternalRaftRequest{LeaseGrant: r})
	if err != nil {
		return nil, err
	}
	s.kv.fill(out.Header)
	return out, nil
}

// LeaseRevoke revokes a lease and deletes its keys in one revision.
func (s *Lease) LeaseRevoke(ctx context.Context, req *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	out, err := proposeAs[*pb.LeaseRevokeResponse](ctx, s.kv, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: req.ID}})
	if err != nil {
		return nil, err
	}
	s.kv.fill(out.Header)
	return out, nil
}

// LeaseKeepAlive renews leases for as long as the client streams requests.
// An unknown lease gets TTL 0, as etcd 3.4 answers.
func (s *Lease) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	// The stream is served on a goroutine of its own so that a stop of
	// the services can end it while it waits in Recv; once this handler
	// returns, gRPC ends the stream and that Recv returns too.
	errc := make(chan error, 1)
	go func() { errc <- s.keepAlive(stream) }()
	select {
	case err := <-errc:
		return err
	case <-s.stopping:
		return raftclient.ErrStopped
	}
}

func (s *Lease) keepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	ctx := stream.Context()
	fs := &forwardStream{fwd: s.fwd}
	defer fs.close()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp := &pb.LeaseKeepAliveResponse{ID: req.ID, Header: s.header()}
		ttl, err := s.renew(ctx, req.ID, fs)
		if err != nil {
			return err
		}
		resp.TTL = ttl
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// renew renews lease id on the leader: here through the lessor, or
// through the leader's Lease service; it retries while leadership changes,
// until the request timeout.
func (s *Lease) renew(ctx context.Context, id int64, fs *forwardStream) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.kv.cfg.Raft.RequestTimeout())
	defer cancel()
	for {
		ttl, err := s.renewOnce(ctx, id, fs)
		if !retryable(err) {
			return ttl, err
		}
		if werr := sleepCtx(ctx, leaderRetryInterval); werr != nil {
			return 0, s.leaderWaitError(ctx, werr)
		}
	}
}

func (s *Lease) renewOnce(ctx context.Context, id int64, fs *forwardStream) (int64, error) {
	st := s.kv.cfg.Raft.View()
	if lead := st.Leader(); lead != st.MemberID {
		return fs.keepAlive(ctx, lead, id)
	}
	// etcd 3.6's ensureLeadership (etcd issue 15247): a leader that was
	// paused or cut off may not know yet that another member leads, which
	// may have let the lease expire meanwhile. A read index round needs a
	// quorum of this leader's term, so once it returns with this member
	// still leading, the renewal is the leader's. etcd skips the round
	// while its raft loop ticked in the last three ticks; a process just
	// resumed from a pause may tick before it reads its peers, so troupe
	// always asks (rounds are shared by the reads and renewals queued
	// together, and a single voter's costs no message).
	if err := s.kv.linearizableRead(ctx); err != nil {
		return 0, err
	}
	if st.Leader() != st.MemberID {
		return 0, rpctypes.ErrGRPCNotLeader // renew asks the new leader
	}
	if err := s.waitApplied(ctx); err != nil {
		return 0, err
	}
	res, err := s.askLessorConfirmed(ctx, &messages.RenewLease{ID: id}, func(res any) bool {
		r := res.(*messages.RenewLeaseResult)
		return r.Err == nil && r.TTL == 0
	})
	if err != nil {
		return 0, err
	}
	r := res.(*messages.RenewLeaseResult)
	return r.TTL, r.Err
}

// LeaseKeepAliveOnce renews a lease once: the actor API's keep-alive.
func (s *Lease) LeaseKeepAliveOnce(ctx context.Context, req *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error) {
	fs := &forwardStream{fwd: s.fwd}
	defer fs.close()
	resp := &pb.LeaseKeepAliveResponse{ID: req.ID, Header: s.header()}
	ttl, err := s.renew(ctx, req.ID, fs)
	if err != nil {
		return nil, err
	}
	resp.TTL = ttl
	return resp, nil
}

// LeaseTimeToLive reports a lease's remaining TTL as the leader counts it;
// an unknown lease gets TTL -1, as etcd 3.4 answers.
func (s *Lease) LeaseTimeToLive(ctx context.Context, req *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, s.kv.cfg.Raft.RequestTimeout())
	defer cancel()
	for {
		resp, err := s.timeToLiveOnce(ctx, req)
		if !retryable(err) {
			if err == nil && req.Keys {
				err = s.checkKeys(ctx, resp.Keys)
			}
			if err != nil {
				return nil, err
			}
			return resp, nil
		}
		if werr := sleepCtx(ctx, leaderRetryInterval); werr != nil {
			return nil, s.leaderWaitError(ctx, werr)
		}
	}
}

func (s *Lease) timeToLiveOnce(ctx context.Context, req *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	st := s.kv.cfg.Raft.View()
	if lead := st.Leader(); lead != st.MemberID {
		return s.forwardTimeToLive(ctx, lead, req)
	}
	if err := s.waitApplied(ctx); err != nil {
		return nil, err
	}
	res, err := s.askLessorConfirmed(ctx, &messages.GetLeaseTTL{ID: req.ID}, func(res any) bool {
		r := res.(*messages.LeaseTTL)
		return r.Err == nil && !r.Found
	})
	if err != nil {
		return nil, err
	}
	r := res.(*messages.LeaseTTL)
	if r.Err != nil {
		return nil, r.Err
	}
	resp := &pb.LeaseTimeToLiveResponse{Header: s.header(), ID: req.ID, TTL: -1}
	if !r.Found {
		return resp, nil
	}
	resp.TTL, resp.GrantedTTL = int64(r.Remaining.Seconds()), r.GrantedTTL
	if req.Keys {
		if store := s.kv.cfg.Raft.Store(); store != nil {
			_, resp.Keys, _ = store.Lease(req.ID, true)
		}
	}
	return resp, nil
}

// forwardTimeToLive asks the leader for the lease's TTL. The keys, when
// asked for, come from this member's store after a read index round (so
// they include every attach acknowledged before the request), as etcd's
// follower lists them from its own lessor: the leader then need not know
// who asks, which it could not for a user known by its certificate here
// (the leader would see this member's certificate).
func (s *Lease) forwardTimeToLive(ctx context.Context, lead uint64, req *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	resp, err := s.fwd.timeToLive(ctx, lead, &pb.LeaseTimeToLiveRequest{ID: req.ID})
	if err != nil {
		return nil, err
	}
	resp.Header = s.header() // as etcd: the answering member's header
	if !req.Keys || resp.TTL == -1 {
		return resp, nil
	}
	if err := s.kv.cfg.Raft.LinearizableRead(ctx); err != nil {
		return nil, err
	}
	if store := s.kv.cfg.Raft.Store(); store != nil {
		_, resp.Keys, _ = store.Lease(req.ID, true)
	}
	return resp, nil
}

// checkKeys is etcd's permission check of a LeaseTimeToLive that asks
// for the keys: with auth on, the sender must be a user allowed to read
// each key, and the auth state must not have changed meanwhile. etcd
// checks the keys its own lessor lists before asking; troupe checks the
// ones the answer lists, which are the ones the client would see.
func (s *Lease) checkKeys(ctx context.Context, keys [][]byte) error {
	a := s.kv.cfg.Auth
	ai, st, err := a.Info(ctx)
	if err != nil || !st.Enabled() {
		return err
	}
	if ai.Username == "" && ai.Revision == 0 {
		return rpctypes.ErrGRPCUserEmpty
	}
	for _, k := range keys {
		if err := st.IsRangePermitted(ai, k, nil); err != nil {
			return authErr(err)
		}
	}
	if st.Revision() != a.state().Revision() {
		return rpctypes.ErrGRPCAuthOldRevision
	}
	return nil
}

// LeaseLeases lists this member's leases, as etcd 3.4 (no leader round):
// on the leader soonest expiry first, elsewhere by id (a follower knows no
// expiry).
func (s *Lease) LeaseLeases(ctx context.Context, req *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	st := s.kv.cfg.Raft.View()
	store := s.kv.cfg.Raft.Store()
	if store == nil {
		return nil, errCoreDown
	}
	resp := &pb.LeaseLeasesResponse{Header: s.header(), Leases: []*pb.LeaseStatus{}}
	if st.Leader() == st.MemberID {
		if res, err := s.askLessor(&messages.GetLeases{}); err == nil && res.(*messages.Leases).Err == nil {
			for _, id := range res.(*messages.Leases).IDs {
				resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: id})
			}
			return resp, nil
		}
	}
	for _, l := range store.Leases() {
		resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: l.ID})
	}
	return resp, nil
}

// waitApplied waits until this member (the leader) has applied what it
// knows committed, so that a lease granted through another member is
// known here (as etcd 3.5's waitAppliedIndex; 3.4 can answer "not found"
// for a lease a follower just granted).
func (s *Lease) waitApplied(ctx context.Context) error {
	rc := s.kv.cfg.Raft
	return rc.WaitApplied(ctx, rc.View().RaftIndex())
}

// askLessorConfirmed asks the lessor, and when the answer is "no such
// lease" (notFound) asks again after a ReadIndex round: a leader's applied
// index can trail what is committed (a new leader learns that entries of
// earlier terms are committed only once an entry of its own term is), so a
// lease granted and acknowledged before this request may not be applied
// here yet. The round costs only the not-found answers.
func (s *Lease) askLessorConfirmed(ctx context.Context, msg any, notFound func(any) bool) (any, error) {
	res, err := s.askLessor(msg)
	if err != nil || !notFound(res) {
		return res, err
	}
	if err := s.kv.linearizableRead(ctx); err != nil {
		return nil, err
	}
	return s.askLessor(msg)
}

// askLessor sends msg to this member's lessor and waits for its answer.
func (s *Lease) askLessor(msg any) (any, error) { return s.kv.cfg.Raft.AskLessor(msg) }

// header is a lease response's header: the member's figures and the
// store's current revision, as etcd's header filler.
func (s *Lease) header() *pb.ResponseHeader {
	var rev int64
	if store := s.kv.cfg.Raft.Store(); store != nil {
		rev = store.Rev()
	}
	return newHeader(s.kv.cfg.Raft.View(), rev)
}

// retryable: the leader is changing (none known, this member's lessor not
// promoted yet, the old leader unreachable); asking again soon may
// succeed. etcd retries the same way until the request timeout.
// leaderWaitError is the answer of a request that waited for the leader
// until ctx ended: etcd's "no leader" while none is known (its waitLeader
// answers so when the request timeout ends the wait), else the wait's.
func (s *Lease) leaderWaitError(ctx context.Context, werr error) error {
	if s.kv.cfg.Raft.View().Leader() == 0 {
		return rpctypes.ErrGRPCNoLeader
	}
	return raftclient.ContextError(ctx, werr)
}

func retryable(err error) bool {
	return errors.Is(err, rpctypes.ErrGRPCNotLeader) || errors.Is(err, errNoLeaderURL) ||
		status.Code(err) == codes.Unavailable
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
