package etcdapi

import (
	"context"
	"net/url"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/transport"
	"github.com/troupedb/troupe/persistence/membership"
)

// ClusterBackend is what the Cluster service needs from the rest of the
// member. Every method is called on gRPC goroutines, concurrently: it must
// not queue behind writes in an actor's mailbox except ProposeConfChange.
type ClusterBackend interface {
	// Members is the current view, changed by the applier as conf
	// changes apply.
	Members() *membership.Cluster
	// ClusterID, MemberID and Term fill response headers.
	ClusterID() uint64
	MemberID() uint64
	Term() uint64
	// IsLearner reports whether this member is a learner: etcd refuses
	// the Cluster service on a learner.
	IsLearner() bool
	// LinearizableRead returns once this member has applied everything
	// committed when it was called (a read index), for a linearizable
	// MemberList; errors are etcd's gRPC errors.
	LinearizableRead(ctx context.Context) error
	// ProposeConfChange gives cc a request id, replicates it through raft
	// and returns once the applier applied it (or ctx ended). The
	// applier runs membership.Cluster.ApplyConfChange: on success it
	// stores the change with mvcc.Store.ApplyMembers and applies cc to
	// raft; on a validation error it records only the index and applies
	// a conf change with node id 0 to raft, as etcd does, and returns
	// that error (a membership.Err* value). It returns the members after
	// the change. Other errors are returned as rpctypes.ErrGRPC* values
	// (no leader, stopped, ...); a ctx that ends gives ctx.Err().
	ProposeConfChange(ctx context.Context, cc *raftpb.ConfChange) ([]membership.Member, error)
	// PeerActiveSince returns since when the peer connection to id has
	// been up, the zero time if it is down (etcd's transport.ActiveSince).
	PeerActiveSince(id uint64) time.Time
	// IsLeader reports whether this member is the raft leader.
	IsLeader() bool
	// LearnerProgress returns, on the leader, id's raft match index and
	// the leader's own match index; ok is false if raft has no progress
	// for id.
	LearnerProgress(id uint64) (match, leaderMatch uint64, ok bool)
	// LeaderClientURLs returns the leader's client URLs, none while
	// there is no leader or its URLs are not known yet.
	LeaderClientURLs() []string
}

// forwardedKey marks a MemberPromote forwarded to the leader, so a member
// that lost the leadership meanwhile answers "not leader" instead of
// forwarding it again.
const forwardedKey = "troupe-forwarded-promote"

// defaultForwardTimeout bounds a forwarded MemberPromote when
// Cluster.RequestTimeout is 0 (etcd: 5 s plus two election timeouts).
const defaultForwardTimeout = 7 * time.Second

var (
	// errLearnerUnsupported is what etcd 3.6 answers on a learner (3.4's
	// code was Unavailable).
	errLearnerUnsupported = rpctypes.ErrGRPCNotSupportedForLearner
	// errNotEnoughStarted is etcd 3.4's answer, code Unknown: its
	// togRPCError maps the error to rpctypes' client-side value, which
	// gRPC sends as Unknown with the message.
	errNotEnoughStarted = status.Error(codes.Unknown, "etcdserver: re-configuration failed due to not enough started members")
	errNoBackend        = status.Error(codes.Unimplemented, "troupe: membership changes are not wired on this member")
)

// Cluster serves etcd's Cluster service. With a Backend it serves every
// method as etcd 3.4; without one (a member started before peers were
// wired) it lists View's members and refuses changes.
type Cluster struct {
	pb.UnimplementedClusterServer
	View    *memberview.View
	Backend ClusterBackend
	// RequestTimeout bounds a MemberPromote forwarded to the leader; 0
	// means defaultForwardTimeout.
	RequestTimeout time.Duration
	// NoStrictReconfigCheck is etcd's --strict-reconfig-check=false: a
	// member add, remove or promote is proposed without checking that
	// the cluster keeps enough started, connected members for quorum
	// (a learner must still have caught up before its promotion).
	NoStrictReconfigCheck bool
	// Auth, when set, lets only root-role users change the membership
	// (etcd's checkMembershipOperationPermission).
	Auth *Authenticator
	// dial opens connections to a leader client address (host:port);
	// the zero Dialer dials plaintext TCP. Tests dial in memory.
	dial transport.Dialer
}

