package etcdapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// HashKV hashes the key history up to req.Revision (0: current) as etcd
// 3.6's HashByRev does (mvcc.Store.HashByRev); members that applied the
// same history answer the same hash. The header carries the current
// revision, HashRevision the revision hashed.
func (m *Maintenance) HashKV(ctx context.Context, req *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	if err := m.admin(ctx); err != nil {
		return nil, err
	}
	store := m.KV.cfg.Raft.Store()
	if store == nil {
		return nil, errCoreDown
	}
	h, current, err := store.HashByRev(req.Revision)
	if err != nil {
		return nil, toGRPC(err)
	}
	st := m.KV.cfg.Raft.View()
	return &pb.HashKVResponse{
		Header:          newHeader(st, current),
		Hash:            h.Hash,
		CompactRevision: h.CompactRevision,
		HashRevision:    h.Revision,
	}, nil
}
