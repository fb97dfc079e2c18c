// Package lessor is the lessor actor: it decides when leases expire. Lease
// records and the keys attached to them live in the backend
// (persistence/mvcc); the lessor keeps only what etcd's primary lessor keeps
// in memory: each lease's expiry, known only on the leader.
//
// In: LeaderChanged (from the raft actor), RenewLease, GetLeaseTTL and
// GetLeases (from the Lease service; answered with RenewLeaseResult, LeaseTTL
// and Leases), checkDue
// (its own timer, every CheckInterval).
// Out: Propose to the raft actor with LeaseRevoke for expired leases and
// LeaseCheckpoint for remaining TTLs.
//
// Only the leader expires leases. On becoming leader ("promote") every
// lease gets expiry = now + its checkpointed remaining TTL (its TTL when it
// has none) + Extension (etcd extends by an election timeout), so a new
// leader never expires a lease before the old one would have. A follower
// answers RenewLease and GetLeaseTTL with ErrGRPCNotLeader (the Lease
// service forwards those to the leader). Leases the store gains while this
// member leads (granted after the promotion) get now + TTL at the next
// check.
//
// Checkpoints are on (etcd 3.4 has them off by default): the leader
// proposes a lease's remaining TTL once half of what it had left passed
// without a renewal (at most every CheckpointInterval, etcd's 5 minutes),
// so a restart or a new leader does not give an unrenewed lease its whole
// TTL again. clientv3 renews at a third of the TTL, so leases kept alive
// are never checkpointed. A renewal of a checkpointed lease proposes a
// checkpoint of 0 (whole TTL again), ordered after the checkpoint it
// undoes because both go to the raft actor from this one actor.
//
// A restart (of the core) rebuilds everything from the store: the lessor
// holds nothing that is not recomputed at the next promotion.
package lessor

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/auth"
)

// Defaults, as etcd 3.4's lessor.
const (
	// DefaultCheckInterval is how often the leader looks for expired
	// leases and due checkpoints (etcd's revoke loop runs every 500 ms).
	DefaultCheckInterval = 500 * time.Millisecond
	// DefaultCheckpointInterval bounds the time between two checkpoints of
	// a lease (etcd's leaseCheckpointInterval).
	DefaultCheckpointInterval = 5 * time.Minute
	// DefaultRevokeRate is how many revokes per second the leader
	// proposes at most (etcd's leaseRevokeRate).
	DefaultRevokeRate = 1000
	// DefaultRetryInterval is how long an expired lease waits before its
	// revoke is proposed again (etcd's expiredLeaseRetryInterval).
	DefaultRetryInterval = 3 * time.Second
	// maxCheckpointsPerProposal is how many checkpoints one raft entry
	// carries at most (etcd's maxLeaseCheckpointBatchSize).
	maxCheckpointsPerProposal = 1000
	// minCheckpointGap: a lease with less than twice this left is not
	// checkpointed again; it expires before a checkpoint would matter.
	minCheckpointGap = time.Second
)

// Config of the lessor.
type Config struct {
	// Client gives the running backend (leases live there) and request
	// ids for proposals.
	Client *raftclient.Client
	// Raft is where proposals go.
	Raft *actor.PID
	// Extension is added to every expiry on promotion; etcd uses the
	// election timeout.
	Extension          time.Duration
	CheckInterval      time.Duration // 0: DefaultCheckInterval
	CheckpointInterval time.Duration // 0: DefaultCheckpointInterval
	RevokeRate         int           // per second; 0: DefaultRevokeRate
	RetryInterval      time.Duration // 0: DefaultRetryInterval
	Logger             *slog.Logger
}

// Props returns the lessor's props.
func Props(cfg Config) *actor.Props {
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.RevokeRate <= 0 {
		cfg.RevokeRate = DefaultRevokeRate
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return actor.PropsFromProducer(func() actor.Actor { return &lessor{cfg: cfg} })
}

type checkDue struct{}

type lessor struct {
	cfg Config
	log *slog.Logger

	// leading is true between a promotion and a demotion; term is the
	// term promoted in. leases is empty unless leading.
	leading bool
	term    uint64
	// promotePending: raft made this member leader while the backend was
	// away (core starting); the next check promotes.
	promotePending bool
	leases         map[int64]*leaseState
	timer          *time.Timer // the next checkDue; nil when stopped
}

// leaseState is what the leader knows of one lease beyond its record.
type leaseState struct {
	ttl    int64
	expiry time.Time
	// checkpointAt is when to checkpoint the lease next; zero for never.
	checkpointAt time.Time
	// checkpointed: a checkpoint with a remaining TTL is recorded or
	// proposed, so a renewal must clear it.
	checkpointed bool
	// revokedAt is when a revoke was proposed; zero when none.
	revokedAt time.Time
}

// Receive dispatches on the message type.
func (l *lessor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		l.log = l.cfg.Logger.With("actor", "lessor", "member", l.cfg.Client.View().MemberID)
		l.leases = map[int64]*leaseState{}
		l.schedule(ctx)
	case *actor.Stopping, *actor.Restarting:
		l.stopTimer()
	case *actor.Stopped:
	case *messages.LeaderChanged:
		l.handleLeaderChanged(msg.Leader, msg.Term)
	case checkDue:
		l.handleCheckDue(ctx)
	case *messages.RenewLease:
		ctx.Respond(l.handleRenew(ctx, msg))
	case *messages.GetLeaseTTL:
		ctx.Respond(l.handleGetTTL(msg))
	case *messages.GetLeases:
		ctx.Respond(l.handleGetLeases())
	default:
		l.log.Warn("unexpected message", "type", fmt.Sprintf("%T", msg))
	}
}

func (l *lessor) schedule(ctx actor.Context) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	l.timer = time.AfterFunc(l.cfg.CheckInterval, func() { root.Send(self, checkDue{}) })
}

func (l *lessor) stopTimer() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}

// asRoot is the sender of the revoke of an expired lease, as etcd's
// authStore.WithRoot: the root user at the auth revision the member last
// applied. The apply-time check of a revoke (the lease's keys) passes an
// admin whatever its revision; a revoke refused all the same leaves the
// lease, which is proposed again after RetryInterval with the revision
// then applied, as etcd's lessor retries.
func asRoot(st *auth.State) *pb.RequestHeader {
	return &pb.RequestHeader{Username: "root", AuthRevision: st.Revision()}
}

// propose sends req to raft without waiting: a lost revoke is retried
// after RetryInterval, a lost checkpoint only costs precision.
// A header req brings (its sender) gets the request id.
func (l *lessor) propose(ctx actor.Context, req *pb.InternalRaftRequest) {
	if req.Header == nil {
		req.Header = &pb.RequestHeader{}
	}
	req.Header.ID = l.cfg.Client.NextID()
	data, err := proto.Marshal(req)
	if err != nil {
		panic(fmt.Sprintf("lessor: marshal %T: %v", req, err)) // only valid messages are built here
	}
	ctx.Send(l.cfg.Raft, &messages.Propose{ID: req.Header.ID, Data: data})
}