func (c *Cluster) header() *pb.ResponseHeader {
	b := c.Backend
	return &pb.ResponseHeader{ClusterId: b.ClusterID(), MemberId: b.MemberID(), RaftTerm: b.Term()}
}

// check returns the error etcd 3.4 gives before serving a Cluster RPC.
func (c *Cluster) check() error {
	if c.Backend == nil {
		return errNoBackend
	}
	if c.Backend.IsLearner() {
		return errLearnerUnsupported
	}
	return nil
}

func (c *Cluster) health() membership.Health {
	return membership.Health{Self: c.Backend.MemberID(), Now: time.Now(), ActiveSince: c.Backend.PeerActiveSince}
}

// MemberList lists the members, sorted by id. Its header has no revision,
// as etcd's. With Linearizable (etcd 3.6) it first waits for a read index,
// so the list has every membership change committed before the call;
// otherwise it answers from this member's view at once.
func (c *Cluster) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	if c.Backend == nil {
		return c.stateMemberList(), nil
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	if r.Linearizable {
		if err := c.Backend.LinearizableRead(ctx); err != nil {
			return nil, err
		}
	}
	return &pb.MemberListResponse{Header: c.header(), Members: toPB(c.Backend.Members().Members())}, nil
}

func (c *Cluster) stateMemberList() *pb.MemberListResponse {
	st := c.View
	resp := &pb.MemberListResponse{
		Header: newHeader(st, 0),
	}
	for _, m := range st.Members() {
		resp.Members = append(resp.Members, &pb.Member{
			ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner,
		})
	}
	return resp
}

// MemberAdd adds a member (a learner with IsLearner) whose id derives from
// its peer URLs and the time, as etcd's; it answers with the new member
// (no name yet) and the member list after the change.
func (c *Cluster) MemberAdd(ctx context.Context, req *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	urls, err := membership.ParsePeerURLs(req.PeerURLs)
	if err != nil {
		return nil, rpctypes.ErrGRPCMemberBadURLs
	}
	if err := c.Auth.admin(ctx); err != nil {
		return nil, err
	}
	now := time.Now()
	m := membership.Member{ID: membership.NewMemberID(urls, "", &now), PeerURLs: urls, IsLearner: req.IsLearner}
	if err := c.mayAdd(m); err != nil {
		return nil, toGRPC(err)
	}
	ms, err := c.Backend.ProposeConfChange(ctx, membership.AddChange(m))
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberAddResponse{
		Header:  c.header(),
		Member:  &pb.Member{ID: m.ID, PeerURLs: m.PeerURLs, IsLearner: m.IsLearner},
		Members: toPB(ms),
	}, nil
}

// mayAdd and mayRemove are etcd's checks before a member change, skipped
// without --strict-reconfig-check.
func (c *Cluster) mayAdd(m membership.Member) error {
	if c.NoStrictReconfigCheck {
		return nil
	}
	return c.Backend.Members().CheckAdd(m, c.health())
}

func (c *Cluster) mayRemove(id uint64) error {
	if c.NoStrictReconfigCheck {
		return nil
	}
	return c.Backend.Members().CheckRemove(id, c.health())
}

// MemberRemove removes a member.
func (c *Cluster) MemberRemove(ctx context.Context, req *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if err := c.Auth.admin(ctx); err != nil {
		return nil, err
	}
	if err := c.mayRemove(req.ID); err != nil {
		return nil, toGRPC(err)
	}
	ms, err := c.Backend.ProposeConfChange(ctx, membership.RemoveChange(req.ID))
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberRemoveResponse{Header: c.header(), Members: toPB(ms)}, nil
}

// MemberUpdate sets a member's peer URLs. etcd 3.4 does not check them
// (and its members crash applying a URL that does not parse); troupe
// refuses them with ErrGRPCMemberBadURLs, as MemberAdd does.
func (c *Cluster) MemberUpdate(ctx context.Context, req *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	urls, err := membership.ParsePeerURLs(req.PeerURLs)
	if err != nil {
		return nil, rpctypes.ErrGRPCMemberBadURLs
	}
	if err := c.Auth.admin(ctx); err != nil {
		return nil, err
	}
	ms, err := c.Backend.ProposeConfChange(ctx, membership.UpdateChange(req.ID, urls))
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberUpdateResponse{Header: c.header(), Members: toPB(ms)}, nil
}

