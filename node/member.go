package node

import (
	"context"
	"errors"
	"io"

	"github.com/asynkron/protoactor-go/actor"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/raftclient"
)

// peerMember is the member as the peer transport sees it (peers.Member):
// the running raft actor and backend from the raft client, membership and
// peer activity from the member view.
type peerMember struct {
	*memberview.View
	raft *raftclient.Client
}

func (m peerMember) Raft() *actor.PID {
	if co := m.raft.Core(); co != nil {
		return co.Raft
	}
	return nil
}

var errBackendRestarting = errors.New("backend is restarting")

func (m peerMember) SnapshotDB() (io.ReadCloser, error) {
	store := m.raft.Store()
	if store == nil {
		return nil, errBackendRestarting
	}
	return store.SnapshotDB()
}

func (m peerMember) HashKV(rev int64) (uint32, int64, int64, error) {
	store := m.raft.Store()
	if store == nil {
		return 0, 0, 0, errBackendRestarting
	}
	return store.HashKV(rev)
}

// compactionMember is the member as the auto compactor sees it
// (compactor.Member): compactions are proposed as a client's Compact is.
type compactionMember struct {
	raft *raftclient.Client
}

func (m compactionMember) Rev() int64 {
	if store := m.raft.Store(); store != nil {
		return store.Rev()
	}
	return 0
}

func (m compactionMember) IsLeader() bool { return m.raft.View().IsLeader() }

func (m compactionMember) Compact(ctx context.Context, rev int64) error {
	_, err := raftclient.ProposeAs[*pb.CompactionResponse](ctx, m.raft, &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: rev}})
	return err
}
