package e2e

import (
	"context"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/troupedb/troupe/client/actorclient"
	"github.com/troupedb/troupe/e2e/e2etest"
)

// TestThreeMembersWithEtcdFlagsOnly: three troupe members on one host,
// started with etcd's flags alone (as etcd's Procfile does), do not collide
// on a port of troupe's own; each serves the actor API at its client port
// minus one.
func TestThreeMembersWithEtcdFlagsOnly(t *testing.T) {
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{Kind: e2etest.Troupe, EtcdFlagsOnly: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Member(0).Client(t).Put(ctx, "etcd-flags", "only"); err != nil {
		t.Fatal(err)
	}
	system, _ := actorSystem(t)
	for _, m := range c.Members() {
		kv := actorclient.New(system, m.ActorAddress(), actorclient.WithTimeout(10*time.Second))
		resp, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("etcd-flags")})
		if err != nil {
			t.Fatalf("%s: actor API at %s: %v", m.Name(), m.ActorAddress(), err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "only" {
			t.Fatalf("%s: actor API read %v", m.Name(), resp.Kvs)
		}
	}
}
