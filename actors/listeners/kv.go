package listeners

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/internal/memberstate"
	"github.com/troupedb/troupe/internal/metrics"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// KVConfig configures the KV service.
type KVConfig struct {
	State           *memberstate.State
	Root            *actor.RootContext
	MaxRequestBytes int
	MaxTxnOps       int
	// RequestTimeout bounds how long a request waits for raft; etcd uses
	// 5 s plus two election timeouts.
	RequestTimeout time.Duration
	// QuotaBytes is --quota-backend-bytes in effect; <= 0 means no quota.
	QuotaBytes int64
}

// KV serves etcd's KV service: writes go through raft and wait for the
// applier through the wait registry; linearizable reads take a shared read
// index and then read the backend on the caller's goroutine.
type KV struct {
	pb.UnimplementedKVServer
	cfg KVConfig

	// backend size last read for the quota check, and when (unix ns)
	size, sizeAt atomic.Int64
}

// NewKV returns the KV service. The actor API serves the same value.
func NewKV(cfg KVConfig) *KV { return &KV{cfg: cfg} }

var errCoreDown = status.Error(codes.Unavailable, "etcdserver: server stopped")

// Range reads keys; see etcd's RangeRequest for every field.
func (s *KV) Range(ctx context.Context, req *pb.RangeRequest) (*pb.RangeResponse, error) {
	_ = failpoint.Inject("kvRangePanic")
	if err := mvcc.ValidateRange(req); err != nil {
		return nil, toGRPC(err)
	}
	if !req.Serializable {
		if err := s.linearizableRead(ctx); err != nil {
			return nil, err
		}
	}
	st := s.cfg.State.Store()
	if st == nil {
		return nil, errCoreDown
	}
	resp, err := st.Range(req)
	if err != nil {
		return nil, toGRPC(err)
	}
	s.fill(resp.Header)
	return resp, nil
}

// Put writes one key.
func (s *KV) Put(ctx context.Context, req *pb.PutRequest) (*pb.PutResponse, error) {
	if err := mvcc.ValidatePut(req); err != nil {
		return nil, toGRPC(err)
	}
	if err := s.checkQuota(ctx, costPut(req)); err != nil {
		return nil, err
	}
	resp, err := s.propose(ctx, &pb.InternalRaftRequest{Put: req})
	if err != nil {
		return nil, err
	}
	r := resp.(*pb.PutResponse)
	s.fill(r.Header)
	return r, nil
}

// DeleteRange deletes a key or a range.
func (s *KV) DeleteRange(ctx context.Context, req *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := mvcc.ValidateDeleteRange(req); err != nil {
		return nil, toGRPC(err)
	}
	resp, err := s.propose(ctx, &pb.InternalRaftRequest{DeleteRange: req})
	if err != nil {
		return nil, err
	}
	r := resp.(*pb.DeleteRangeResponse)
	s.fill(r.Header)
	return r, nil
}

// Txn runs a transaction at one revision.
func (s *KV) Txn(ctx context.Context, req *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := mvcc.ValidateTxn(req, s.cfg.MaxTxnOps); err != nil {
		return nil, toGRPC(err)
	}
	if mvcc.TxnReadOnly(req) {
		return s.readTxn(ctx, req)
	}
	if err := s.checkQuota(ctx, costTxn(req)); err != nil {
		return nil, err
	}
	resp, err := s.propose(ctx, &pb.InternalRaftRequest{Txn: req})
	if err != nil {
		return nil, err
	}
	r := resp.(*pb.TxnResponse)
	s.fill(r.Header)
	return r, nil
}

// readTxn serves a txn without writes as etcd 3.4 does: after a
// linearizable read barrier (unless every range in it is serializable),
// from the backend, without a raft entry.
func (s *KV) readTxn(ctx context.Context, req *pb.TxnRequest) (*pb.TxnResponse, error) {
	if !txnSerializable(req) {
		if err := s.linearizableRead(ctx); err != nil {
			return nil, err
		}
	}
	st := s.cfg.State.Store()
	if st == nil {
		return nil, errCoreDown
	}
	resp, err := st.ReadTxn(req)
	if err != nil {
		return nil, toGRPC(err)
	}
	s.fill(resp.Header)
	return resp, nil
}

