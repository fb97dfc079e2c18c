package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/troupedb/troupe/internal/polltest"
	"github.com/troupedb/troupe/internal/tlstest"
)

// tlsFiles are a member's certificate files and the CA that issued them.
type tlsFiles struct {
	ca                *tlstest.CA
	caFile, cert, key string
	crlFile           string
}

func newTLSFiles(t *testing.T, ca *tlstest.CA, dir string) tlsFiles {
	t.Helper()
	f := tlsFiles{ca: ca, caFile: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem"), crlFile: filepath.Join(dir, "crl.pem")}
	ca.WriteCA(t, f.caFile)
	ca.Issue(t, tlstest.Localhost()).Write(t, f.cert, f.key)
	return f
}

func (f tlsFiles) side() TLSConfig {
	return TLSConfig{CertFile: f.cert, KeyFile: f.key, TrustedCAFile: f.caFile, ClientCertAuth: true}
}

// httpsURLs makes the client (and metrics, when given) URLs of cfg https.
func httpsURLs(cfg *Config) {
	for _, list := range [][]url.URL{cfg.ListenClientURLs, cfg.AdvertiseClientURLs, cfg.ListenMetricsURLs} {
		for i := range list {
			list[i].Scheme = "https"
		}
	}
}

// tlsClient is a clientv3 client of cfg's first client URL presenting
// leaf (nil: none) and trusting the CAs in pool.
func tlsClient(t *testing.T, cfg Config, pool *x509.CertPool, leaf *tlstest.Leaf) (*clientv3.Client, error) {
	t.Helper()
	tc := &tls.Config{RootCAs: pool}
	if leaf != nil {
		pair, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{"https://" + cfg.ListenClientURLs[0].Host}, DialTimeout: 5 * time.Second, TLS: tc, Logger: zap.NewNop(),
	})
	if err == nil {
		t.Cleanup(func() { cli.Close() })
	}
	return cli, err
}

func poolOf(cas ...*tlstest.CA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.Cert)
	}
	return p
}

// TestTLSClientEndpoints: client mTLS on the client port (gRPC, the JSON
// gateway, /health) and on an https metrics URL; a client without a
// certificate, or with one from another CA, is refused.
func TestTLSClientEndpoints(t *testing.T) {
	ca := tlstest.NewCA(t, "client-ca")
	files := newTLSFiles(t, ca, t.TempDir())
	cfg := testConfig(t, t.TempDir())
	cfg.ListenMetricsURLs = []url.URL{{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", freePort(t))}}
	httpsURLs(&cfg)
	cfg.ClientTLS = files.side()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()

	user := ca.Issue(t, tlstest.LeafOpts{CN: "alice", Client: true})
	cli, err := tlsClient(t, cfg, poolOf(ca), user)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wch := cli.Watch(ctx, "k")
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put over mTLS: %v", err)
	}
	get, err := cli.Get(ctx, "k")
	if err != nil || len(get.Kvs) != 1 || string(get.Kvs[0].Value) != "v" {
		t.Fatalf("get over mTLS: %v %v", get, err)
	}
	select {
	case wr := <-wch:
		if len(wr.Events) != 1 || string(wr.Events[0].Kv.Value) != "v" {
			t.Fatalf("watch over mTLS: %+v", wr)
		}
	case <-ctx.Done():
		t.Fatal("no watch event over mTLS")
	}

	// Refused: no client certificate, a certificate of another CA.
	for name, leaf := range map[string]*tlstest.Leaf{"no certificate": nil, "foreign CA": tlstest.NewCA(t, "other").Issue(t, tlstest.LeafOpts{CN: "alice"})} {
		bad, err := tlsClient(t, cfg, poolOf(ca), leaf)
		if err == nil {
			c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = bad.Get(c, "k")
			cancel()
		}
		if err == nil {
			t.Errorf("%s: request accepted", name)
		}
	}

	// HTTPS: the gateway and /health on the client port, /metrics on the
	// metrics URL.
	pair, _ := tls.X509KeyPair(user.CertPEM, user.KeyPEM)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: poolOf(ca), Certificates: []tls.Certificate{pair}}}}
	t.Cleanup(hc.CloseIdleConnections)
	for _, tc := range []struct{ method, url, body, want string }{
		{"POST", "https://" + cfg.ListenClientURLs[0].Host + "/v3/kv/range", `{"key":"aw=="}`, `"value":"dg=="`},
		{"GET", "https://" + cfg.ListenClientURLs[0].Host + "/health", "", `"health":"true"`},
		{"GET", "https://" + cfg.ListenMetricsURLs[0].Host + "/metrics", "", "etcd_server_has_leader"},
		{"GET", "https://" + cfg.ListenMetricsURLs[0].Host + "/health", "", `"health":"true"`},
	} {
		req, _ := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", tc.method, tc.url, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("%s %s: %d %s, want %s", tc.method, tc.url, resp.StatusCode, b, tc.want)
		}
	}
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: poolOf(ca)}}}
	if resp, err := plain.Get("https://" + cfg.ListenMetricsURLs[0].Host + "/metrics"); err == nil {
		resp.Body.Close()
		t.Error("metrics URL answered a client without a certificate")
	}
}

