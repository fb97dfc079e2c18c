// Package tlstest makes throw-away certificate authorities, leaf
// certificates and CRLs for tests, so that no test depends on files checked
// into the repository that expire or leak a private key. Keys are ECDSA
// P-256: fast to generate and accepted by every TLS stack the tests talk to
// (Go, etcd, kube-apiserver).
package tlstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a self-signed certificate authority.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// LeafOpts says what a leaf certificate is for. Zero NotBefore/NotAfter make
// it valid from an hour ago (clock skew between processes) for a day; neither
// Client nor Server gives it both extended key usages, as etcd's own test
// certificates have.
type LeafOpts struct {
	CN             string
	DNS            []string
	IPs            []net.IP
	Client, Server bool
	NotBefore      time.Time
	NotAfter       time.Time
}

// Leaf is a certificate issued by a CA with its private key.
type Leaf struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// Localhost is a leaf for a server or client on this machine: CN localhost,
// DNS localhost, IPs 127.0.0.1 and ::1, both usages.
func Localhost() LeafOpts {
	return LeafOpts{
		CN:  "localhost",
		DNS: []string{"localhost"},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
}

// NewCA makes a CA with the common name cn, valid from an hour ago for ten
// years.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"troupe tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("tlstest: create CA %q: %v", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("tlstest: parse CA %q: %v", cn, err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: pemBlock("CERTIFICATE", der)}
}

// Issue signs a leaf certificate described by o.
func (ca *CA) Issue(t testing.TB, o LeafOpts) *Leaf {
	t.Helper()
	key := newKey(t)
	notBefore, notAfter := o.NotBefore, o.NotAfter
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Hour)
	}
	if notAfter.IsZero() {
		notAfter = notBefore.Add(24 * time.Hour)
	}
	usage := []x509.ExtKeyUsage{}
	if o.Server || !o.Client {
		usage = append(usage, x509.ExtKeyUsageServerAuth)
	}
	if o.Client || !o.Server {
		usage = append(usage, x509.ExtKeyUsageClientAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: o.CN, Organization: []string{"troupe tests"}},
		DNSNames:     o.DNS,
		IPAddresses:  o.IPs,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  usage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatalf("tlstest: issue %q: %v", o.CN, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("tlstest: parse %q: %v", o.CN, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("tlstest: marshal key of %q: %v", o.CN, err)
	}
	return &Leaf{Cert: cert, CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("EC PRIVATE KEY", keyDER)}
}

// CRL returns a PEM "X509 CRL" signed by ca that revokes the given
// certificates, valid from an hour ago for a day.
func (ca *CA) CRL(t testing.TB, revoked ...*x509.Certificate) []byte {
	t.Helper()
	now := time.Now()
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: now.Add(-time.Minute)})
	}
	tmpl := &x509.RevocationList{
		Number:                    serial(t),
		ThisUpdate:                now.Add(-time.Hour),
		NextUpdate:                now.Add(24 * time.Hour),
		RevokedCertificateEntries: entries,
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
	if err != nil {
		t.Fatalf("tlstest: create CRL: %v", err)
	}
	return pemBlock("X509 CRL", der)
}

// WriteCA writes the CA certificate as PEM to path.
func (ca *CA) WriteCA(t testing.TB, path string) {
	t.Helper()
	writeFile(t, path, ca.CertPEM)
}

// Write writes the leaf's certificate and key as PEM.
func (l *Leaf) Write(t testing.TB, certPath, keyPath string) {
	t.Helper()
	writeFile(t, certPath, l.CertPEM)
	writeFile(t, keyPath, l.KeyPEM)
}

// writeFile replaces path atomically (temporary file + rename), so a reader
// re-reading the file during a rotation test never sees half a PEM block.
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tlstest-*")
	if err != nil {
		t.Fatalf("tlstest: write %s: %v", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		t.Fatalf("tlstest: write %s: %v", path, err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatalf("tlstest: write %s: %v", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		t.Fatalf("tlstest: chmod %s: %v", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatalf("tlstest: rename to %s: %v", path, err)
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("tlstest: generate key: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("tlstest: serial: %v", err)
	}
	return n
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
