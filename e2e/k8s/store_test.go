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

	// restartEach stops each member in turn (a cluster's leader first, as
	// a rolling upgrade does), calls down while it is down, and starts it
	// again. Every member, so that the one the apiserver's client talks to
	// is among them.
	restartEach func(t *testing.T, down func(t *testing.T, member int))
}

func startStore(t *testing.T, size int) *store {
	t.Helper()
	st := &store{kind: e2etest.Kind(), size: size}
	if size == 1 {
		s := e2etest.Start(t, e2etest.Config{})
		st.endpoints = []string{s.Endpoint()}
		st.cli = s.Client(t)
		st.restartEach = func(t *testing.T, down func(*testing.T, int)) {
			s.Stop()
			down(t, 0)
			s.Restart()
		}
	} else {
		c := e2etest.StartCluster(t, e2etest.ClusterConfig{Size: size})
		st.endpoints = c.Endpoints()
		st.cli = c.Client(t)
		st.restartEach = func(t *testing.T, down func(*testing.T, int)) {
			leader := c.Leader(t)
			order := []int{leader}
			for i := range size {
				if i != leader {
					order = append(order, i)
				}
			}
			for _, i := range order {
				t.Logf("restarting member %d (leader %d)", i, leader)
				if err := c.Stop(i); err != nil {
					t.Fatal(err)
				}
				down(t, i)
				if err := c.Restart(i); err != nil {
					t.Fatal(err)
				}
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
