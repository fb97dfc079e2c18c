//go:build !race

// These tests run more than one protoactor remote in the process (a
// cluster, or a member and an actor API client), which the race detector
// reports in protoactor and gRPC (see cluster_test.go).

package node

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/metadata"

	"github.com/troupedb/troupe/actors/actorapi"
	"github.com/troupedb/troupe/client/actorclient"
)

// The actor API carries a token: its requests are checked as gRPC ones.
func TestAuthActorAPIToken(t *testing.T) {
	var actorAddr string
	cfg, root := authMember(t, func(c *Config) {
		actorAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		c.ListenActorURL = actorAddr
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	putAppAndOther(t, root)
	tok, err := client(t, cfg).Authenticate(ctx, "alice", "alicepw")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	r := remote.NewRemote(system, remote.Configure("127.0.0.1", 0,
		remote.WithDialOptions(actorapi.DialOptions(actorapi.DefaultMaxMessageBytes)...)))
	r.Start()
	t.Cleanup(func() { r.Shutdown(true); system.Shutdown() })

	alice := actorclient.New(system, actorAddr, actorclient.WithTimeout(10*time.Second), actorclient.WithToken(tok.Token))
	if _, err := alice.Range(ctx, &pb.RangeRequest{Key: []byte("/app/x")}); err != nil {
		t.Errorf("alice range /app/x over the actor API: %v", err)
	}
	_, err = alice.Range(ctx, &pb.RangeRequest{Key: []byte("/other")})
	wantErr(t, "alice range /other over the actor API", err, rpctypes.ErrGRPCPermissionDenied)
	_, err = alice.Put(ctx, &pb.PutRequest{Key: []byte("/other"), Value: []byte("2")})
	wantErr(t, "alice put /other over the actor API", err, rpctypes.ErrGRPCPermissionDenied)
	if _, err := alice.Put(ctx, &pb.PutRequest{Key: []byte("/app/y"), Value: []byte("2")}); err != nil {
		t.Errorf("alice put /app/y over the actor API: %v", err)
	}
	_, err = alice.Watch(ctx, &pb.WatchCreateRequest{Key: []byte("/other")})
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("alice watch /other over the actor API: %v, want permission denied", err)
	}
	w, err := alice.Watch(ctx, &pb.WatchCreateRequest{Key: []byte("/app/x")})
	if err != nil {
		t.Errorf("alice watch /app/x over the actor API: %v", err)
	} else {
		w.Close()
	}
	_, err = alice.TimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: 1, Keys: true})
	if err != nil && rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(rpctypes.ErrGRPCUserEmpty) {
		t.Errorf("alice's token did not reach the lease service: %v", err)
	}

	anon := actorclient.New(system, actorAddr, actorclient.WithTimeout(10*time.Second))
	_, err = anon.Range(ctx, &pb.RangeRequest{Key: []byte("/app/x")})
	wantErr(t, "range without a token over the actor API", err, rpctypes.ErrGRPCUserEmpty)
	forged := actorclient.New(system, actorAddr, actorclient.WithTimeout(10*time.Second), actorclient.WithToken("forged.1"))
	_, err = forged.Range(ctx, &pb.RangeRequest{Key: []byte("/app/x")})
	wantErr(t, "range with a forged token over the actor API", err, rpctypes.ErrGRPCInvalidAuthToken)
}

// In a cluster a simple token made through one member is valid on every
// member (each assigns it when it applies the Authenticate entry); a
// follower's proposals carry the user to the applier, and its forwarded
// lease time-to-live carries the token to the leader.
func TestAuthCluster(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.BcryptCost = 4 })
	lead := c.waitLeader()
	f := (lead + 1) % 3
	admin := c.client(f)
	enableAuth(t, admin) // through a follower
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tokenOf := func(user, pw string) context.Context {
		resp, err := admin.Authenticate(ctx, user, pw)
		if err != nil {
			t.Fatalf("authenticate %s through a follower: %v", user, err)
		}
		return metadata.AppendToOutgoingContext(ctx, rpctypes.TokenFieldNameGRPC, resp.Token)
	}
	alice, bob := tokenOf("alice", "alicepw"), tokenOf("bob", "bobpw")
	lease, err := pb.NewLeaseClient(rawConn(t, c.cfgs[lead])).LeaseGrant(alice, &pb.LeaseGrantRequest{TTL: 60})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pb.NewKVClient(rawConn(t, c.cfgs[f])).Put(alice, &pb.PutRequest{Key: []byte("/app/x"), Value: []byte("1"), Lease: lease.ID}); err != nil {
		t.Fatalf("alice put through a follower: %v", err)
	}
	for i := range c.cfgs {
		conn := rawConn(t, c.cfgs[i])
		if _, err := pb.NewKVClient(conn).Range(alice, &pb.RangeRequest{Key: []byte("/app/x")}); err != nil {
			t.Errorf("member %d: alice's token: %v", i, err)
		}
		_, err := pb.NewKVClient(conn).Put(alice, &pb.PutRequest{Key: []byte("/other"), Value: []byte("1")})
		wantErr(t, fmt.Sprintf("member %d: alice put /other", i), err, rpctypes.ErrGRPCPermissionDenied)
		_, err = pb.NewKVClient(conn).Range(bob, &pb.RangeRequest{Key: []byte("/app/x")})
		wantErr(t, fmt.Sprintf("member %d: bob range /app/x", i), err, rpctypes.ErrGRPCPermissionDenied)
		ttl := &pb.LeaseTimeToLiveRequest{ID: lease.ID, Keys: true}
		// A follower lists the keys from its own store, after a read
		// index round, so the put just acknowledged is there.
		if resp, err := pb.NewLeaseClient(conn).LeaseTimeToLive(alice, ttl); err != nil {
			t.Errorf("member %d: alice lease ttl with keys: %v", i, err)
		} else if len(resp.Keys) != 1 || string(resp.Keys[0]) != "/app/x" || resp.TTL <= 0 {
			t.Errorf("member %d: alice lease ttl with keys: TTL %d, keys %q; want /app/x", i, resp.TTL, resp.Keys)
		}
		_, err = pb.NewLeaseClient(conn).LeaseTimeToLive(bob, ttl)
		wantErr(t, fmt.Sprintf("member %d: bob lease ttl with keys", i), err, rpctypes.ErrGRPCPermissionDenied)
	}
}
