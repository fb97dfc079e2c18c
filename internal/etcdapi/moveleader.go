package etcdapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// MoveLeader hands leadership to req.TargetID; only the leader can, as in
// etcd (ErrGRPCNotLeader otherwise), and it returns once the target leads.
func (m *Maintenance) MoveLeader(ctx context.Context, req *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if err := m.admin(ctx); err != nil {
		return nil, err
	}
	if err := m.KV.cfg.Raft.TransferLeadership(ctx, req.TargetID); err != nil {
		return nil, err
	}
	st := m.KV.cfg.Raft.View()
	return &pb.MoveLeaderResponse{Header: newHeader(st, 0)}, nil
}
