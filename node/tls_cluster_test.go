//go:build !race

// Several protoactor remotes in one process: see cluster_test.go for why
// these tests run without -race.

package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/actors/actorapi"
	"github.com/troupedb/troupe/client/actorclient"
	"github.com/troupedb/troupe/internal/polltest"
	"github.com/troupedb/troupe/internal/tlstest"
)

// peerTLS gives cfg https peer and client URLs with mutual TLS on both
// sides, certificates of ca written under dir.
func peerTLS(t *testing.T, cfg *Config, ca *tlstest.CA, dir string) tlsFiles {
	t.Helper()
	files := newTLSFiles(t, ca, dir)
	httpsURLs(cfg)
	httpsPeerURLs(cfg)
	cfg.PeerTLS = files.side()
	cfg.ClientTLS = files.side()
	return files
}

// httpsPeerURLs makes the peer URLs of cfg https.
func httpsPeerURLs(cfg *Config) {
	setHTTPS(cfg.ListenPeerURLs, cfg.InitialAdvertisePeerURLs)
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
}

// TestTLSPeerCluster: three members with peer and client mutual TLS
// elect, replicate, forward a follower's lease keep-alive to the leader
// over the client TLS; a fourth member whose certificate comes from
// another CA cannot join, and the three keep serving.
func TestTLSPeerCluster(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	c := newTestCluster(t, 3, func(cfg *Config) {
		peerTLS(t, cfg, ca, t.TempDir())
		cfg.PeerTLS.AllowedCNs = []string{"localhost"} // the members' CN
	})
	lead := c.waitLeader()
	follower := (lead + 1) % 3
	user := ca.Issue(t, tlstest.LeafOpts{CN: "user", Client: true})
	cli, err := tlsClient(t, c.cfgs[follower], poolOf(ca), user)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put through a follower: %v", err)
	}
	for i := range c.nodes {
		waitTLSValue(t, c.cfgs[i], ca, user, "k", "v")
	}
	lease, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	if _, err := cli.KeepAliveOnce(ctx, lease.ID); err != nil {
		t.Fatalf("keep-alive through a follower (forwarded to the leader over TLS): %v", err)
	}

	// A member of another CA, then one of the cluster's CA with a CN not
	// allowed: each is added, but cannot reach the others, nor they it.
	for i, leaf := range []struct {
		ca   *tlstest.CA
		opts tlstest.LeafOpts
	}{
		{tlstest.NewCA(t, "foreign-ca"), tlstest.Localhost()},
		{ca, tlstest.LeafOpts{CN: "intruder", DNS: []string{"localhost"}, IPs: tlstest.Localhost().IPs}},
	} {
		outsider := testConfig(t, t.TempDir())
		outsider.Name = fmt.Sprint("outsider-", i)
		files := peerTLS(t, &outsider, leaf.ca, t.TempDir())
		leaf.ca.Issue(t, leaf.opts).Write(t, files.cert, files.key)
		outsider.InitialClusterState = ClusterStateExisting
		outsider.InitialCluster = c.cfgs[0].InitialCluster + "," + outsider.Name + "=" + outsider.InitialAdvertisePeerURLs[0].String()
		var added *clientv3.MemberAddResponse
		polltest.Eventually(t, 15*time.Second, "member add accepted", func() (bool, string) {
			added, err = cli.MemberAdd(ctx, []string{outsider.InitialAdvertisePeerURLs[0].String()})
			return err == nil || !strings.Contains(err.Error(), "unhealthy cluster"), fmt.Sprint(err)
		})
		if err != nil {
			t.Fatalf("member add: %v", err)
		}
		if n, err := Start(outsider); err == nil {
			_ = n.Stop()
			t.Fatalf("%s (CA %s, CN %s) joined", outsider.Name, leaf.ca.Cert.Subject.CommonName, leaf.opts.CN)
		}
		if _, err := cli.MemberRemove(ctx, added.Member.ID); err != nil {
			t.Fatalf("remove %s: %v", outsider.Name, err)
		}
		// raft drops a conf change proposed while another is not applied
		// on the leader yet (the next MemberAdd would time out, in etcd
		// too): wait until every member applied the removal.
		for i := range c.nodes {
			waitMemberGone(t, c.cfgs[i], ca, user, added.Member.ID)
		}
	}
	for i := range 20 {
		if _, err := cli.Put(ctx, fmt.Sprint("after-", i), "x"); err != nil {
			t.Fatalf("put after the refused member: %v", err)
		}
	}
	for i := range c.nodes {
		waitTLSValue(t, c.cfgs[i], ca, user, "after-19", "x")
	}
}

// waitTLSValue polls a serializable read of cfg's member over TLS until
// key has value.
func waitTLSValue(t *testing.T, cfg Config, ca *tlstest.CA, leaf *tlstest.Leaf, key, value string) {
	t.Helper()
	cli, err := tlsClient(t, cfg, poolOf(ca), leaf)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var last string
	polltest.Eventually(t, 20*time.Second, fmt.Sprintf("%s: %s = %q", cfg.Name, key, value), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := cli.Get(ctx, key, clientv3.WithSerializable())
		cancel()
		if err == nil && len(resp.Kvs) == 1 {
			last = string(resp.Kvs[0].Value)
		}
		return last == value, fmt.Sprintf("last %q (%v)", last, err)
	})
}

