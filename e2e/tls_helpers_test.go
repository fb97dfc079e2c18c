package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/troupedb/troupe/e2e/e2etest"
	"github.com/troupedb/troupe/internal/tlstest"
)

// pki is one test's certificates on disk: a CA and the leaves it issued,
// each written to files named after it.
type pki struct {
	t      *testing.T
	dir    string
	ca     *tlstest.CA
	caFile string
}

// newPKI makes a CA named cn and writes its certificate to <dir>/<cn>.crt.
func newPKI(t *testing.T, dir, cn string) *pki {
	t.Helper()
	p := &pki{t: t, dir: dir, ca: tlstest.NewCA(t, cn), caFile: filepath.Join(dir, cn+".crt")}
	p.ca.WriteCA(t, p.caFile)
	return p
}

// certFiles is a leaf written to disk.
type certFiles struct {
	leaf      *tlstest.Leaf
	cert, key string
}

// issue signs a leaf (o) and writes it to <dir>/<name>.crt and .key.
func (p *pki) issue(name string, o tlstest.LeafOpts) certFiles {
	p.t.Helper()
	f := certFiles{leaf: p.ca.Issue(p.t, o), cert: filepath.Join(p.dir, name+".crt"), key: filepath.Join(p.dir, name+".key")}
	f.leaf.Write(p.t, f.cert, f.key)
	return f
}

// localhost issues a localhost leaf (both usages) with the common name cn.
func (p *pki) localhost(name, cn string) certFiles {
	p.t.Helper()
	o := tlstest.Localhost()
	o.CN = cn
	return p.issue(name, o)
}

// tlsConfig is a client tls.Config trusting p's CA and presenting c (zero
// c: no client certificate).
func (p *pki) tlsConfig(c certFiles) *tls.Config {
	p.t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if c.cert != "" {
		pair, err := tls.LoadX509KeyPair(c.cert, c.key)
		must(p.t, err)
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// tlsClient is a clientv3 client of eps over cfg, closed at cleanup.
func tlsClient(t *testing.T, eps []string, cfg *tls.Config) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, TLS: cfg, Logger: zap.NewNop()})
	must(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli
}

// tryPut tries one put through a fresh client over cfg and returns its
// error (nil if the server accepted it).
func tryPut(t *testing.T, ep string, cfg *tls.Config) error {
	t.Helper()
	cli := tlsClient(t, []string{ep}, cfg)
	c, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err := cli.Put(c, "refused", "v")
	return err
}

// tryGet tries one linearizable get through a fresh client over cfg
// and returns its error (nil if the server answered).
func tryGet(t *testing.T, ep string, cfg *tls.Config) error {
	t.Helper()
	cli := tlsClient(t, []string{ep}, cfg)
	c, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err := cli.Get(c, "refused")
	return err
}

// servedSerial dials ep (host:port or a URL) with TLS, without verifying
// the chain, and returns the serial of the certificate the server shows.
func servedSerial(t *testing.T, ep string, cfg *tls.Config) (*big.Int, error) {
	t.Helper()
	if u, err := url.Parse(ep); err == nil && u.Host != "" {
		ep = u.Host
	}
	cfg = cfg.Clone()
	cfg.InsecureSkipVerify = true
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 3 * time.Second}, Config: cfg}
	c, err := d.DialContext(ctx(t), "tcp", ep)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// firstRead completes a TLS handshake with ep over cfg and returns the
// error of the first read: the server's alert if it refuses the client's
// certificate, io.EOF if it closes the connection, a timeout if it waits
// for a request (accepted).
func firstRead(t *testing.T, ep string, cfg *tls.Config) error {
	t.Helper()
	if u, err := url.Parse(ep); err == nil && u.Host != "" {
		ep = u.Host
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 3 * time.Second}, Config: cfg}
	c, err := d.DialContext(ctx(t), "tcp", ep)
	if err != nil {
		return err
	}
	defer c.Close()
	must(t, c.SetReadDeadline(time.Now().Add(3*time.Second)))
	_, err = c.Read(make([]byte, 1))
	return err
}

// httpsDo makes one request over cfg and returns the status and body.
func httpsDo(t *testing.T, cfg *tls.Config, method, u, body string) (int, string, error) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx(t), method, u, strings.NewReader(body))
	must(t, err)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// etcdctlResult is one etcdctl run that may fail.
type etcdctlResult struct {
	exit           int
	stdout, stderr string
}

// etcdctlTry runs etcd 3.6.8's etcdctl with args (endpoints and TLS flags
// included by the caller) and returns its exit status and output.
func etcdctlTry(t *testing.T, args ...string) etcdctlResult {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, etcdctlBinary(t), append([]string{"--command-timeout=1500ms", "--dial-timeout=1s"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := etcdctlResult{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.exit = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("etcdctl %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// crlDER is ca's CRL revoking certs, in DER: etcd 3.6.8 reads
// --client-crl-file and --peer-crl-file with x509.ParseRevocationList,
// which takes DER only ("x509: malformed crl" for PEM).
func (p *pki) crlDER(certs ...certFiles) []byte {
	p.t.Helper()
	revoked := make([]*x509.Certificate, 0, len(certs))
	for _, c := range certs {
		revoked = append(revoked, c.leaf.Cert)
	}
	b, _ := pem.Decode(p.ca.CRL(p.t, revoked...))
	if b == nil {
		p.t.Fatal("tlstest: CRL is not PEM")
	}
	return b.Bytes
}

// writeFile writes data to path, failing the test on error.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	must(t, os.WriteFile(path, data, 0o600))
}

// serverTLS is e2etest.TLS for a member serving c, trusting ca.
func serverTLS(c certFiles, ca *pki, clientCertAuth bool) *e2etest.TLS {
	return &e2etest.TLS{CertFile: c.cert, KeyFile: c.key, TrustedCAFile: ca.caFile, ClientCertAuth: clientCertAuth, CAFile: ca.caFile}
}