// txnSerializable reports whether every op of req's branches is a
// serializable range, as etcd decides it (a nested txn makes it not).
func txnSerializable(req *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{req.Success, req.Failure} {
		for _, op := range ops {
			if r := op.GetRequestRange(); r == nil || !r.Serializable {
				return false
			}
		}
	}
	return true
}

// Compact compacts the history up to a revision.
func (s *KV) Compact(ctx context.Context, req *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	resp, err := s.propose(ctx, &pb.InternalRaftRequest{Compaction: req})
	if err != nil {
		return nil, err
	}
	r := resp.(*pb.CompactionResponse)
	s.fill(r.Header)
	return r, nil
}

// propose replicates r through raft and waits for the applier's result.
func (s *KV) propose(ctx context.Context, r *pb.InternalRaftRequest) (any, error) {
	if err := s.checkAlarms(r); err != nil {
		return nil, toGRPC(err)
	}
	st := s.cfg.State
	id := st.NextID()
	r.Header = &pb.RequestHeader{ID: id}
	data, err := proto.Marshal(r)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if len(data) > s.cfg.MaxRequestBytes {
		return nil, rpctypes.ErrGRPCRequestTooLarge
	}
	raftPID := st.Raft()
	if raftPID == nil {
		return nil, errCoreDown
	}
	ch := st.Waits.Register(id)
	s.cfg.Root.Send(raftPID, &messages.Propose{ID: id, Data: data})
	res, err := s.await(ctx, id, ch)
	if err != nil {
		metrics.ProposalsFailed.Inc()
		return nil, err
	}
	out := res.(memberstate.Result)
	if out.Err != nil {
		return nil, toGRPC(out.Err)
	}
	return out.Resp, nil
}

// linearizableRead returns once the applier has reached a read index that
// raft confirmed after the call began.
func (s *KV) linearizableRead(ctx context.Context) error {
	st := s.cfg.State
	raftPID := st.Raft()
	if raftPID == nil {
		return errCoreDown
	}
	id := st.NextID()
	ch := st.Waits.Register(id)
	s.cfg.Root.Send(raftPID, &messages.ReadIndex{ID: id})
	res, err := s.await(ctx, id, ch)
	if err != nil {
		return err
	}
	switch v := res.(type) {
	case uint64:
		wctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		defer cancel()
		if err := st.Applied.Wait(wctx, v); err != nil {
			return ctxErr(ctx, err)
		}
		return nil
	case error:
		return v
	default:
		return status.Errorf(codes.Internal, "read index: unexpected %T", v)
	}
}

func (s *KV) await(ctx context.Context, id uint64, ch <-chan any) (any, error) {
	t := time.NewTimer(s.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case x := <-ch:
		if err, ok := x.(error); ok {
			return nil, err
		}
		return x, nil
	case <-ctx.Done():
		s.cfg.State.Waits.Cancel(id)
		return nil, ctxErr(ctx, ctx.Err())
	case <-t.C:
		s.cfg.State.Waits.Cancel(id)
		return nil, rpctypes.ErrGRPCTimeout
	}
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return rpctypes.ErrGRPCTimeout
	}
	return status.FromContextError(err).Err()
}

func (s *KV) fill(h *pb.ResponseHeader) {
	if h == nil {
		return
	}
	st := s.cfg.State
	h.ClusterId = st.ClusterID
	h.MemberId = st.MemberID
	h.RaftTerm = st.Term()
}

// newHeader is this member's response header at revision rev.
func newHeader(st *memberstate.State, rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: st.ClusterID, MemberId: st.MemberID, RaftTerm: st.Term(), Revision: rev}
}
