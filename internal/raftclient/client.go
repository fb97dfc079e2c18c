// Package raftclient is the typed client of one member's core: requests
// that must pass raft (proposals, configuration changes, read indexes,
// leadership transfers) go to the raft actor as messages, and their
// outcomes come back through typed wait registries, one per kind of
// result, so no caller asserts a type it did not ask for.
//
// Contract: the node makes one Client and Waits per member; they outlive
// core restarts. The core publishes its raft, applier and lessor actors and
// its backend with SetCore when its start-up finishes and withdraws them
// (SetCore(nil)) before it stops; while withdrawn every call fails at once
// with etcd's "server stopped", and FailAll answers the requests in flight.
// The one exception to "through the raft actor": a read index the core's
// raft actor publishes while it leads as the only voter (LocalReadIndex),
// which reads take without a message.
// Only the raft actor and the applier trigger the registries; a waiter that
// gives up (context, request timeout) cancels its id, so the registries
// hold only requests someone still waits for. A proposer that gives up
// also withdraws its proposal (WithdrawProposal), so one parked for want of
// a leader is never proposed, as etcd's is not; at the request timeout the
// raft actor's answer to the withdrawal is the proposer's.
package raftclient

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/metrics"
	"github.com/troupedb/troupe/internal/wait"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// ErrStopped is etcd's answer while the core is down or restarting.
var ErrStopped = rpctypes.ErrGRPCStopped

// ErrNotProposed is the answer to a proposal that waited its whole
// request timeout for a leader without reaching raft: etcd's Propose
// blocks on raft's proposal channel while there is no leader and returns
// its context's error, which gRPC sends as DeadlineExceeded with the
// context's text.
var ErrNotProposed = status.Error(codes.DeadlineExceeded, context.DeadlineExceeded.Error())

// withdrawGrace bounds the wait for the raft actor's answer to a
// withdrawal; it answers at once unless the core is going down, and then
// FailAll answers.
const withdrawGrace = time.Second

// errTimeoutLeaderTransfer carries etcd's message for a transfer that did
// not finish in time.
var errTimeoutLeaderTransfer = status.Error(codes.Unavailable, "etcdserver: request timed out, leader transfer took too long")

// Result is the outcome of a proposal: the applier's response (a
// *pb.PutResponse for a Put, and so on) or the client-visible error.
type Result struct {
	Resp any
	Err  error
}

// ReadResult is the outcome of a read index request.
type ReadResult struct {
	Index uint64
	Err   error
}

// ConfChangeResult is the outcome of a configuration change: the members
// after it, or why it was refused.
type ConfChangeResult struct {
	Members []membership.Member
	Err     error
}

// Waits are the registries through which the raft actor and the applier
// answer the requests of a Client, and the applied index reads wait for.
type Waits struct {
	Proposals   *wait.Registry[Result]
	Reads       *wait.Registry[ReadResult]
	ConfChanges *wait.Registry[ConfChangeResult]
	// Applied is the index the applier has applied; linearizable reads
	// wait until it reaches their read index.
	Applied *wait.Index
}

// NewWaits returns empty registries.
func NewWaits() *Waits {
	return &Waits{
		Proposals:   wait.New[Result](),
		Reads:       wait.New[ReadResult](),
		ConfChanges: wait.New[ConfChangeResult](),
		Applied:     wait.NewIndex(0),
	}
}

// Pending reports how many requests wait for an outcome.
func (w *Waits) Pending() int {
	return w.Proposals.Len() + w.Reads.Len() + w.ConfChanges.Len()
}

// FailAll answers every request in flight with err, as a core restart
// does for requests whose messages it may have lost.
func (w *Waits) FailAll(err error) int {
	return w.Proposals.TriggerAll(Result{Err: err}) +
		w.Reads.TriggerAll(ReadResult{Err: err}) +
		w.ConfChanges.TriggerAll(ConfChangeResult{Err: err})
}

