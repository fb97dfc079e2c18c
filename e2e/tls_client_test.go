package e2e

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
	"github.com/troupedb/troupe/internal/tlstest"
)

// httpsMetricsURL returns a free https://127.0.0.1:port for
// --listen-metrics-urls.
func httpsMetricsURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return "https://" + l.Addr().String()
}

// TestTLSClientServerAuth: a member with https client URLs and a server
// certificate only (--cert-file, --key-file): clientv3, etcdctl, /health,
// /metrics and the gateway work over https on the client port and on an
// https --listen-metrics-urls; a client that does not trust the CA is
// refused by its own verification.
func TestTLSClientServerAuth(t *testing.T) {
	p := newPKI(t, t.TempDir(), "ca")
	srv := p.localhost("server", "localhost")
	metrics := httpsMetricsURL(t)
	s := e2etest.Start(t, e2etest.Config{
		ClientTLS: &e2etest.TLS{CertFile: srv.cert, KeyFile: srv.key, CAFile: p.caFile},
		Args:      []string{"--listen-metrics-urls", metrics},
	})
	cfg := p.tlsConfig(certFiles{})
	t.Run("clientv3", func(t *testing.T) { clientOpsOverTLS(t, s, cfg) })
	t.Run("etcdctl", func(t *testing.T) { etcdctlOpsOverTLS(t, s, "--cacert", p.caFile) })
	t.Run("http", func(t *testing.T) { httpOverTLS(t, cfg, s.Endpoint(), metrics) })
	t.Run("untrusted", func(t *testing.T) {
		err := tryPut(t, s.Endpoint(), &tls.Config{MinVersion: tls.VersionTLS12})
		if err == nil {
			t.Fatal("a client that does not trust the server's CA got a put through")
		}
		r := etcdctlTry(t, "--endpoints="+s.Endpoint(), "put", "k", "v")
		if r.exit == 0 || !strings.Contains(r.stderr, "certificate signed by unknown authority") {
			t.Fatalf("etcdctl without --cacert: exit %d, stderr %q; want a failure naming the unknown authority", r.exit, r.stderr)
		}
		if _, _, err := httpsDo(t, &tls.Config{MinVersion: tls.VersionTLS12}, "GET", s.Endpoint()+"/health", ""); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("GET /health without the CA: %v", err)
		}
	})
}