// waitMemberGone polls a serializable member list of cfg's member over
// TLS until it no longer lists id.
func waitMemberGone(t *testing.T, cfg Config, ca *tlstest.CA, leaf *tlstest.Leaf, id uint64) {
	t.Helper()
	cli, err := tlsClient(t, cfg, poolOf(ca), leaf)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	polltest.Eventually(t, 20*time.Second, fmt.Sprintf("%s: member %x removed", cfg.Name, id), func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := cli.MemberList(ctx, clientv3.WithSerializable())
		cancel()
		if err != nil {
			return false, err.Error()
		}
		for _, m := range resp.Members {
			if m.ID == id {
				return false, "still listed"
			}
		}
		return true, ""
	})
}

// TestTLSActorAPI: with an https client URL and client certificate
// authentication, the actor API is served over TLS: a program whose
// remote has actorclient.RemoteOptions with a trusted certificate gets
// answers, one with plaintext options or an untrusted certificate none.
func TestTLSActorAPI(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	cfg, files := startTLSMember(t, ca, func(cfg *Config) { cfg.ListenActorURL = fmt.Sprintf("127.0.0.1:%d", freePort(t)) })

	call := func(opts []remote.ConfigOption) error {
		logger := slog.New(slog.DiscardHandler)
		system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
		r := remote.NewRemote(system, remote.Configure("127.0.0.1", 0, opts...))
		r.Start()
		defer func() { r.Shutdown(false); system.Shutdown() }() // graceful waits ~7s on a refused endpoint
		cli := actorclient.New(system, cfg.ListenActorURL)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := cli.Put(ctx, &pb.PutRequest{Key: []byte("actor"), Value: []byte("tls")})
		return err
	}
	dir := t.TempDir()
	ca.Issue(t, tlstest.Localhost()).Write(t, filepath.Join(dir, "c.pem"), filepath.Join(dir, "c.key"))
	good, err := actorclient.RemoteOptions(actorclient.TLS{CertFile: filepath.Join(dir, "c.pem"), KeyFile: filepath.Join(dir, "c.key"), TrustedCAFile: files.caFile, Logger: slog.New(slog.DiscardHandler)}, actorapi.DefaultMaxMessageBytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := call(good); err != nil {
		t.Fatalf("actor API over TLS: %v", err)
	}
	other := tlstest.NewCA(t, "other")
	other.WriteCA(t, filepath.Join(dir, "other-ca.pem"))
	other.Issue(t, tlstest.Localhost()).Write(t, filepath.Join(dir, "o.pem"), filepath.Join(dir, "o.key"))
	untrusted, err := actorclient.RemoteOptions(actorclient.TLS{CertFile: filepath.Join(dir, "o.pem"), KeyFile: filepath.Join(dir, "o.key"), TrustedCAFile: files.caFile, Logger: slog.New(slog.DiscardHandler)}, actorapi.DefaultMaxMessageBytes)
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string][]remote.ConfigOption{
		"plaintext":             {remote.WithDialOptions(actorapi.DialOptions(actorapi.DefaultMaxMessageBytes)...)},
		"untrusted certificate": untrusted,
	} {
		if err := call(opts); err == nil {
			t.Errorf("%s: actor API answered", name)
		}
	}
}

// TestTLSSnapshotCatchUp: over peer TLS a member that fell behind the
// others' compacted logs catches up by snapshot, and on its restart the
// initial corruption check fetches the others' hashes over the peer TLS.
func TestTLSSnapshotCatchUp(t *testing.T) {
	ca := tlstest.NewCA(t, "cluster-ca")
	c := newTestCluster(t, 3, func(cfg *Config) {
		peerTLS(t, cfg, ca, t.TempDir())
		cfg.SnapshotCount = 50
		cfg.InitialCorruptCheck = true
	})
	lead := c.waitLeader()
	behind := (lead + 1) % 3
	user := ca.Issue(t, tlstest.LeafOpts{CN: "user", Client: true})
	client := func() *clientv3.Client {
		cli, err := tlsClient(t, c.cfgs[lead], poolOf(ca), user)
		if err != nil {
			t.Fatal(err)
		}
		return cli
	}
	c.snapshotCatchUp(behind, client, func(key, value string) { waitTLSValue(t, c.cfgs[behind], ca, user, key, value) })
}

// TestTLSPeerAutoTLS: members with --peer-auto-tls and https peer URLs
// talk over their self-signed certificates (not verified, as etcd).
func TestTLSPeerAutoTLS(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		httpsPeerURLs(cfg)
		cfg.PeerTLS.AutoTLS = true
	})
	lead := c.waitLeader()
	put(t, c.client(lead), "auto", "tls")
	for i := range c.nodes {
		c.waitValue(i, "auto", "tls")
		if _, err := os.Stat(filepath.Join(c.cfgs[i].DataDir, "fixtures", "peer", "cert.pem")); err != nil {
			t.Errorf("member %d: no self-signed peer certificate: %v", i, err)
		}
	}
}
