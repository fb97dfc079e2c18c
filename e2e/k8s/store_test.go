//go:build k8s

package k8s

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// store is the etcd-compatible backend under the apiserver: one member or
// a cluster, troupe or etcd as e2etest.Kind selects.
type store struct {
	kind      string
	size      int
	endpoints []string
	cli       *clientv3.Client
	version   string // as the store's Status reports it

	// stopMember and startMember take down and bring back the member the
	// restart step picks (the leader of a cluster).
	stopMember  func(t *testing.T)
	startMember func(t *testing.T)
}

func startStore(t *testing.T, size int) *store {
	t.Helper()
	st := &store{kind: e2etest.Kind(), size: size}
	if size == 1 {
		s := e2etest.Start(t, e2etest.Config{})
		st.endpoints = []string{s.Endpoint()}
		st.cli = s.Client(t)
		st.stopMember = func(*testing.T) { s.Stop() }
		st.startMember = func(*testing.T) { s.Restart() }
	} else {
		c := e2etest.StartCluster(t, e2etest.ClusterConfig{Size: size})
		st.endpoints = c.Endpoints()
		st.cli = c.Client(t)
		var picked int
		st.stopMember = func(t *testing.T) {
			picked = c.Leader(t)
			t.Logf("stopping the leader, member %d", picked)
			if err := c.Stop(picked); err != nil {
				t.Fatal(err)
			}
		}
		st.startMember = func(t *testing.T) {
			if err := c.Restart(picked); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := st.cli.Status(ctx, st.endpoints[0])
	if err != nil {
		t.Fatalf("status of %s: %v", st.endpoints[0], err)
	}
	st.version = resp.Version
	return st
}

func (st *store) String() string {
	return fmt.Sprintf("%s %s, %d member(s)", st.kind, st.version, st.size)
}
