package etcdapi

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/troupedb/troupe/persistence/alarm"
)

// checkQuota refuses a write whose estimated cost would take the backend
// file past --quota-backend-bytes, with etcd's ErrGRPCNoSpace, and raises
// this member's NOSPACE alarm (see raiseNoSpace), which keeps writes that
// add data refused on every member until an operator disarms it. Writes
// that add nothing (deletes, compactions) always pass, so space can be
// freed.
func (s *KV) checkQuota(ctx context.Context, cost int) error {
	if s.cfg.QuotaBytes <= 0 || cost == 0 {
		return nil
	}
	size, ok := s.dbSize()
	if !ok {
		return nil // the proposal will fail with the core down
	}
	if size+int64(cost) >= s.cfg.QuotaBytes {
		s.raiseNoSpace(ctx)
		return rpctypes.ErrGRPCNoSpace
	}
	return nil
}

// dbSizeMaxAge bounds how stale the backend size the quota check uses may
// be: reading it opens a bbolt transaction, too dear for every write. The
// file grows by bbolt's mmap steps, so a few milliseconds of staleness lets
// at most a few batches past a quota that was just reached.
const dbSizeMaxAge = 10 * time.Millisecond

func (s *KV) dbSize() (int64, bool) {
	now := time.Now().UnixNano()
	if at := s.sizeAt.Load(); now-at < int64(dbSizeMaxAge) {
		return s.size.Load(), true
	}
	st := s.cfg.Raft.Store()
	if st == nil {
		return 0, false
	}
	size, _ := st.DBSize()
	s.size.Store(size)
	s.sizeAt.Store(now)
	return size, true
}

func costPut(r *pb.PutRequest) int { return alarm.CostPut(r) }

func costTxn(r *pb.TxnRequest) int { return alarm.CostTxn(r) }
