package listeners

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Estimates of what a write adds to the backend, as etcd's quota makes
// them: a key's metadata costs about kvOverhead bytes besides key and value.
const kvOverhead = 256

// checkQuota refuses a write whose estimated cost would take the backend
// file past --quota-backend-bytes, with etcd's ErrGRPCNoSpace. Writes that
// add nothing (deletes, compactions) always pass, so space can be freed.
// etcd also raises a NOSPACE alarm that keeps writes refused until an
// operator disarms it; troupe's alarms come with the maintenance work, and
// until then the check is made afresh for every write.
func (s *KV) checkQuota(cost int) error {
	if s.cfg.QuotaBytes <= 0 || cost == 0 {
		return nil
	}
	st := s.cfg.State.Store()
	if st == nil {
		return nil // the proposal will fail with the core down
	}
	size, _ := st.DBSize()
	if size+int64(cost) >= s.cfg.QuotaBytes {
		return rpctypes.ErrGRPCNoSpace
	}
	return nil
}

func costPut(r *pb.PutRequest) int { return kvOverhead + len(r.Key) + len(r.Value) }

// costTxn is the cost of the costlier branch; nested txns count too.
func costTxn(r *pb.TxnRequest) int {
	return max(costOps(r.Success), costOps(r.Failure))
}

func costOps(ops []*pb.RequestOp) int {
	n := 0
	for _, op := range ops {
		switch v := op.Request.(type) {
		case *pb.RequestOp_RequestPut:
			n += costPut(v.RequestPut)
		case *pb.RequestOp_RequestTxn:
			n += costTxn(v.RequestTxn)
		}
	}
	return n
}
