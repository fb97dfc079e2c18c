package listeners

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Hash hashes this member's whole backend as etcd 3.4 does (every bucket
// but the consistent index); compare members with HashKV instead, which
// does not count membership or lease records written at different times.
func (m *Maintenance) Hash(ctx context.Context, _ *pb.HashRequest) (*pb.HashResponse, error) {
	store := m.State.Store()
	if store == nil {
		return nil, errCoreDown
	}
	h, rev, err := store.Hash()
	if err != nil {
		return nil, err
	}
	st := m.State
	return &pb.HashResponse{
		Header: &pb.ResponseHeader{ClusterId: st.ClusterID, MemberId: st.MemberID, RaftTerm: st.Term(), Revision: rev},
		Hash:   h,
	}, nil
}

// Defragment rewrites this member's backend file without its free pages
// (only this member, as etcd). Requests wait while it runs.
func (m *Maintenance) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	store := m.State.Store()
	if store == nil {
		return nil, errCoreDown
	}
	if err := store.Defrag(); err != nil {
		return nil, err
	}
	return &pb.DefragmentResponse{}, nil
}
