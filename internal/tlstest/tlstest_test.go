package tlstest_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/troupedb/troupe/internal/tlstest"
)

func TestLeafVerifiesAgainstItsCAAndHandshakes(t *testing.T) {
	ca := tlstest.NewCA(t, "test-ca")
	leaf := ca.Issue(t, tlstest.Localhost())
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Fatalf("verify usage %v: %v", usage, err)
		}
	}
	if _, err := tlstest.NewCA(t, "other").Issue(t, tlstest.Localhost()).Cert.Verify(x509.VerifyOptions{Roots: pool}); err == nil {
		t.Fatal("a leaf of another CA verified")
	}

	dir := t.TempDir()
	certPath, keyPath, caPath := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), filepath.Join(dir, "ca.pem")
	leaf.Write(t, certPath, keyPath)
	ca.WriteCA(t, caPath)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatalf("load written pair: %v", err)
	}
	caPEM, err := os.ReadFile(caPath)
	if err != nil || !x509.NewCertPool().AppendCertsFromPEM(caPEM) {
		t.Fatalf("written CA not PEM: %v", err)
	}

	srv, cli := net.Pipe()
	defer srv.Close()
	defer cli.Close()
	done := make(chan error, 1)
	go func() {
		done <- tls.Server(srv, &tls.Config{Certificates: []tls.Certificate{pair}}).Handshake()
	}()
	if err := tls.Client(cli, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}).Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
}

func TestUsagesAndCRL(t *testing.T) {
	ca := tlstest.NewCA(t, "test-ca")
	server := ca.Issue(t, tlstest.LeafOpts{CN: "s", Server: true})
	if len(server.Cert.ExtKeyUsage) != 1 || server.Cert.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Fatalf("server-only leaf has usages %v", server.Cert.ExtKeyUsage)
	}
	block, _ := pem.Decode(ca.CRL(t, server.Cert))
	if block == nil || block.Type != "X509 CRL" {
		t.Fatalf("CRL is not a PEM X509 CRL block: %v", block)
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		t.Fatalf("parse CRL: %v", err)
	}
	if err := crl.CheckSignatureFrom(ca.Cert); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(server.Cert.SerialNumber) != 0 {
		t.Fatalf("CRL revokes %v, want the server's serial", crl.RevokedCertificateEntries)
	}
}
