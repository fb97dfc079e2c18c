package etcdapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Hash hashes this member's whole backend as etcd 3.4 does (every bucket
// but the consistent index); compare members with HashKV instead, which
// does not count membership or lease records written at different times.
func (m *Maintenance) Hash(ctx context.Context, _ *pb.HashRequest) (*pb.HashResponse, error) {
	if err := m.admin(ctx); err != nil {
		return nil, err
	}
	store := m.KV.cfg.Raft.Store()
	if store == nil {
		return nil, errCoreDown
	}
	h, rev, err := store.Hash()
	if err != nil {
		return nil, err
	}
	st := m.KV.cfg.Raft.View()
	return &pb.HashResponse{
		Header: newHeader(st, rev),
		Hash:   h,
	}, nil
}

// Defragment rewrites this member's backend file without its free pages
// (only this member, as etcd). Requests wait while it runs. As etcd, it
// first commits what was applied, so the new file holds it: after a
// compaction, the deletes free their pages before the copy and the file
// shrinks at once (what frees space under a NOSPACE alarm).
func (m *Maintenance) Defragment(ctx context.Context, _ *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if err := m.admin(ctx); err != nil {
		return nil, err
	}
	store := m.KV.cfg.Raft.Store()
	if store == nil {
		return nil, errCoreDown
	}
	if err := m.KV.cfg.Raft.CommitBackend(ctx); err != nil {
		return nil, err
	}
	if err := store.Defrag(); err != nil {
		return nil, err
	}
	return &pb.DefragmentResponse{}, nil
}
