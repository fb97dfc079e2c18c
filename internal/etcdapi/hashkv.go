package etcdapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// HashKV hashes the key history up to req.Revision (0: current) as etcd
// does; members that applied the same history answer the same hash.
func (m *Maintenance) HashKV(ctx context.Context, req *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	store := m.KV.cfg.Raft.Store()
	if store == nil {
		return nil, errCoreDown
	}
	h, rev, compacted, err := store.HashKV(req.Revision)
	if err != nil {
		return nil, toGRPC(err)
	}
	st := m.KV.cfg.Raft.View()
	return &pb.HashKVResponse{
		Header:          newHeader(st, rev),
		Hash:            h,
		CompactRevision: compacted,
	}, nil
}