// TestTLSRotationUnderLoad: while a clientv3 client puts without pause,
// the server's leaf is replaced by one of a new CA and the CA bundle by
// old+new, then by the new CA alone. No request of the running client
// fails; new connections see each step without a restart.
func TestTLSRotationUnderLoad(t *testing.T) {
	ca1, ca2 := tlstest.NewCA(t, "ca-1"), tlstest.NewCA(t, "ca-2")
	files := newTLSFiles(t, ca1, t.TempDir())
	cfg := testConfig(t, t.TempDir())
	httpsURLs(&cfg)
	cfg.ClientTLS = files.side()
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()

	// Clients were given both CAs before the rotation, as an operator would.
	both := poolOf(ca1, ca2)
	old := ca1.Issue(t, tlstest.LeafOpts{CN: "old", Client: true})
	load, err := tlsClient(t, cfg, both, old)
	if err != nil {
		t.Fatal(err)
	}
	var puts, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := load.Put(ctx, "load", fmt.Sprint(i))
			cancel()
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			} else {
				puts.Add(1)
			}
		}
	}()
	waitPuts := func(more int64) {
		t.Helper()
		from := puts.Load()
		polltest.Eventually(t, 20*time.Second, fmt.Sprintf("%d more puts of the running client", more), func() (bool, string) {
			return puts.Load() >= from+more, fmt.Sprint(puts.Load())
		})
	}
	served := func() *x509.Certificate {
		t.Helper()
		pair, _ := tls.X509KeyPair(old.CertPEM, old.KeyPEM)
		c, err := tls.Dial("tcp", cfg.ListenClientURLs[0].Host, &tls.Config{RootCAs: both, Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	newClientWorks := func(leaf *tlstest.Leaf) error {
		cli, err := tlsClient(t, cfg, both, leaf)
		if err != nil {
			return err
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err = cli.Get(ctx, "load")
		return err
	}
	waitPuts(50)

	// Step 1: trust old and new CA, serve a leaf of the new CA.
	newUser := ca2.Issue(t, tlstest.LeafOpts{CN: "new", Client: true})
	if newClientWorks(newUser) == nil {
		t.Fatal("a client of the new CA was accepted before the rotation")
	}
	writeFileAtomic(t, files.caFile, append(append([]byte{}, ca1.CertPEM...), ca2.CertPEM...))
	leaf2 := ca2.Issue(t, tlstest.Localhost())
	leaf2.Write(t, files.cert, files.key)
	if got := served(); !got.Equal(leaf2.Cert) {
		t.Fatalf("new connections are served %v, want the rotated leaf", got.Subject)
	}
	for name, leaf := range map[string]*tlstest.Leaf{"old CA": old, "new CA": newUser} {
		if err := newClientWorks(leaf); err != nil {
			t.Fatalf("client of the %s refused after the bundle rotation: %v", name, err)
		}
	}
	waitPuts(50)

	// Step 2: drop the old CA. New connections with its certificates are
	// refused; the running client keeps its connection.
	writeFileAtomic(t, files.caFile, ca2.CertPEM)
	if newClientWorks(old) == nil {
		t.Fatal("client of the dropped CA accepted on a new connection")
	}
	if err := newClientWorks(newUser); err != nil {
		t.Fatalf("client of the new CA refused: %v", err)
	}
	waitPuts(50)
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d puts of the running client failed during the rotation, first: %v", failed.Load(), puts.Load()+failed.Load(), firstErr.Load())
	}
}

func writeFileAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestTLSFlagErrors: etcd 3.6.8's answers to TLS flags that do not fit
// (recorded by running /tmp/etcd36/etcd with them).
func TestTLSFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--tls-min-version=TLS1.1"}, `unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)`},
		{[]string{"--tls-min-version=TLS1.3", "--tls-max-version=TLS1.2"}, "min version (TLS1.3) is greater than max version (TLS1.2)"},
		{[]string{"--tls-min-version=TLS1.3", "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}, "cipher suites cannot be configured when only TLS1.3 is enabled"},
		{[]string{"--cipher-suites=FOO"}, `unexpected TLS cipher suite "FOO"`},
		{[]string{"--listen-client-urls=https://127.0.0.1:23791", "--advertise-client-urls=https://127.0.0.1:23791"},
			"TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:23791 with HTTPS scheme"},
		{[]string{"--listen-metrics-urls=https://127.0.0.1:23799"}, "client TLS key/cert (--cert-file, --key-file) must be provided for metrics secure url"},
		{[]string{"--peer-cert-allowed-cn=a", "--peer-cert-allowed-hostname=b"}, `AllowedCNs and AllowedHostnames are mutually exclusive (cns=["a"], hostnames=["b"])`},
		{[]string{"--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "--tls-max-version=TLS1.3"}, ""},
	} {
		c := Default()
		fs := flagSet(&c)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		err := c.Validate()
		if tc.err == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.args, err)
			}
			continue
		}
		if err == nil || err.Error() != tc.err {
			t.Errorf("%q: err %v, want %q", tc.args, err, tc.err)
		}
	}

	c := Default()
	fs := flagSet(&c)
	if err := fs.Parse([]string{"--cert-file=/c.pem", "--key-file=/k.pem", "--client-cert-auth"}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"scheme is http or unix while key and cert files are present; ignoring key and cert files: client-url http://127.0.0.1:2379",
		"scheme is http or unix while --client-cert-auth is enabled; ignoring client cert auth for this URL: client-url http://127.0.0.1:2379",
	}
	if got := c.Warnings(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings %q, want %q", got, want)
	}
}

// TestTLSConfigFileBlocks: etcd's client-transport-security and
// peer-transport-security blocks set the TLS flags.
func TestTLSConfigFileBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etcd.conf.yml")
	yml := "client-transport-security:\n  cert-file: /c.pem\n  key-file: /k.pem\n  client-cert-auth: true\n  trusted-ca-file: /ca.pem\n  auto-tls: false\n" +
		"peer-transport-security:\n  cert-file: /pc.pem\n  key-file: /pk.pem\n  allowed-cn: [m1, m2]\n  skip-client-san-verification: true\n  auto-tls: true\n" +
		"cipher-suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\ntls-min-version: TLS1.2\nself-signed-cert-validity: 3\n"
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Default()
	if err := c.ApplyFile(path); err != nil {
		t.Fatal(err)
	}
	want := TLSConfig{CertFile: "/c.pem", KeyFile: "/k.pem", ClientCertAuth: true, TrustedCAFile: "/ca.pem"}
	if fmt.Sprint(c.ClientTLS) != fmt.Sprint(want) {
		t.Errorf("client %+v, want %+v", c.ClientTLS, want)
	}
	wantPeer := TLSConfig{CertFile: "/pc.pem", KeyFile: "/pk.pem", AllowedCNs: []string{"m1", "m2"}, SkipClientSANVerify: true, AutoTLS: true}
	if fmt.Sprint(c.PeerTLS) != fmt.Sprint(wantPeer) {
		t.Errorf("peer %+v, want %+v", c.PeerTLS, wantPeer)
	}
	if c.SelfSignedCertValidity != 3 || len(c.CipherSuites) != 1 {
		t.Errorf("validity %d, suites %v", c.SelfSignedCertValidity, c.CipherSuites)
	}
	if err := os.WriteFile(path, []byte("client-transport-security:\n  crl-file: /x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c = Default()
	if err := c.ApplyFile(path); err == nil || !errors.Is(err, ErrConfigFile) || !strings.Contains(err.Error(), `unknown key "crl-file"`) {
		t.Errorf("unknown key in a security block: %v", err)
	}
}

// TestTLSAutoTLS: --auto-tls makes a self-signed certificate in
// <data-dir>/fixtures/client, served on the https client URL, and keeps it
// across restarts.
func TestTLSAutoTLS(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	httpsURLs(&cfg)
	cfg.ClientTLS.AutoTLS = true
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(cfg.DataDir, "fixtures", "client", "cert.pem")
	first, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatalf("no self-signed certificate: %v", err)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{"https://" + cfg.ListenClientURLs[0].Host}, DialTimeout: 5 * time.Second,
		TLS: &tls.Config{InsecureSkipVerify: true}, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "a", "b"); err != nil {
		t.Fatalf("put over auto TLS: %v", err)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	n, err = Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	again, _ := os.ReadFile(certFile)
	if string(again) != string(first) {
		t.Error("restart made a new self-signed certificate")
	}
}

// TestTLSClientHTTPURLs: with --listen-client-http-urls the https client
// URL serves gRPC alone (the TLS handshake done by the gRPC credentials)
// and the https HTTP URL the gateway, which dials the gRPC URL over TLS.
func TestTLSClientHTTPURLs(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	files := newTLSFiles(t, ca, t.TempDir())
	cfg := testConfig(t, t.TempDir())
	cfg.ListenClientHTTPURLs = []url.URL{{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", freePort(t))}}
	httpsURLs(&cfg)
	cfg.ClientTLS = files.side()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	user := ca.Issue(t, tlstest.LeafOpts{CN: "alice", Client: true})
	cli, err := tlsClient(t, cfg, poolOf(ca), user)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("gRPC on the https client URL: %v", err)
	}
	pair, _ := tls.X509KeyPair(user.CertPEM, user.KeyPEM)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: poolOf(ca), Certificates: []tls.Certificate{pair}}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post("https://"+cfg.ListenClientHTTPURLs[0].Host+"/v3/kv/range", "application/json", strings.NewReader(`{"key":"aw=="}`))
	if err != nil {
		t.Fatalf("gateway on the https client http URL: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"value":"dg=="`) {
		t.Fatalf("gateway answered %d %s", resp.StatusCode, b)
	}
}