// MemberPromote makes a learner a voting member. Only the leader knows
// whether the learner caught up, so a follower forwards the request to the
// leader, as etcd does (etcd over the peer HTTP API, troupe over the
// leader's client gRPC endpoint), retrying until RequestTimeout.
func (c *Cluster) MemberPromote(ctx context.Context, req *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if err := c.Auth.admin(ctx); err != nil {
		return nil, err
	}
	var ms []membership.Member
	var err error
	if c.Backend.IsLeader() {
		ms, err = c.promote(ctx, req.ID)
	} else if md, _ := metadata.FromIncomingContext(ctx); len(md.Get(forwardedKey)) > 0 {
		return nil, rpctypes.ErrGRPCNotLeader
	} else {
		return c.forwardPromote(ctx, req)
	}
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberPromoteResponse{Header: c.header(), Members: toPB(ms)}, nil
}

func (c *Cluster) promote(ctx context.Context, id uint64) ([]membership.Member, error) {
	match, leaderMatch, found := c.Backend.LearnerProgress(id)
	check := c.Backend.Members().CheckPromote(id, found, match, leaderMatch)
	if c.NoStrictReconfigCheck {
		check = membership.CheckLearnerReady(found, match, leaderMatch)
	}
	if check != nil {
		return nil, check
	}
	return c.Backend.ProposeConfChange(ctx, membership.PromoteChange(id))
}

// forwardPromote sends req to the leader until one answers, an answer is
// final (success, learner not ready, not found, not a learner) or the
// time is up (ErrGRPCTimeout, as etcd).
func (c *Cluster) forwardPromote(ctx context.Context, req *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	timeout := c.RequestTimeout
	if timeout <= 0 {
		timeout = defaultForwardTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cctx = forwardToken(ctx, metadata.AppendToOutgoingContext(cctx, forwardedKey, "1"))
	retry := time.NewTicker(100 * time.Millisecond)
	defer retry.Stop()
	for {
		for _, u := range c.Backend.LeaderClientURLs() {
			resp, err := c.promoteAt(cctx, u, req)
			if err == nil {
				return &pb.MemberPromoteResponse{Header: c.header(), Members: resp.Members}, nil
			}
			if final(err) {
				return nil, err
			}
		}
		select {
		case <-cctx.Done():
			if ctx.Err() != nil {
				return nil, toGRPC(ctx.Err())
			}
			return nil, rpctypes.ErrGRPCTimeout
		case <-retry.C:
		}
	}
}

// final reports whether a forwarded promote's error is the answer (etcd
// returns these at once; others are retried).
func final(err error) bool {
	switch rpctypes.ErrorDesc(err) {
	case rpctypes.ErrorDesc(rpctypes.ErrGRPCLearnerNotReady),
		rpctypes.ErrorDesc(rpctypes.ErrGRPCMemberNotFound),
		rpctypes.ErrorDesc(rpctypes.ErrGRPCMemberNotLearner),
		rpctypes.ErrorDesc(rpctypes.ErrGRPCPermissionDenied),
		rpctypes.ErrorDesc(rpctypes.ErrGRPCUserEmpty),
		rpctypes.ErrorDesc(rpctypes.ErrGRPCUserNotFound),
		rpctypes.ErrorDesc(rpctypes.ErrGRPCInvalidAuthToken):
		return true
	}
	return false
}

func (c *Cluster) promoteAt(ctx context.Context, clientURL string, req *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	u, err := url.Parse(clientURL)
	if err != nil || u.Host == "" {
		return nil, rpctypes.ErrGRPCMemberBadURLs
	}
	conn, err := c.dial.For(*u).Dial(u.Host)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return pb.NewClusterClient(conn).MemberPromote(ctx, req)
}

func toPB(ms []membership.Member) []*pb.Member {
	out := make([]*pb.Member, len(ms))
	for i, m := range ms {
		out[i] = &pb.Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner}
	}
	return out
}
