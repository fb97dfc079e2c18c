package etcdapi

import (
	"context"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/persistence/auth"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// KVConfig configures the KV service.
type KVConfig struct {
	// Raft proposes and reads through the member's raft actor (its
	// RequestTimeout bounds every wait) and gives the running backend.
	Raft            *raftclient.Client
	MaxRequestBytes int
	MaxTxnOps       int
	// QuotaBytes is --quota-backend-bytes in effect; <= 0 means no quota.
	QuotaBytes int64
	// Auth finds who sent a request (nil: nobody, as with auth off).
	Auth *Authenticator
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

var errCoreDown = raftclient.ErrStopped

// Range reads keys; see etcd's RangeRequest for every field.
func (s *KV) Range(ctx context.Context, req *pb.RangeRequest) (*pb.RangeResponse, error) {
	_ = failpoint.Inject("kvRangePanic")
	if err := mvcc.ValidateRange(req); err != nil {
		return nil, toGRPC(err)
	}
	st, ai, err := s.rangeStore(ctx, req)
	if err != nil {
		return nil, err
	}
	resp, err := st.Range(req)
	if err != nil {
		return nil, toGRPC(err)
	}
	if err := s.cfg.Auth.fresh(ai); err != nil {
		return nil, err
	}
	s.fill(resp.Header)
	return resp, nil
}

// rangeStore readies a valid Range or RangeStream: the read barrier
// unless it is serializable, then the sender's permission on its keys. It
// returns the backend to read and who asked, for the auth check after the
// read (fresh).
func (s *KV) rangeStore(ctx context.Context, req *pb.RangeRequest) (*mvcc.Store, auth.Info, error) {
	if !req.Serializable {
		if err := s.linearizableRead(ctx); err != nil {
			return nil, auth.Info{}, err
		}
	}
	ai, err := s.cfg.Auth.check(ctx, func(st *auth.State, ai auth.Info) error {
		return st.IsRangePermitted(ai, req.Key, req.RangeEnd)
	})
	if err != nil {
		return nil, ai, err
	}
	st := s.cfg.Raft.Store()
	if st == nil {
		return nil, ai, errCoreDown
	}
	return st, ai, nil
}

// Put writes one key.
func (s *KV) Put(ctx context.Context, req *pb.PutRequest) (*pb.PutResponse, error) {
	if err := mvcc.ValidatePut(req); err != nil {
		return nil, toGRPC(err)
	}
	if err := s.checkQuota(ctx, costPut(req)); err != nil {
		return nil, err
	}
	ir := newRaftRequest()
	ir.Put = req
	r, err := proposeAs[*pb.PutResponse](ctx, s, ir)
	if err != nil {
		return nil, err
	}
	s.fill(r.Header)
	return r, nil
}

// DeleteRange deletes a key or a range.
func (s *KV) DeleteRange(ctx context.Context, req *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := mvcc.ValidateDeleteRange(req); err != nil {
		return nil, toGRPC(err)
	}
	ir := newRaftRequest()
	ir.DeleteRange = req
	r, err := proposeAs[*pb.DeleteRangeResponse](ctx, s, ir)
	if err != nil {
		return nil, err
	}
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
	ir := newRaftRequest()
	ir.Txn = req
	r, err := proposeAs[*pb.TxnResponse](ctx, s, ir)
	if err != nil {
		return nil, err
	}
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
	ai, err := s.cfg.Auth.check(ctx, func(st *auth.State, ai auth.Info) error { return st.CheckTxn(ai, req) })
	if err != nil {
		return nil, err
	}
	st := s.cfg.Raft.Store()
	if st == nil {
		return nil, errCoreDown
	}
	resp, err := st.ReadTxn(req)
	if err != nil {
		return nil, toGRPC(err)
	}
	if err := s.cfg.Auth.fresh(ai); err != nil {
		return nil, err
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
	r, err := proposeAs[*pb.CompactionResponse](ctx, s, &pb.InternalRaftRequest{Compaction: req})
	if err != nil {
		return nil, err
	}
	s.fill(r.Header)
	return r, nil
}

// propose replicates r through raft and waits for the applier's result.
// An active alarm is not checked here: the applier refuses what an alarm
// forbids in log order, as etcd's capped applier does, so a write ordered
// after a disarm made through another member passes even while this
// member's view has not applied the disarm yet.
func (s *KV) propose(ctx context.Context, r *pb.InternalRaftRequest) (any, error) {
	if err := s.stamp(ctx, r); err != nil {
		return nil, err
	}
	resp, err := s.cfg.Raft.Propose(ctx, r)
	return resp, toGRPC(err)
}

// proposeAs is propose for a request whose response type is known.
func proposeAs[T any](ctx context.Context, s *KV, r *pb.InternalRaftRequest) (T, error) {
	if err := s.stamp(ctx, r); err != nil {
		var zero T
		return zero, err
	}
	resp, err := raftclient.ProposeAs[T](ctx, s.cfg.Raft, r)
	return resp, toGRPC(err)
}

// stamp puts the sender's user and auth revision into r's header, as
// etcd's processInternalRaftRequestOnce, for the applier's permission
// checks; an Authenticate carries none (its password was checked here).
func (s *KV) stamp(ctx context.Context, r *pb.InternalRaftRequest) error {
	if r.Authenticate != nil {
		return nil
	}
	user, rev, err := s.cfg.Auth.stamp(ctx)
	if err != nil {
		return err
	}
	if user != "" || rev != 0 {
		if r.Header == nil {
			r.Header = &pb.RequestHeader{}
		}
		r.Header.Username, r.Header.AuthRevision = user, rev
	}
	return nil
}

// newRaftRequest returns a request with its header in the same
// allocation, for the writes every client makes (put, delete, txn): the
// two live and die together, and raftclient.Propose fills the header in
// place instead of allocating one.
func newRaftRequest() *pb.InternalRaftRequest {
	x := new(struct {
		req pb.InternalRaftRequest
		hdr pb.RequestHeader
	})
	x.req.Header = &x.hdr
	return &x.req
}

// linearizableRead returns once the applier has reached a read index that
// raft confirmed after the call began.
func (s *KV) linearizableRead(ctx context.Context) error {
	return s.cfg.Raft.LinearizableRead(ctx)
}

func (s *KV) fill(h *pb.ResponseHeader) {
	if h == nil {
		return
	}
	st := s.cfg.Raft.View()
	h.ClusterId = st.ClusterID
	h.MemberId = st.MemberID
	h.RaftTerm = st.Term()
}

// newHeader is this member's response header at revision rev.
func newHeader(st *memberview.View, rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: st.ClusterID, MemberId: st.MemberID, RaftTerm: st.Term(), Revision: rev}
}