// Core is what a started core publishes: its actors, its backend, and
// the read index its raft actor vouches for (nil: none, every read takes
// the raft round).
type Core struct {
	Raft, Applier, Lessor *actor.PID
	Store                 *mvcc.Store
	LocalReads            *LocalReadIndex
}

// Config of a Client.
type Config struct {
	Root  *actor.RootContext
	View  *memberview.View
	Waits *Waits
	// RequestTimeout bounds how long a request waits for raft; etcd uses
	// 5 s plus two election timeouts.
	RequestTimeout time.Duration
	// MaxRequestBytes refuses larger proposals with etcd's "request is
	// too large"; 0: no limit.
	MaxRequestBytes int
}

// Client proposes and reads through one member's raft actor.
type Client struct {
	cfg  Config
	ids  idGenerator
	core atomic.Pointer[Core] // nil while the core is down
	// timers holds stopped request timers. Every proposal and read waits
	// with one, and a new timer is two allocations (the timer and its
	// channel); since Go 1.23 a stopped timer's channel holds no stale
	// tick, so a timer can serve one wait after another. The pool is the
	// client's, not the package's: a timer belongs to the synctest bubble
	// it was made in, and each test makes its client in its own.
	timers sync.Pool
}

// New returns a client of member cfg.View.MemberID.
func New(cfg Config) *Client {
	c := &Client{cfg: cfg}
	c.ids.init(uint16(cfg.View.MemberID), time.Now())
	return c
}

// SetCore publishes a started core, or nil for a core going down.
// Writer: the core.
func (c *Client) SetCore(core *Core) { c.core.Store(core) }

// Core returns the running core, nil while it is down.
func (c *Client) Core() *Core { return c.core.Load() }

// Store returns the running core's backend, nil while it is down.
func (c *Client) Store() *mvcc.Store {
	if co := c.core.Load(); co != nil {
		return co.Store
	}
	return nil
}

// View returns the member's read model.
func (c *Client) View() *memberview.View { return c.cfg.View }

// Waits returns the registries the core's actors answer through.
func (c *Client) Waits() *Waits { return c.cfg.Waits }

// AppliedIndex is the index the applier has applied.
func (c *Client) AppliedIndex() uint64 { return c.cfg.Waits.Applied.Current() }

// Pending reports how many requests wait for raft.
func (c *Client) Pending() int { return c.cfg.Waits.Pending() }

// RequestTimeout is how long a request waits for raft.
func (c *Client) RequestTimeout() time.Duration { return c.cfg.RequestTimeout }

// NextID returns a request id unique across members and restarts.
func (c *Client) NextID() uint64 { return c.ids.next() }

// Propose replicates req through raft and waits until the applier has
// applied it; it returns the applier's response. req's header gets a new
// request id.
func (c *Client) Propose(ctx context.Context, req *pb.InternalRaftRequest) (any, error) {
	id := c.NextID()
	// The caller may have stamped the sender's user and auth revision
	// into a header of its own, which then takes the id.
	if req.Header == nil {
		req.Header = &pb.RequestHeader{}
	}
	req.Header.ID = id
	data, err := proto.Marshal(req)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if c.cfg.MaxRequestBytes > 0 && len(data) > c.cfg.MaxRequestBytes {
		return nil, rpctypes.ErrGRPCRequestTooLarge
	}
	co := c.core.Load()
	if co == nil {
		return nil, ErrStopped
	}
	res, err := ask(ctx, c, c.cfg.Waits.Proposals, id, co.Raft, &messages.Propose{ID: id, Data: data}, withdrawProposal)
	if err != nil {
		metrics.ProposalsFailed.Inc()
		return nil, err
	}
	return res.Resp, nil
}

// ProposeAs is Propose for a caller that knows the response type, T: a
// response of another type is a broken invariant reported as Internal.
func ProposeAs[T any](ctx context.Context, c *Client, req *pb.InternalRaftRequest) (T, error) {
	var zero T
	resp, err := c.Propose(ctx, req)
	if err != nil {
		return zero, err
	}
	r, ok := resp.(T)
	if !ok {
		return zero, status.Errorf(codes.Internal, "troupe: proposal answered with %T, want %T", resp, zero)
	}
	return r, nil
}

