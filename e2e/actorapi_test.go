package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/client/actorclient"
	"github.com/troupedb/troupe/e2e/e2etest"
)

// TestActorAPI talks to a real troupe process over protoactor remote, as an
// actor-system program would, and checks the data is the one etcd clients
// see.
func TestActorAPI(t *testing.T) {
	srv := e2etest.Start(t, e2etest.Config{Kind: e2etest.Troupe})
	system, _ := actorSystem(t)
	kv := actorclient.New(system, srv.ActorAddress(), actorclient.WithTimeout(10*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	put, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("actor/a"), Value: []byte("1")})
	if err != nil {
		t.Fatalf("actor put: %v", err)
	}
	// What the actor API wrote, clientv3 reads, at the same revision.
	get, err := srv.Client(t).Get(ctx, "actor/a")
	if err != nil {
		t.Fatal(err)
	}
	if len(get.Kvs) != 1 || string(get.Kvs[0].Value) != "1" || get.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("clientv3 sees %v, actor put at revision %d", get.Kvs, put.Header.Revision)
	}
	txn, err := kv.Txn(ctx, &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("actor/a"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_Value{Value: []byte("1")}}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("actor/b"), Value: []byte("2")}}}},
	})
	if err != nil || !txn.Succeeded {
		t.Fatalf("actor txn: %v %v", txn, err)
	}
	rng, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("actor/"), RangeEnd: []byte("actor0")})
	if err != nil || rng.Count != 2 {
		t.Fatalf("actor range: %v %v", rng, err)
	}
	if rng.Header.MemberId == 0 || rng.Header.ClusterId == 0 {
		t.Fatalf("header without member and cluster ids: %v", rng.Header)
	}
	// Errors arrive as etcd's, code and message.
	if _, err := kv.Put(ctx, &pb.PutRequest{Value: []byte("x")}); !errors.Is(err, rpctypes.ErrGRPCEmptyKey) {
		t.Fatalf("empty key: got %v, want %v", err, rpctypes.ErrGRPCEmptyKey)
	}
	del, err := kv.Delete(ctx, &pb.DeleteRangeRequest{Key: []byte("actor/"), RangeEnd: []byte("actor0"), PrevKv: true})
	if err != nil || del.Deleted != 2 || len(del.PrevKvs) != 2 {
		t.Fatalf("actor delete: %v %v", del, err)
	}
	if _, err := kv.Compact(ctx, &pb.CompactionRequest{Revision: del.Header.Revision, Physical: true}); err != nil {
		t.Fatalf("actor compact: %v", err)
	}
}

// TestActorAPILeases grants, renews and revokes a lease over the actor
// API; clientv3 sees the same lease.
func TestActorAPILeases(t *testing.T) {
	srv := e2etest.Start(t, e2etest.Config{Kind: e2etest.Troupe})
	system, _ := actorSystem(t)
	c := actorclient.New(system, srv.ActorAddress(), actorclient.WithTimeout(10*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := c.Grant(ctx, &pb.LeaseGrantRequest{TTL: 30})
	if err != nil || g.ID == 0 || g.TTL != 30 {
		t.Fatalf("actor grant: %v %v", g, err)
	}
	if _, err := c.Put(ctx, &pb.PutRequest{Key: []byte("actor/leased"), Lease: g.ID}); err != nil {
		t.Fatal(err)
	}
	if ka, err := c.KeepAliveOnce(ctx, &pb.LeaseKeepAliveRequest{ID: g.ID}); err != nil || ka.TTL != 30 {
		t.Fatalf("actor keep-alive: %v %v", ka, err)
	}
	ttl, err := srv.Client(t).TimeToLive(ctx, clientv3.LeaseID(g.ID), clientv3.WithAttachedKeys())
	if err != nil || ttl.GrantedTTL != 30 || len(ttl.Keys) != 1 {
		t.Fatalf("clientv3 time to live of the actor's lease: %v %v", ttl, err)
	}
	if _, err := c.Revoke(ctx, &pb.LeaseRevokeRequest{ID: g.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Revoke(ctx, &pb.LeaseRevokeRequest{ID: g.ID}); !errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) {
		t.Fatalf("actor revoke twice: %v", err)
	}
	if tl, err := c.TimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: g.ID}); err != nil || tl.TTL != -1 {
		t.Fatalf("actor time to live of a revoked lease: %v %v", tl, err)
	}
}
