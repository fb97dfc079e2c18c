package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/troupedb/troupe/internal/tlstest"
)

// pki is a CA, a server certificate and its files in a temporary folder.
type pki struct {
	dir string
	ca  *tlstest.CA
}

func newPKI(t *testing.T) *pki {
	p := &pki{dir: t.TempDir(), ca: tlstest.NewCA(t, "ca")}
	p.ca.WriteCA(t, p.path("ca.pem"))
	p.ca.Issue(t, tlstest.Localhost()).Write(t, p.path("server.pem"), p.path("server.key"))
	return p
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

func (p *pki) info() TLSInfo {
	return TLSInfo{CertFile: p.path("server.pem"), KeyFile: p.path("server.key"), TrustedCAFile: p.path("ca.pem"), ClientCertAuth: true}
}

// clientConfig presents leaf (nil: no certificate) and trusts ca.
func clientConfig(ca *tlstest.CA, leaf *tlstest.Leaf) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if leaf != nil {
		pair, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
		if err != nil {
			panic(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// echoServer accepts TLS connections of sec and answers "ok" after the
// handshake; it returns the address and a log of the server.
func echoServer(t *testing.T, sec *Security) string {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis := sec.listener(raw)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if tc := c.(*tls.Conn); tc.Handshake() == nil && sec.accepted(tc) == nil {
					_, _ = c.Write([]byte("ok"))
				}
			}()
		}
	}()
	t.Cleanup(func() { _ = lis.Close(); <-done })
	return raw.Addr().String()
}

// handshake dials addr with cfg and returns nil when the server answered.
func handshake(addr string, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	// TLS 1.3 reports a refused client certificate on the first read.
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	return nil
}

func mustSecurity(t *testing.T, info TLSInfo, log *bytes.Buffer) *Security {
	t.Helper()
	var w io.Writer = io.Discard
	if log != nil {
		w = log
	}
	s, err := NewSecurity(info, slog.New(slog.NewTextHandler(w, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTLSHandshakes(t *testing.T) {
	p := newPKI(t)
	good := p.ca.Issue(t, tlstest.LeafOpts{CN: "alice", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	revoked := p.ca.Issue(t, tlstest.LeafOpts{CN: "alice", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	expired := p.ca.Issue(t, tlstest.LeafOpts{CN: "alice", NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	otherCA := tlstest.NewCA(t, "other")
	foreign := otherCA.Issue(t, tlstest.LeafOpts{CN: "alice"})
	bob := p.ca.Issue(t, tlstest.LeafOpts{CN: "bob", DNS: []string{"bob.example"}})
	wrongSAN := p.ca.Issue(t, tlstest.LeafOpts{CN: "alice", IPs: []net.IP{net.IPv4(10, 9, 8, 7)}})
	if err := os.WriteFile(p.path("crl.pem"), p.ca.CRL(t, revoked.Cert), 0o600); err != nil {
		t.Fatal(err)
	}

	withCRL := p.info()
	withCRL.CRLFile = p.path("crl.pem")
	withCRL.SkipClientSANVerify = true
	cns := p.info()
	cns.AllowedCNs = []string{"alice"}
	cns.SkipClientSANVerify = true
	hosts := p.info()
	hosts.AllowedHostnames = []string{"bob.example"}
	hosts.SkipClientSANVerify = true
	serverOnly := TLSInfo{CertFile: p.path("server.pem"), KeyFile: p.path("server.key")}
	peer := p.info() // the peer side checks the client's SAN against its address

	for _, tc := range []struct {
		name   string
		info   TLSInfo
		leaf   *tlstest.Leaf
		wantOK bool
	}{
		{"trusted", withCRL, good, true},
		{"no client certificate", withCRL, nil, false},
		{"untrusted CA", withCRL, foreign, false},
		{"expired", withCRL, expired, false},
		{"revoked by CRL", withCRL, revoked, false},
		{"allowed CN", cns, good, true},
		{"CN not allowed", cns, bob, false},
		{"allowed hostname", hosts, bob, true},
		{"hostname not allowed", hosts, good, false},
		{"server TLS only, no client certificate", serverOnly, nil, true},
		{"peer SAN matches address", peer, good, true},
		{"peer SAN does not match address", peer, wrongSAN, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := echoServer(t, mustSecurity(t, tc.info, nil))
			err := handshake(addr, clientConfig(p.ca, tc.leaf))
			if tc.wantOK && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.wantOK && err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestTLSDefaultsAndVersions(t *testing.T) {
	p := newPKI(t)
	addr := echoServer(t, mustSecurity(t, TLSInfo{CertFile: p.path("server.pem"), KeyFile: p.path("server.key")}, nil))
	old := clientConfig(p.ca, nil)
	old.MaxVersion = tls.VersionTLS11
	if err := handshake(addr, old); err == nil {
		t.Fatal("TLS 1.1 accepted; etcd's minimum is TLS 1.2")
	}
	info := TLSInfo{CertFile: p.path("server.pem"), KeyFile: p.path("server.key"), MinVersion: tls.VersionTLS13}
	addr = echoServer(t, mustSecurity(t, info, nil))
	v12 := clientConfig(p.ca, nil)
	v12.MaxVersion = tls.VersionTLS12
	if err := handshake(addr, v12); err == nil {
		t.Fatal("TLS 1.2 accepted with MinVersion TLS 1.3")
	}
}

// TestTLSRotation: a new leaf, a new CA bundle and a new CRL written over
// the files are used by the next connection, without a new Security; a
// broken file keeps the last good one and is logged by name.
func TestTLSRotation(t *testing.T) {
	p := newPKI(t)
	var log bytes.Buffer
	info := p.info()
	info.SkipClientSANVerify = true
	sec := mustSecurity(t, info, &log)
	addr := echoServer(t, sec)
	client := p.ca.Issue(t, tlstest.LeafOpts{CN: "client"})

	served := func(cfg *tls.Config) *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	first := served(clientConfig(p.ca, client))
	rotated := p.ca.Issue(t, tlstest.Localhost())
	rotated.Write(t, p.path("server.pem"), p.path("server.key"))
	if got := served(clientConfig(p.ca, client)); !got.Equal(rotated.Cert) || got.Equal(first) {
		t.Fatal("the rotated leaf is not served to a new connection")
	}

	// CA rotation: a client of a new CA is refused until the bundle holds it.
	ca2 := tlstest.NewCA(t, "ca2")
	client2 := ca2.Issue(t, tlstest.LeafOpts{CN: "client2"})
	if err := handshake(addr, clientConfig(p.ca, client2)); err == nil {
		t.Fatal("client of a CA not yet trusted accepted")
	}
	bundle := append(append([]byte{}, p.ca.CertPEM...), ca2.CertPEM...)
	writeAtomic(t, p.path("ca.pem"), bundle)
	if err := handshake(addr, clientConfig(p.ca, client2)); err != nil {
		t.Fatalf("client of the newly trusted CA refused: %v", err)
	}

	// CRL appears: the client is revoked from the next connection on.
	info2 := info
	info2.CRLFile = p.path("crl.pem")
	info2.Endpoint = "client"
	writeAtomic(t, p.path("crl.pem"), p.ca.CRL(t))
	sec2 := mustSecurity(t, info2, &log)
	addr2 := echoServer(t, sec2)
	if err := handshake(addr2, clientConfig(p.ca, client)); err != nil {
		t.Fatalf("refused before the revocation: %v", err)
	}
	writeAtomic(t, p.path("crl.pem"), p.ca.CRL(t, client.Cert))
	if err := handshake(addr2, clientConfig(p.ca, client)); err == nil {
		t.Fatal("revoked client accepted after the CRL changed")
	}
	if !strings.Contains(log.String(), "rejected connection on client endpoint") || !strings.Contains(log.String(), "revoked") {
		t.Fatalf("the refusal is not logged as etcd's:\n%s", log.String())
	}

	// A broken CA bundle keeps the last good pool and names the file.
	writeAtomic(t, p.path("ca.pem"), []byte("not a certificate"))
	if err := handshake(addr, clientConfig(p.ca, client2)); err != nil {
		t.Fatalf("a broken CA file dropped the last good pool: %v", err)
	}
	if !strings.Contains(log.String(), p.path("ca.pem")) {
		t.Fatalf("log does not name the broken CA file:\n%s", log.String())
	}
}

func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestNewSecurityBadFiles(t *testing.T) {
	p := newPKI(t)
	garbage := p.path("garbage.pem")
	if err := os.WriteFile(garbage, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := p.ca.Issue(t, tlstest.Localhost())
	other.Write(t, p.path("other.pem"), p.path("other.key"))
	for _, tc := range []struct {
		name string
		info TLSInfo
		want string
	}{
		{"cert not PEM", TLSInfo{CertFile: garbage, KeyFile: p.path("server.key")}, garbage},
		{"key of another cert", TLSInfo{CertFile: p.path("server.pem"), KeyFile: p.path("other.key")}, p.path("other.key")},
		{"missing cert", TLSInfo{CertFile: p.path("nope.pem"), KeyFile: p.path("server.key")}, p.path("nope.pem")},
		{"CA not PEM", TLSInfo{CertFile: p.path("server.pem"), KeyFile: p.path("server.key"), TrustedCAFile: garbage}, garbage},
		{"CRL not a CRL", TLSInfo{CertFile: p.path("server.pem"), KeyFile: p.path("server.key"), CRLFile: garbage}, garbage},
		{"key without cert", TLSInfo{KeyFile: p.path("server.key")}, "KeyFile and CertFile must both be present"},
		{"client key without cert", TLSInfo{CertFile: p.path("server.pem"), KeyFile: p.path("server.key"), ClientKeyFile: p.path("server.key")}, "ClientKeyFile and ClientCertFile must both be present"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSecurity(tc.info, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}
	if s, err := NewSecurity(TLSInfo{}, nil); s != nil || err != nil {
		t.Fatalf("empty TLSInfo = %v, %v; want plaintext (nil, nil)", s, err)
	}
}

// TestConnMuxTLS: on one TLS port, a gRPC client reaches the gRPC server,
// which sees its verified certificate in peer.AuthInfo, and an HTTPS client
// (offering h2 and http/1.1) reaches the HTTP server.
func TestConnMuxTLS(t *testing.T) {
	p := newPKI(t)
	info := p.info()
	info.SkipClientSANVerify = true
	sec := mustSecurity(t, info, nil)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewConnMux(sec.listener(raw))
	cns := make(chan string, 1)
	srv := grpc.NewServer(append(ServerOptions(sec, 1<<20, GRPCLimits{}), grpc.UnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if pr, ok := peer.FromContext(ctx); ok {
				if ti, ok := pr.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
					cns <- ti.State.VerifiedChains[0][0].Subject.CommonName
				}
			}
			return h(ctx, req)
		}))...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "http "+r.Proto)
	}), ReadHeaderTimeout: 5 * time.Second}
	var serving [3]chan struct{}
	for i, serve := range []func(){func() { m.Serve() }, func() { _ = srv.Serve(m.GRPC()) }, func() { _ = hs.Serve(m.HTTP()) }} {
		serving[i] = make(chan struct{})
		go func(done chan struct{}) { defer close(done); serve() }(serving[i])
	}
	t.Cleanup(func() {
		srv.Stop()
		_ = hs.Close()
		_ = raw.Close()
		for _, done := range serving {
			<-done
		}
	})

	// The client side of another member: a Security with its own leaf.
	p.ca.Issue(t, tlstest.LeafOpts{CN: "member-2", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}).Write(t, p.path("m2.pem"), p.path("m2.key"))
	client := mustSecurity(t, TLSInfo{CertFile: p.path("m2.pem"), KeyFile: p.path("m2.key"), TrustedCAFile: p.path("ca.pem")}, nil)
	conn, err := Dialer{Security: client}.Dial(raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("gRPC over TLS: %v", err)
	}
	if cn := <-cns; cn != "member-2" {
		t.Fatalf("gRPC saw client CN %q, want member-2", cn)
	}

	cfg := clientConfig(p.ca, p.ca.Issue(t, tlstest.LeafOpts{CN: "curl"}))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}
	resp, err := hc.Get("https://" + raw.Addr().String() + "/health")
	if err != nil {
		t.Fatalf("HTTPS: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != "http HTTP/1.1" {
		t.Fatalf("HTTPS answered %q, want the HTTP server over HTTP/1.1", body)
	}

	// The gateway's own dial does not verify the name, still presents its certificate.
	self, err := Dialer{Security: client}.DialSelf(raw.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	if _, err := healthpb.NewHealthClient(self).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("DialSelf over TLS: %v", err)
	}
	<-cns
}
