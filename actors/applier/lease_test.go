package applier

import (
	"errors"
	"testing"
	"testing/synctest"

	"github.com/troupedb/troupe/persistence/mvcc"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestApplyLeaseRequests: grant, checkpoint and revoke entries reach the
// store and their waiters get the store's results and errors.
func TestApplyLeaseRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openStore(t)
		sys := newSystem(t)
		f := start(t, sys, Config{Store: store, Client: newClient(sys, 1)})
		res := f.applyAll(
			entry(t, 1, 1, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 30}}),
			entry(t, 2, 2, &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 30}}),
			entry(t, 3, 3, &pb.InternalRaftRequest{LeaseCheckpoint: &pb.LeaseCheckpointRequest{
				Checkpoints: []*pb.LeaseCheckpoint{{ID: 7, Remaining_TTL: 12}}}}),
			entry(t, 4, 4, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 8}}),
		)
		if g, ok := res[0].Resp.(*pb.LeaseGrantResponse); !ok || g.ID != 7 || g.TTL != 30 {
			t.Fatalf("grant result %+v", res[0])
		}
		if !errors.Is(res[1].Err, mvcc.ErrLeaseExists) || !errors.Is(res[3].Err, mvcc.ErrLeaseNotFound) {
			t.Fatalf("errors: grant again %v, revoke unknown %v", res[1].Err, res[3].Err)
		}
		if l, _, ok := store.Lease(7, false); !ok || l.RemainingTTL != 12 {
			t.Fatalf("lease after checkpoint: %+v %v", l, ok)
		}
		if store.ConsistentIndex() != 4 {
			t.Fatalf("consistent index %d, want 4", store.ConsistentIndex())
		}
	})
}
