package e2etest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLS is one side (client or peer) of a member's TLS, given as etcd's flags
// name it; the files are written by the test (internal/tlstest). A nil *TLS
// leaves that side on plain http.
type TLS struct {
	CertFile, KeyFile string // --cert-file/--key-file (--peer-...)
	TrustedCAFile     string // --trusted-ca-file
	ClientCertAuth    bool   // --client-cert-auth
	CRLFile           string // --client-crl-file / --peer-crl-file
	AllowedCN         string // --peer-cert-allowed-cn (peer side only)

	// CAFile is the CA the harness's own clients trust (the ready check,
	// Client, etcdctl's --cacert); empty means TrustedCAFile.
	CAFile string
	// ClientCertFile and ClientKeyFile are the certificate the harness's
	// clients present; empty means CertFile and KeyFile, which
	// tlstest.Localhost certificates allow for client authentication too.
	ClientCertFile, ClientKeyFile string
}

// clientArgs are the member's client-side TLS flags.
func (x *TLS) clientArgs() []string { return x.args("--", "--client-") }

// peerArgs are the member's peer-side TLS flags.
func (x *TLS) peerArgs() []string {
	a := x.args("--peer-", "--peer-")
	if x != nil && x.AllowedCN != "" {
		a = append(a, "--peer-cert-allowed-cn", x.AllowedCN)
	}
	return a
}

// args are one side's TLS flags: etcd names them with prefix
// (--cert-file, --peer-cert-file), except the CRL file (crlPrefix:
// --client-crl-file, --peer-crl-file).
func (x *TLS) args(prefix, crlPrefix string) []string {
	if x == nil {
		return nil
	}
	a := []string{prefix + "cert-file", x.CertFile, prefix + "key-file", x.KeyFile}
	if x.TrustedCAFile != "" {
		a = append(a, prefix+"trusted-ca-file", x.TrustedCAFile)
	}
	if x.ClientCertAuth {
		a = append(a, prefix+"client-cert-auth")
	}
	if x.CRLFile != "" {
		a = append(a, crlPrefix+"crl-file", x.CRLFile)
	}
	return a
}

func (x *TLS) caFile() string {
	if x.CAFile != "" {
		return x.CAFile
	}
	return x.TrustedCAFile
}

func (x *TLS) clientPair() (cert, key string) {
	if x.ClientCertFile != "" {
		return x.ClientCertFile, x.ClientKeyFile
	}
	return x.CertFile, x.KeyFile
}

// scheme is the URL scheme of a side configured by x.
func (x *TLS) scheme() string {
	if x == nil {
		return "http"
	}
	return "https"
}

// ClientConfig is the tls.Config of a client of a member whose client side
// x configures: it trusts CAFile (or TrustedCAFile) and presents the client
// pair. Nil x gives nil (plain http).
func (x *TLS) ClientConfig() (*tls.Config, error) {
	if x == nil {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := x.caFile(); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("e2etest: CA for clients: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("e2etest: CA for clients %s holds no PEM certificate", ca)
		}
		cfg.RootCAs = pool
	}
	if cert, key := x.clientPair(); cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("e2etest: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// EtcdctlArgs are etcdctl's flags for a client of a member whose client
// side x configures (--cacert, --cert, --key); nil x gives none.
func (x *TLS) EtcdctlArgs() []string {
	if x == nil {
		return nil
	}
	var a []string
	if ca := x.caFile(); ca != "" {
		a = append(a, "--cacert", ca)
	}
	if cert, key := x.clientPair(); cert != "" {
		a = append(a, "--cert", cert, "--key", key)
	}
	return a
}
