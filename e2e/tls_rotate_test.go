package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/troupedb/troupe/e2e/e2etest"
	"github.com/troupedb/troupe/internal/polltest"
	"github.com/troupedb/troupe/internal/tlstest"
)

// Bounds of a put load: it stops when told, or at these limits.
const (
	loadMaxPuts     = 20000
	loadMaxDuration = 90 * time.Second
	reloadWithin    = 15 * time.Second // a file change must be seen by then
)

// putLoop is one clientv3 client putting keys in a loop until stopped; it
// records every failed put.
type putLoop struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	puts   int
	errs   []error
}

// startPutLoop starts putting <prefix><n> through a client of eps over cfg.
func startPutLoop(t *testing.T, eps []string, cfg *tls.Config, prefix string) *putLoop {
	t.Helper()
	cli := tlsClient(t, eps, cfg)
	c, cancel := context.WithTimeout(context.Background(), loadMaxDuration)
	l := &putLoop{cancel: cancel}
	t.Cleanup(l.stop)
	l.wg.Go(func() {
		for i := 0; i < loadMaxPuts && c.Err() == nil; i++ {
			pc, pcancel := context.WithTimeout(c, 5*time.Second)
			_, err := cli.Put(pc, fmt.Sprintf("%s%d", prefix, i), "v")
			pcancel()
			l.mu.Lock()
			if err == nil {
				l.puts++
			} else if c.Err() == nil { // a put cut by stop is no failure
				l.errs = append(l.errs, err)
			}
			l.mu.Unlock()
		}
	})
	return l
}

func (l *putLoop) stop() { l.cancel(); l.wg.Wait() }

// count is the number of puts acknowledged so far.
func (l *putLoop) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.puts
}

// waitMore waits (bounded) until the load got n more puts through, which
// shows it still runs.
func (l *putLoop) waitMore(t *testing.T, n int, what string) {
	t.Helper()
	from := l.count()
	polltest.Eventually(t, 20*time.Second, what, func() (bool, string) {
		return l.count() >= from+n, fmt.Sprintf("%d puts", l.count()-from)
	})
}

// finish stops the load and fails the test if any put failed or none got
// through.
func (l *putLoop) finish(t *testing.T, name string) {
	t.Helper()
	l.stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) > 0 {
		t.Errorf("load %s: %d of %d puts failed, first: %v", name, len(l.errs), l.puts+len(l.errs), l.errs[0])
	}
	if l.puts == 0 {
		t.Errorf("load %s got no put through", name)
	}
	t.Logf("load %s: %d puts", name, l.puts)
}

// TestTLSRotateServerCert: while a client puts in a loop, the member's
// certificate and key files are replaced by a new pair of the same CA; new
// connections are served the new certificate (as etcd reads the pair
// again for each handshake), and no put fails.
func TestTLSRotateServerCert(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, dir, "ca")
	srv, cli, x := p.clientMTLS()
	s := e2etest.Start(t, e2etest.Config{ClientTLS: x})
	cfg := p.tlsConfig(cli)
	requireServedSerial(t, s.Endpoint(), cfg, srv.leaf.Cert.SerialNumber.String())
	load := startPutLoop(t, []string{s.Endpoint()}, cfg, "rotate/")
	load.waitMore(t, 50, "puts before the rotation")
	next := p.ca.Issue(t, tlstest.Localhost())
	next.Write(t, srv.cert, srv.key)
	requireServedSerial(t, s.Endpoint(), cfg, next.Cert.SerialNumber.String())
	load.waitMore(t, 50, "puts after the rotation")
	if err := tryPut(t, s.Endpoint(), cfg); err != nil {
		t.Fatalf("a new client after the rotation: %v", err)
	}
	load.finish(t, "rotate")
}

// requireServedSerial waits (bounded) until a new TLS connection to ep is
// served the certificate with serial want.
func requireServedSerial(t *testing.T, ep string, cfg *tls.Config, want string) {
	t.Helper()
	polltest.Eventually(t, reloadWithin, "served certificate serial "+want, func() (bool, string) {
		got, err := servedSerial(t, ep, cfg)
		if err != nil {
			return false, err.Error()
		}
		return got.String() == want, "serving serial " + got.String()
	})
}