// ProposeConfChange replicates a membership change and waits until it is
// applied; it returns the members after it.
func (c *Client) ProposeConfChange(ctx context.Context, cc *raftpb.ConfChange) ([]membership.Member, error) {
	co := c.core.Load()
	if co == nil {
		return nil, ErrStopped
	}
	id := c.NextID()
	cc.Id = &id
	res, err := ask(ctx, c, c.cfg.Waits.ConfChanges, id, co.Raft, &messages.ProposeConfChange{CC: cc}, nil)
	if err != nil {
		return nil, err
	}
	return res.Members, nil
}

// ReadIndex returns a read index raft confirmed after the call began
// (reads that queue meanwhile share one round). Without a leader it waits
// as etcd's does: the raft actor fails the round with "request timed out"
// after the request timeout, unless a leader elected meanwhile serves it.
// On a leader that is the only voter it returns the index the raft actor
// published (see LocalReadIndex) without a message: raft would answer
// that leader's round with its commit index without asking anyone, so
// only the round trip through the raft actor is saved (5-7 % of a
// member's CPU serving linearizable gets, 13 allocations per get).
func (c *Client) ReadIndex(ctx context.Context) (uint64, error) {
	co := c.core.Load()
	if co == nil {
		return 0, ErrStopped
	}
	if index := co.LocalReads.Load(); index != 0 {
		return index, nil
	}
	id := c.NextID()
	// etcd's read waits on the request's context alone: the raft actor
	// ends every round within the request timeout, and a read waits at
	// most for the round in flight and its own, so the bound here is
	// only a backstop.
	res, err := askWithin(ctx, c, 2*c.cfg.RequestTimeout+withdrawGrace, c.cfg.Waits.Reads, id, co.Raft, &messages.ReadIndex{ID: id}, nil)
	if err != nil {
		return 0, err
	}
	return res.Index, nil
}

// LinearizableRead returns once the applier has reached a read index that
// raft confirmed after the call began: the backend then shows every write
// acknowledged before the call.
func (c *Client) LinearizableRead(ctx context.Context) error {
	index, err := c.ReadIndex(ctx)
	if err != nil {
		return err
	}
	return c.WaitApplied(ctx, index)
}