// TestTLSClientCertAuth: a member with --client-cert-auth and
// --client-crl-file serves clients that present a certificate of its CA
// (clientv3, etcdctl, /health, /metrics, the gateway on the client port
// and on https --listen-metrics-urls) and refuses one without a
// certificate, one from another CA, an expired one and a revoked one,
// with etcd 3.6.8's errors.
func TestTLSClientCertAuth(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, dir, "ca")
	other := newPKI(t, dir, "other-ca")
	srv := p.localhost("server", "localhost")
	good := p.issue("client", tlstest.LeafOpts{CN: "client", Client: true})
	expired := p.issue("expired", tlstest.LeafOpts{CN: "expired", Client: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	revoked := p.issue("revoked", tlstest.LeafOpts{CN: "revoked", Client: true})
	foreign := other.issue("foreign", tlstest.LeafOpts{CN: "client", Client: true})
	crl := dir + "/ca.crl"
	writeFile(t, crl, p.crlDER(revoked))
	metrics := httpsMetricsURL(t)
	x := serverTLS(srv, p, true)
	x.CRLFile, x.ClientCertFile, x.ClientKeyFile = crl, good.cert, good.key
	s := e2etest.Start(t, e2etest.Config{ClientTLS: x, Args: []string{"--listen-metrics-urls", metrics}})
	cfg := p.tlsConfig(good)
	t.Run("clientv3", func(t *testing.T) { clientOpsOverTLS(t, s, cfg) })
	t.Run("etcdctl", func(t *testing.T) {
		etcdctlOpsOverTLS(t, s, "--cacert", p.caFile, "--cert", good.cert, "--key", good.key)
	})
	t.Run("http", func(t *testing.T) { httpOverTLS(t, cfg, s.Endpoint(), metrics) })
	// What etcd 3.6.8 answers: what a TLS client reads first after its
	// handshake (TLS 1.3 ends the client's part before the server checks
	// its certificate): the server's alert (a certificate of another CA is
	// not even sent, as the server names its CA in the certificate
	// request), or for a revoked one, which passes the handshake, the end
	// of the connection; and etcdctl's exit status and last line.
	for _, c := range []struct {
		name  string
		cert  certFiles
		alert string
	}{
		{"no certificate", certFiles{}, "remote error: tls: certificate required"},
		{"other CA", foreign, "remote error: tls: certificate required"},
		{"expired", expired, "remote error: tls: expired certificate"},
		{"revoked", revoked, "EOF"},
	} {
		t.Run("refused "+c.name, func(t *testing.T) {
			t.Parallel() // each waits out its client's timeouts
			ccfg := p.tlsConfig(c.cert)
			if err := tryPut(t, s.Endpoint(), ccfg); err == nil {
				t.Fatal("clientv3 put accepted")
			}
			args := []string{"--endpoints=" + s.Endpoint(), "--cacert", p.caFile}
			if c.cert.cert != "" {
				args = append(args, "--cert", c.cert.cert, "--key", c.cert.key)
			}
			r := etcdctlTry(t, append(args, "put", "k", "v")...)
			if r.exit != 1 || !strings.HasSuffix(r.stderr, "Error: context deadline exceeded\n") {
				t.Errorf("etcdctl put: exit %d, stderr %q; want exit 1 and etcd's Error: context deadline exceeded", r.exit, r.stderr)
			}
			for _, u := range []string{s.Endpoint(), metrics} {
				if code, _, err := httpsDo(t, ccfg, "GET", u+"/health", ""); err == nil {
					t.Errorf("GET %s/health answered %d", u, code)
				}
				if err := firstRead(t, u, ccfg); err == nil || err.Error() != c.alert {
					t.Errorf("%s: the first read after the handshake got %v; want etcd's %q", u, err, c.alert)
				}
			}
		})
	}
}

// clientOpsOverTLS: put, get, watch, lease, member list and status work
// through clientv3 over cfg.
func clientOpsOverTLS(t *testing.T, s *e2etest.Server, cfg *tls.Config) {
	cli := tlsClient(t, []string{s.Endpoint()}, cfg)
	wc := cli.Watch(ctx(t), "tls/", clientv3.WithPrefix())
	put, err := cli.Put(ctx(t), "tls/a", "1")
	must(t, err)
	get, err := cli.Get(ctx(t), "tls/a")
	must(t, err)
	if len(get.Kvs) != 1 || string(get.Kvs[0].Value) != "1" || get.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("get tls/a = %v after put at revision %d", toKVs(get.Kvs), put.Header.Revision)
	}
	select {
	case wr := <-wc:
		if len(wr.Events) != 1 || string(wr.Events[0].Kv.Key) != "tls/a" {
			t.Fatalf("watch: %+v (err %v)", wr.Events, wr.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event in 10 s")
	}
	lease, err := cli.Grant(ctx(t), 60)
	must(t, err)
	_, err = cli.Put(ctx(t), "tls/l", "v", clientv3.WithLease(lease.ID))
	must(t, err)
	ttl, err := cli.TimeToLive(ctx(t), lease.ID, clientv3.WithAttachedKeys())
	must(t, err)
	if len(ttl.Keys) != 1 || ttl.TTL <= 0 {
		t.Fatalf("lease %x: ttl %d keys %q", lease.ID, ttl.TTL, ttl.Keys)
	}
	_, err = cli.KeepAliveOnce(ctx(t), lease.ID)
	must(t, err)
	_, err = cli.Revoke(ctx(t), lease.ID)
	must(t, err)
	ml, err := cli.MemberList(ctx(t))
	must(t, err)
	if len(ml.Members) != 1 || len(ml.Members[0].ClientURLs) != 1 || ml.Members[0].ClientURLs[0] != s.Endpoint() {
		t.Fatalf("member list: %v", ml.Members)
	}
	st, err := cli.Status(ctx(t), s.Endpoint())
	must(t, err)
	if st.Leader == 0 || st.Header.Revision < put.Header.Revision {
		t.Fatalf("status: leader %x revision %d", st.Leader, st.Header.Revision)
	}
}

// etcdctlOpsOverTLS: etcdctl put, get, member list, endpoint status,
// endpoint health, lease grant and watch succeed with the TLS flags given
// (the watch with those s was started with).
func etcdctlOpsOverTLS(t *testing.T, s *e2etest.Server, tlsFlags ...string) {
	base := append([]string{"--endpoints=" + s.Endpoint()}, tlsFlags...)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"put", "tls/ctl", "x"}, "OK"},
		{[]string{"get", "tls/ctl", "--print-value-only"}, "x"},
		{[]string{"member", "list"}, s.Endpoint()},
		{[]string{"endpoint", "status"}, s.Endpoint()},
		{[]string{"endpoint", "health"}, "is healthy"},
		{[]string{"lease", "grant", "60"}, "granted with TTL(60s)"},
	} {
		r := etcdctlTry(t, append(base, c.args...)...)
		if r.exit != 0 || !strings.Contains(r.stdout+r.stderr, c.want) {
			t.Errorf("etcdctl %s: exit %d\nstdout %q\nstderr %q\nwant %q", strings.Join(c.args, " "), r.exit, r.stdout, r.stderr, c.want)
		}
	}
	if out := etcdctlWatch(t, s, "watch", "--rev=1", "tls/ctl"); out != "PUT\ntls/ctl\nx\n" {
		t.Errorf("etcdctl watch --rev=1 tls/ctl printed %q", out)
	}
}

// httpOverTLS: /health, /metrics and the gateway's /v3/kv/range answer
// over https on the client URL, and /health and /metrics on metrics.
func httpOverTLS(t *testing.T, cfg *tls.Config, client, metrics string) {
	for _, c := range []struct {
		method, url, body, want string
	}{
		{"GET", client + "/health", "", `"health":"true"`},
		{"GET", client + "/metrics", "", "etcd_server_has_leader 1"},
		{"POST", client + "/v3/kv/range", `{"key":"dGxzL2E="}`, `"value":"MQ=="`},
		{"GET", metrics + "/health", "", `"health":"true"`},
		{"GET", metrics + "/metrics", "", "etcd_server_has_leader 1"},
	} {
		code, body, err := httpsDo(t, cfg, c.method, c.url, c.body)
		if err != nil || code != 200 || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d %v\n%.300s\nwant 200 and %q", c.method, c.url, code, err, body, c.want)
		}
	}
}
