//go:build k8s

package k8s

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
	"github.com/troupedb/troupe/internal/tlstest"
)

// store is the etcd-compatible backend under the apiserver: one member or
// a cluster, troupe or etcd as e2etest.Kind selects.
type store struct {
	kind      string
	size      int
	endpoints []string
	cli       *clientv3.Client
	version   string // as the store's Status reports it
	mtls      bool

	// restartEach stops each member in turn (a cluster's leader first, as
	// a rolling upgrade does), calls down while it is down, and starts it
	// again. Every member, so that the one the apiserver's client talks to
	// is among them.
	restartEach func(t *testing.T, down func(t *testing.T, member int))
}

// startStore starts size members, with client and peer mTLS when m is not
// nil.
func startStore(t *testing.T, size int, m *mtls) *store {
	t.Helper()
	st := &store{kind: e2etest.Kind(), size: size, mtls: m != nil}
	if size == 1 {
		s := e2etest.Start(t, e2etest.Config{ClientTLS: m.client(), PeerTLS: m.peer()})
		st.endpoints = []string{s.Endpoint()}
		st.cli = s.Client(t)
		st.restartEach = func(t *testing.T, down func(*testing.T, int)) {
			s.Stop()
			down(t, 0)
			s.Restart()
		}
	} else {
		c := e2etest.StartCluster(t, e2etest.ClusterConfig{Size: size, ClientTLS: m.client(), PeerTLS: m.peer()})
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
	s := fmt.Sprintf("%s %s, %d member(s)", st.kind, st.version, st.size)
	if st.mtls {
		s += ", client and peer mTLS"
	}
	return s
}

// mtls is the certificates of a store with client and peer mTLS: one CA,
// a localhost certificate for the members' client and peer sides, and a
// client certificate for the apiserver and the harness.
type mtls struct {
	caFile                string
	serverCert, serverKey string
	clientCert, clientKey string
}

func newMTLS(t *testing.T) *mtls {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "etcd-ca")
	m := &mtls{caFile: filepath.Join(dir, "ca.crt"),
		serverCert: filepath.Join(dir, "server.crt"), serverKey: filepath.Join(dir, "server.key"),
		clientCert: filepath.Join(dir, "apiserver-etcd-client.crt"), clientKey: filepath.Join(dir, "apiserver-etcd-client.key")}
	ca.WriteCA(t, m.caFile)
	ca.Issue(t, tlstest.Localhost()).Write(t, m.serverCert, m.serverKey)
	ca.Issue(t, tlstest.LeafOpts{CN: "kube-apiserver-etcd-client", Client: true}).Write(t, m.clientCert, m.clientKey)
	return m
}

// client is the members' client side: https, --client-cert-auth; the
// harness's clients present the apiserver's client certificate. Nil m:
// plain http.
func (m *mtls) client() *e2etest.TLS {
	if m == nil {
		return nil
	}
	return &e2etest.TLS{CertFile: m.serverCert, KeyFile: m.serverKey, TrustedCAFile: m.caFile, ClientCertAuth: true,
		ClientCertFile: m.clientCert, ClientKeyFile: m.clientKey}
}

// peer is the members' peer side: https, --peer-client-cert-auth.
func (m *mtls) peer() *e2etest.TLS {
	if m == nil {
		return nil
	}
	return &e2etest.TLS{CertFile: m.serverCert, KeyFile: m.serverKey, TrustedCAFile: m.caFile, ClientCertAuth: true}
}

// apiserverFlags are kube-apiserver's flags to reach the store over mTLS.
func (m *mtls) apiserverFlags() []string {
	if m == nil {
		return nil
	}
	return []string{"--etcd-cafile=" + m.caFile, "--etcd-certfile=" + m.clientCert, "--etcd-keyfile=" + m.clientKey}
}
