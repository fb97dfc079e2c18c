package e2e

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
	"github.com/troupedb/troupe/internal/polltest"
	"github.com/troupedb/troupe/internal/tlstest"
)

// rejectWatch is how long a member whose certificate the cluster refuses
// is watched (less once it exited): it must not join meanwhile, and the
// cluster must keep serving. etcd 3.6.8's member gives up fetching the
// cluster from its peers and exits within about a second.
const rejectWatch = 3 * time.Second

// TestTLSPeerCluster: three members with client and peer mTLS
// (--peer-client-cert-auth, --peer-cert-allowed-cn, --peer-crl-file)
// replicate writes; a member added whose peer certificate is from another
// CA, has another common name, or is revoked cannot join while the cluster
// keeps serving, and a member with a good certificate then joins and
// catches up; the members' peer certificate is then replaced on disk, the
// peer ports serve the new one, and a member restarted on it rejoins.
func TestTLSPeerCluster(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, dir, "ca")
	other := newPKI(t, dir, "other-ca")
	peer := p.localhost("peer", "member")
	_, cli, clientTLS := p.clientMTLS()
	revoked := p.localhost("revoked", "member")
	crl := filepath.Join(dir, "peer.crl")
	writeFile(t, crl, p.crlDER(revoked))
	peerTLS := func(c certFiles) *e2etest.TLS {
		return &e2etest.TLS{CertFile: c.cert, KeyFile: c.key, TrustedCAFile: p.caFile, ClientCertAuth: true, CRLFile: crl, AllowedCN: "member"}
	}
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{ClientTLS: clientTLS, PeerTLS: peerTLS(peer)})

	t.Run("writes replicate", func(t *testing.T) {
		for w := range c.Size() {
			key := fmt.Sprintf("peer-tls/%d", w)
			put, err := c.MemberClient(t, w).Put(ctx(t), key, "v")
			must(t, err)
			for r := range c.Size() {
				get, err := c.MemberClient(t, r).Get(ctx(t), key)
				must(t, err)
				if len(get.Kvs) != 1 || get.Kvs[0].ModRevision != put.Header.Revision {
					t.Fatalf("put %s via m%d at %d; get via m%d = %v", key, w, put.Header.Revision, r, toKVs(get.Kvs))
				}
			}
		}
	})
	for _, j := range []struct {
		name string
		cert certFiles
	}{
		{"other CA", other.localhost("foreign", "member")},
		{"common name not allowed", p.localhost("intruder", "intruder")},
		{"revoked", revoked},
	} {
		t.Run("refused "+j.name, func(t *testing.T) {
			requireJoinRefused(t, c, peerTLS(j.cert))
		})
	}
	t.Run("good member joins", func(t *testing.T) {
		peerURL := freeURL(t, "https")
		addMember(t, c.Client(t), peerURL)
		m := e2etest.Start(t, joinConfig(c, "joiner", peerURL, peerTLS(p.localhost("joiner", "member"))))
		want, err := c.Client(t).Get(ctx(t), "peer-tls/", clientv3.WithPrefix())
		must(t, err)
		got, err := tlsClient(t, []string{m.Endpoint()}, p.tlsConfig(cli)).Get(ctx(t), "peer-tls/", clientv3.WithPrefix())
		must(t, err)
		if fmt.Sprint(toKVs(got.Kvs)) != fmt.Sprint(toKVs(want.Kvs)) {
			t.Fatalf("the joined member has %v, the cluster %v", toKVs(got.Kvs), toKVs(want.Kvs))
		}
	})
	t.Run("peer certificate rotated", func(t *testing.T) {
		next := p.ca.Issue(t, func() tlstest.LeafOpts { o := tlstest.Localhost(); o.CN = "member"; return o }())
		next.Write(t, peer.cert, peer.key)
		for i, m := range c.Members() {
			requireServedSerial(t, m.PeerURL(), p.tlsConfig(peer), next.Cert.SerialNumber.String())
			t.Logf("m%d serves the new peer certificate", i)
		}
		// A restarted member dials and is dialled anew: every peer
		// connection now carries the new certificate.
		f := (c.Leader(t) + 1) % c.Size()
		must(t, c.Restart(f))
		for w := range c.Size() {
			putRetry(t, c.MemberClient(t, w), fmt.Sprintf("peer-tls/rotated/%d", w), "v")
		}
		requireSameData(t, c, "peer-tls/")
	})
}