// WaitApplied returns once the applier has applied index, bounded by ctx
// and the request timeout.
func (c *Client) WaitApplied(ctx context.Context, index uint64) error {
	// Usually applied already (reads outnumber writes): skip the timer
	// and child context, which cost a read more than the wait itself.
	if c.cfg.Waits.Applied.Current() >= index {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	if err := c.cfg.Waits.Applied.Wait(wctx, index); err != nil {
		return ContextError(ctx, err)
	}
	return nil
}

// TransferLeadership asks the raft actor, on the leader, to hand
// leadership to member to and waits until to leads or ctx ends. Errors
// are etcd's.
func (c *Client) TransferLeadership(ctx context.Context, to uint64) error {
	v := c.cfg.View
	if !v.IsLeader() {
		return rpctypes.ErrGRPCNotLeader
	}
	if !v.IsVoter(to) {
		return rpctypes.ErrGRPCBadLeaderTransferee
	}
	co := c.core.Load()
	if co == nil {
		return ErrStopped
	}
	c.cfg.Root.Send(co.Raft, &messages.TransferLeadership{To: to})
	// Polled: the view learns the leader from the raft actor's Readies,
	// and a transfer takes election ticks, so 10 ms costs nothing.
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for v.Leader() != to {
		select {
		case <-ctx.Done():
			return errTimeoutLeaderTransfer
		case <-t.C:
		}
	}
	return nil
}

// CommitBackend asks the applier to commit everything it applied to bbolt
// and waits until the commit is durable, so a copy of the backend file
// taken after it holds every applied write.
func (c *Client) CommitBackend(ctx context.Context) error {
	co := c.core.Load()
	if co == nil {
		return ErrStopped
	}
	res, err := c.cfg.Root.RequestFuture(co.Applier, &messages.CommitBackend{}, c.cfg.RequestTimeout).Result()
	if err != nil {
		return ErrStopped // the core restarted meanwhile
	}
	if r, ok := res.(*messages.BackendCommitted); ok && r.Err != nil {
		return status.Errorf(codes.Internal, "commit backend: %v", r.Err)
	}
	return nil
}

// AskLessor sends msg to the running core's lessor and waits for its
// answer, bounded by the request timeout.
func (c *Client) AskLessor(msg any) (any, error) {
	co := c.core.Load()
	if co == nil {
		return nil, ErrStopped
	}
	res, err := c.cfg.Root.RequestFuture(co.Lessor, msg, c.cfg.RequestTimeout).Result()
	if errors.Is(err, actor.ErrTimeout) {
		return nil, rpctypes.ErrGRPCTimeout
	}
	if err != nil {
		return nil, ErrStopped
	}
	return res, nil
}

// outcome is a result type of one of the registries.
type outcome interface {
	Result | ReadResult | ConfChangeResult
	failure() error
}

func (r Result) failure() error           { return r.Err }
func (r ReadResult) failure() error       { return r.Err }
func (r ConfChangeResult) failure() error { return r.Err }

// ask registers id in reg, sends msg to the raft actor and waits for id's
// outcome, bounded by ctx and the request timeout; a waiter that gives up
// cancels id. With withdraw (which makes the withdrawal of id), the raft
// actor is told of a waiter that gives up, and at the request timeout it gives the answer
// (it alone knows whether raft took the request). The error is the
// wait's or the outcome's.
func ask[T outcome](ctx context.Context, c *Client, reg *wait.Registry[T], id uint64, raft *actor.PID, msg any, withdraw func(id uint64) any) (T, error) {
	return askWithin(ctx, c, c.cfg.RequestTimeout, reg, id, raft, msg, withdraw)
}

// askWithin is ask with another bound than the request timeout.
func askWithin[T outcome](ctx context.Context, c *Client, timeout time.Duration, reg *wait.Registry[T], id uint64, raft *actor.PID, msg any, withdraw func(id uint64) any) (T, error) {
	ch := reg.RegisterReused(id)
	c.cfg.Root.Send(raft, msg)
	t := c.getTimer(timeout)
	defer c.putTimer(t)
	select {
	case x := <-ch:
		reg.Reuse(ch)
		return outcomeOf(x)
	case <-ctx.Done():
		reg.Cancel(id)
		if withdraw != nil {
			c.cfg.Root.Send(raft, withdraw(id))
		}
		var zero T
		return zero, ContextError(ctx, ctx.Err())
	case <-t.C:
	}
	if withdraw != nil {
		c.cfg.Root.Send(raft, withdraw(id))
		t.Reset(withdrawGrace)
		select {
		case x := <-ch:
			reg.Reuse(ch)
			return outcomeOf(x)
		case <-ctx.Done():
		case <-t.C:
		}
	}
	reg.Cancel(id)
	var zero T
	return zero, rpctypes.ErrGRPCTimeout
}

// getTimer returns a timer that fires after d.
func (c *Client) getTimer(d time.Duration) *time.Timer {
	if t, ok := c.timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

// putTimer stops t and keeps it for another wait.
func (c *Client) putTimer(t *time.Timer) {
	t.Stop()
	c.timers.Put(t)
}

// withdrawProposal is the withdrawal of proposal id, made only when a
// proposer gives up (one per proposal was 1 % of a put's allocations).
func withdrawProposal(id uint64) any { return &messages.WithdrawProposal{ID: id} }

func outcomeOf[T outcome](x T) (T, error) {
	if err := x.failure(); err != nil {
		var zero T
		return zero, err
	}
	return x, nil
}

// ContextError is etcd's answer for a request whose wait ended with err:
// the caller's own cancellation or deadline as gRPC's, a deadline of the
// server's as etcd's request timeout.
func ContextError(ctx context.Context, err error) error {
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return rpctypes.ErrGRPCTimeout
	}
	return status.FromContextError(err).Err()
}
