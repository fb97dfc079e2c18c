package actorapi

import (
	"context"
	"errors"
	"sync"
	"testing"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// fakeLeases is a LeaseService over a map: enough to check that every
// operation and error crosses the actor API unchanged.
type fakeLeases struct {
	mu     sync.Mutex
	leases map[int64]int64 // id -> TTL
}

func (f *fakeLeases) LeaseGrant(_ context.Context, r *etcdserverpb.LeaseGrantRequest) (*etcdserverpb.LeaseGrantResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.leases[r.ID]; ok {
		return nil, rpctypes.ErrGRPCLeaseExist
	}
	f.leases[r.ID] = r.TTL
	return &etcdserverpb.LeaseGrantResponse{ID: r.ID, TTL: r.TTL}, nil
}

func (f *fakeLeases) LeaseRevoke(_ context.Context, r *etcdserverpb.LeaseRevokeRequest) (*etcdserverpb.LeaseRevokeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.leases[r.ID]; !ok {
		return nil, rpctypes.ErrGRPCLeaseNotFound
	}
	delete(f.leases, r.ID)
	return &etcdserverpb.LeaseRevokeResponse{}, nil
}

func (f *fakeLeases) LeaseKeepAliveOnce(_ context.Context, r *etcdserverpb.LeaseKeepAliveRequest) (*etcdserverpb.LeaseKeepAliveResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &etcdserverpb.LeaseKeepAliveResponse{ID: r.ID, TTL: f.leases[r.ID]}, nil
}

func (f *fakeLeases) LeaseTimeToLive(_ context.Context, r *etcdserverpb.LeaseTimeToLiveRequest) (*etcdserverpb.LeaseTimeToLiveResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ttl, ok := f.leases[r.ID]
	if !ok {
		ttl = -1
	}
	return &etcdserverpb.LeaseTimeToLiveResponse{ID: r.ID, TTL: ttl, GrantedTTL: max(ttl, 0)}, nil
}

func (f *fakeLeases) LeaseLeases(context.Context, *etcdserverpb.LeaseLeasesRequest) (*etcdserverpb.LeaseLeasesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &etcdserverpb.LeaseLeasesResponse{}
	for id := range f.leases {
		resp.Leases = append(resp.Leases, &etcdserverpb.LeaseStatus{ID: id})
	}
	return resp, nil
}

func TestLeaseRoundTrip(t *testing.T) {
	s := startServer(t, ServeConfig{KV: newFakeKV(), Lease: &fakeLeases{leases: map[int64]int64{}}})
	c := newClient(t, s)
	ctx := context.Background()
	if g, err := c.Grant(ctx, &etcdserverpb.LeaseGrantRequest{ID: 5, TTL: 30}); err != nil || g.ID != 5 || g.TTL != 30 {
		t.Fatalf("Grant: %v %v", g, err)
	}
	if _, err := c.Grant(ctx, &etcdserverpb.LeaseGrantRequest{ID: 5, TTL: 30}); !errors.Is(err, rpctypes.ErrGRPCLeaseExist) {
		t.Fatalf("second Grant: %v", err)
	}
	if ka, err := c.KeepAliveOnce(ctx, &etcdserverpb.LeaseKeepAliveRequest{ID: 5}); err != nil || ka.TTL != 30 {
		t.Fatalf("KeepAliveOnce: %v %v", ka, err)
	}
	if ttl, err := c.TimeToLive(ctx, &etcdserverpb.LeaseTimeToLiveRequest{ID: 5}); err != nil || ttl.GrantedTTL != 30 {
		t.Fatalf("TimeToLive: %v %v", ttl, err)
	}
	if ls, err := c.Leases(ctx, &etcdserverpb.LeaseLeasesRequest{}); err != nil || len(ls.Leases) != 1 {
		t.Fatalf("Leases: %v %v", ls, err)
	}
	if _, err := c.Revoke(ctx, &etcdserverpb.LeaseRevokeRequest{ID: 5}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := c.Revoke(ctx, &etcdserverpb.LeaseRevokeRequest{ID: 5}); !errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) {
		t.Fatalf("second Revoke: %v", err)
	}
}

func TestLeaseWithoutService(t *testing.T) {
	s := startServer(t, ServeConfig{KV: newFakeKV()})
	c := newClient(t, s)
	if _, err := c.Grant(context.Background(), &etcdserverpb.LeaseGrantRequest{TTL: 30}); !errors.Is(err, ErrNoLeaseService) {
		t.Fatalf("Grant without a lease service: %v", err)
	}
}