// requireJoinRefused adds a member to c, starts it with peer TLS x, and
// requires that it does not join within rejectWatch while c keeps
// serving writes; it then removes the member again.
func requireJoinRefused(t *testing.T, c *e2etest.Cluster, x *e2etest.TLS) {
	t.Helper()
	peerURL := freeURL(t, "https")
	cli := c.Client(t)
	add := addMember(t, cli, peerURL)
	m := e2etest.Spawn(t, joinConfig(c, "rejected", peerURL, x))
	start := time.Now()
	for i := 0; time.Since(start) < rejectWatch && (m.Alive() || time.Since(start) < time.Second); i++ {
		_, err := cli.Put(ctx(t), "peer-tls/while-rejected", fmt.Sprint(i))
		must(t, err)
		time.Sleep(100 * time.Millisecond)
	}
	ml, err := cli.MemberList(ctx(t))
	must(t, err)
	for _, mm := range ml.Members {
		if mm.ID == add.Member.ID && (mm.Name != "" || len(mm.ClientURLs) > 0) {
			t.Errorf("the refused member published itself: %v", mm)
		}
	}
	if m.Alive() {
		tc, err := m.ClientTLS().ClientConfig()
		must(t, err)
		if err := tryGet(t, m.Endpoint(), tc); err == nil {
			t.Errorf("the refused member serves linearizable reads")
		}
	}
	t.Logf("refused member: alive=%v, log tail: %s", m.Alive(), lastLines(m.Log(), 3))
	m.Kill()
	_, err = cli.MemberRemove(ctx(t), add.Member.ID)
	must(t, err)
	// raft drops a conf change proposed while another is unapplied on the
	// leader (the next MemberAdd would time out, on etcd too): wait until
	// every member applied the removal.
	for i := range c.Size() {
		mc := c.MemberClient(t, i)
		polltest.Eventually(t, 20*time.Second, fmt.Sprintf("m%d applied the removal of %x", i, add.Member.ID), func() (bool, string) {
			ml, err := mc.MemberList(ctx(t), clientv3.WithSerializable())
			if err != nil {
				return false, err.Error()
			}
			for _, mm := range ml.Members {
				if mm.ID == add.Member.ID {
					return false, "still listed"
				}
			}
			return true, ""
		})
	}
}

// addMember adds a voting member at peerURL, retrying while etcd's strict
// reconfiguration check finds the cluster not yet healthy (members
// connected for less than five seconds).
func addMember(t *testing.T, cli *clientv3.Client, peerURL string) *clientv3.MemberAddResponse {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		add, err := cli.MemberAdd(ctx(t), []string{peerURL})
		if err == nil {
			return add
		}
		if !errors.Is(err, rpctypes.ErrUnhealthy) || time.Now().After(deadline) {
			t.Fatalf("member add %s: %v", peerURL, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// joinConfig starts name as a new member of c at peerURL (already added
// with MemberAdd) with c's client TLS and the peer TLS x.
func joinConfig(c *e2etest.Cluster, name, peerURL string, x *e2etest.TLS) e2etest.Config {
	return e2etest.Config{Kind: c.Kind(), ClientTLS: c.ClientTLS(), PeerTLS: x, Args: []string{
		"--name", name, "--initial-cluster-state", "existing",
		"--initial-cluster", c.InitialCluster() + "," + name + "=" + peerURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
	}}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
