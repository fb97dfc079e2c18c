//go:build !race

// A member and actor API callers: several protoactor remotes in one
// process (see cluster_test.go for why these tests run without -race).

package node

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/troupedb/troupe/actors/actorapi"
	"github.com/troupedb/troupe/client/actorclient"
	"github.com/troupedb/troupe/internal/tlstest"
	"github.com/troupedb/troupe/messages"
)

// actorCaller is an actor system whose remote calls cfg's actor API over
// TLS with a new certificate of ca named cn (it also serves it: the
// member dials the caller back); it stops at cleanup.
func actorCaller(t *testing.T, ca *tlstest.CA, caFile, cn string) *actor.ActorSystem {
	t.Helper()
	dir := t.TempDir()
	opts := tlstest.Localhost()
	opts.CN = cn
	ca.Issue(t, opts).Write(t, filepath.Join(dir, "c.pem"), filepath.Join(dir, "c.key"))
	logger := slog.New(slog.DiscardHandler)
	ropts, err := actorclient.RemoteOptions(actorclient.TLS{CertFile: filepath.Join(dir, "c.pem"), KeyFile: filepath.Join(dir, "c.key"), TrustedCAFile: caFile, Logger: logger}, actorapi.DefaultMaxMessageBytes)
	if err != nil {
		t.Fatal(err)
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	r := remote.NewRemote(system, remote.Configure("127.0.0.1", 0, ropts...))
	r.Start()
	t.Cleanup(func() { r.Shutdown(true); system.Shutdown() })
	return system
}

// With --client-cert-auth an actor API caller known only by its client
// certificate acts as the user its CN names, as a gRPC client does, and
// cannot name another user by putting one in cert_user.
func TestAuthActorAPICommonName(t *testing.T) {
	ca := tlstest.NewCA(t, "client-ca")
	cfg, files := startTLSMember(t, ca, func(cfg *Config) {
		cfg.BcryptCost = 4
		cfg.ListenActorURL = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	})
	root, _ := certClient(t, cfg, ca, "root")
	enableAuth(t, root)
	putAppAndOther(t, root)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	aliceSystem := actorCaller(t, ca, files.caFile, "alice")
	alice := actorclient.New(aliceSystem, cfg.ListenActorURL, actorclient.WithTimeout(10*time.Second))
	if _, err := alice.Range(ctx, &pb.RangeRequest{Key: []byte("/app/x")}); err != nil {
		t.Errorf("alice (by CN) range /app/x over the actor API: %v", err)
	}
	if _, err := alice.Put(ctx, &pb.PutRequest{Key: []byte("/app/y"), Value: []byte("2")}); err != nil {
		t.Errorf("alice (by CN) put /app/y over the actor API: %v", err)
	}
	_, err := alice.Range(ctx, &pb.RangeRequest{Key: []byte("/other")})
	wantErr(t, "alice (by CN) range /other over the actor API", err, rpctypes.ErrGRPCPermissionDenied)
	_, err = alice.Put(ctx, &pb.PutRequest{Key: []byte("/other"), Value: []byte("2")})
	wantErr(t, "alice (by CN) put /other over the actor API", err, rpctypes.ErrGRPCPermissionDenied)
	_, err = alice.Watch(ctx, &pb.WatchCreateRequest{Key: []byte("/other")})
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("alice (by CN) watch /other over the actor API: %v, want permission denied", err)
	}
	if w, err := alice.Watch(ctx, &pb.WatchCreateRequest{Key: []byte("/app/x")}); err != nil {
		t.Errorf("alice (by CN) watch /app/x over the actor API: %v", err)
	} else {
		w.Close()
	}
	_, err = alice.TimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: 1, Keys: true})
	if err != nil && rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(rpctypes.ErrGRPCUserEmpty) {
		t.Errorf("alice's CN did not reach the lease service: %v", err)
	}

	// alice names root in cert_user; the member's remote overwrites it.
	endpoint := actor.NewPID(cfg.ListenActorURL, actorapi.EndpointName)
	forged := func(op *messages.KVRequest) error {
		op.CertUser = "root"
		reply, err := aliceSystem.Root.RequestFuture(endpoint, op, 10*time.Second).Result()
		if err != nil {
			return err
		}
		resp, ok := reply.(*messages.KVResponse)
		if !ok {
			return fmt.Errorf("reply %T", reply)
		}
		if e := resp.GetError(); e != nil {
			return e.Err()
		}
		return nil
	}
	err = forged(&messages.KVRequest{Id: 1, Op: &messages.KVRequest_Put{Put: &pb.PutRequest{Key: []byte("/other"), Value: []byte("forged")}}})
	wantErr(t, "alice naming root in cert_user, put /other", err, rpctypes.ErrGRPCPermissionDenied)
	err = forged(&messages.KVRequest{Id: 2, Op: &messages.KVRequest_Range{Range: &pb.RangeRequest{Key: []byte("/other")}}})
	wantErr(t, "alice naming root in cert_user, range /other", err, rpctypes.ErrGRPCPermissionDenied)

	// root by its certificate's CN: every key.
	rootActor := actorclient.New(actorCaller(t, ca, files.caFile, "root"), cfg.ListenActorURL, actorclient.WithTimeout(10*time.Second))
	if _, err := rootActor.Put(ctx, &pb.PutRequest{Key: []byte("/other"), Value: []byte("3")}); err != nil {
		t.Errorf("root (by CN) put /other over the actor API: %v", err)
	}
	all, err := rootActor.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil || all.Count < 3 {
		t.Errorf("root (by CN) range of every key over the actor API = %v, %v; want /app/x, /app/y, /other", all, err)
	}
	got, err := root.Get(ctx, "/other")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "3" {
		t.Errorf("/other after the puts = %v, %v; want root's 3, not alice's forged value", got, err)
	}
}