// TestTLSRotateCAAndCRLTroupe (troupe only: etcd 3.6.8 reads the trusted
// CA file and the CRL once, at start, etcd-io/etcd#11555): while clients
// put in a loop, the trusted CA bundle goes from the old CA to old+new
// (clients of the new CA get in), the load moves to a client of the new CA,
// the old CA leaves the bundle (its clients are refused), and a CRL of the
// new CA revoking one of its client certificates is written (that client
// is refused); no put of the running loads fails, and the member never
// restarts.
func TestTLSRotateCAAndCRLTroupe(t *testing.T) {
	dir := t.TempDir()
	oldCA := newPKI(t, dir, "old-ca")
	newCA := newPKI(t, dir, "new-ca")
	srv := oldCA.localhost("server", "localhost")
	oldCli := oldCA.issue("old-client", tlstest.LeafOpts{CN: "old-client", Client: true})
	newCli := newCA.issue("new-client", tlstest.LeafOpts{CN: "new-client", Client: true})
	doomed := newCA.issue("doomed", tlstest.LeafOpts{CN: "doomed", Client: true})
	bundle, crl := filepath.Join(dir, "bundle.crt"), filepath.Join(dir, "clients.crl")
	writeBundle(t, bundle, oldCA)
	writeFile(t, crl, oldCA.crlDER())
	x := &e2etest.TLS{CertFile: srv.cert, KeyFile: srv.key, TrustedCAFile: bundle, ClientCertAuth: true, CRLFile: crl,
		CAFile: oldCA.caFile, ClientCertFile: oldCli.cert, ClientKeyFile: oldCli.key}
	s := e2etest.Start(t, e2etest.Config{Kind: e2etest.Troupe, ClientTLS: x})
	pid := s.PID()
	// Clients verify the server (a leaf of the old CA) with the old CA and
	// present a certificate of either CA.
	clientCfg := func(c certFiles) *tls.Config {
		cfg := oldCA.tlsConfig(certFiles{})
		pair, err := tls.LoadX509KeyPair(c.cert, c.key)
		must(t, err)
		cfg.Certificates = []tls.Certificate{pair}
		return cfg
	}
	accepted := func(c certFiles) func() (bool, string) {
		return func() (bool, string) {
			err := tryPut(t, s.Endpoint(), clientCfg(c))
			return err == nil, fmt.Sprint(err)
		}
	}
	refused := func(c certFiles) func() (bool, string) {
		return func() (bool, string) { return tryPut(t, s.Endpoint(), clientCfg(c)) != nil, "still accepted" }
	}
	if err := tryPut(t, s.Endpoint(), clientCfg(newCli)); err == nil {
		t.Fatal("a client of the new CA got in before the new CA was trusted")
	}
	oldLoad := startPutLoop(t, []string{s.Endpoint()}, clientCfg(oldCli), "ca-rotate/old/")
	oldLoad.waitMore(t, 20, "puts of the old CA's client")

	writeBundle(t, bundle, oldCA, newCA)
	polltest.Eventually(t, reloadWithin, "a client of the new CA accepted once the bundle has both CAs", accepted(newCli))
	newLoad := startPutLoop(t, []string{s.Endpoint()}, clientCfg(newCli), "ca-rotate/new/")
	newLoad.waitMore(t, 20, "puts of the new CA's client")
	oldLoad.waitMore(t, 20, "puts of the old CA's client with both CAs trusted")
	oldLoad.finish(t, "old CA")

	writeBundle(t, bundle, newCA)
	polltest.Eventually(t, reloadWithin, "a client of the old CA refused once the bundle has only the new CA", refused(oldCli))
	newLoad.waitMore(t, 20, "puts of the new CA's client with only the new CA trusted")
	polltest.Eventually(t, reloadWithin, "a client of the new CA accepted before the CRL", accepted(doomed))

	writeFile(t, crl+".tmp", newCA.crlDER(doomed))
	must(t, os.Rename(crl+".tmp", crl))
	polltest.Eventually(t, reloadWithin, "a revoked client refused once the CRL names it", refused(doomed))
	polltest.Eventually(t, reloadWithin, "a new client of the new CA still accepted", accepted(newCli))
	newLoad.waitMore(t, 20, "puts of the new CA's client after the CRL")
	newLoad.finish(t, "new CA")
	if s.PID() != pid {
		t.Fatalf("the member restarted (pid %d, then %d)", pid, s.PID())
	}
}

// writeBundle replaces path with the certificates of cas, as one PEM
// bundle, atomically.
func writeBundle(t *testing.T, path string, cas ...*pki) {
	t.Helper()
	var b []byte
	for _, ca := range cas {
		b = append(b, ca.ca.CertPEM...)
	}
	writeFile(t, path+".tmp", b)
	must(t, os.Rename(path+".tmp", path))
}
