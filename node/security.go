package node

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"

	"github.com/troupedb/troupe/internal/transport"
)

// TLSConfig is one side's TLS flags: the client side (--cert-file,
// --key-file, --client-cert-auth, ...) or the peer side (--peer-*), with
// etcd's meaning (see transport.TLSInfo).
type TLSConfig struct {
	CertFile, KeyFile             string
	ClientCertFile, ClientKeyFile string
	TrustedCAFile                 string
	CRLFile                       string
	ClientCertAuth                bool
	// AllowedCNs and AllowedHostnames admit only client certificates with
	// these common names, or valid for these hosts (the client side has
	// no --client-cert-allowed-cn flag; etcd's embed config has the field).
	AllowedCNs, AllowedHostnames []string
	// SkipClientSANVerify (peer side) does not check that a member's
	// client certificate names the address it connects from.
	SkipClientSANVerify bool
	// AutoTLS generates a self-signed certificate in
	// <data-dir>/fixtures/client or /peer when no certificate is given
	// (--auto-tls, --peer-auto-tls).
	AutoTLS bool
}

func (t TLSConfig) empty() bool { return t.CertFile == "" && t.KeyFile == "" }

// tlsState is what Start built from the TLS flags: one Security per side,
// nil for plaintext.
type tlsState struct {
	client, peer *transport.Security
}

// clientSecurity is the TLS configuration of the client endpoints (the
// etcd API and its HTTP endpoints, the actor API) and of the connections
// a follower opens to the leader's client endpoint; nil is plaintext.
// transport applies it to https URLs only.
func (c *Config) clientSecurity() *transport.Security { return c.tls.client }

// peerSecurity is the TLS configuration of the peer remote (raft
// messages, snapshots and hashes between members); nil is plaintext.
func (c *Config) peerSecurity() *transport.Security { return c.tls.peer }

// registerTLSFlags registers etcd's TLS flags.
func (c *Config) registerTLSFlags(fs *flag.FlagSet) {
	cl, pe := &c.ClientTLS, &c.PeerTLS
	fs.StringVar(&cl.CertFile, "cert-file", cl.CertFile, "")
	fs.StringVar(&cl.KeyFile, "key-file", cl.KeyFile, "")
	fs.BoolVar(&cl.ClientCertAuth, "client-cert-auth", cl.ClientCertAuth, "")
	fs.StringVar(&cl.ClientCertFile, "client-cert-file", cl.ClientCertFile, "")
	fs.StringVar(&cl.ClientKeyFile, "client-key-file", cl.ClientKeyFile, "")
	fs.StringVar(&cl.CRLFile, "client-crl-file", cl.CRLFile, "")
	fs.Var(&listValue{list: &cl.AllowedHostnames}, "client-cert-allowed-hostname", "")
	fs.StringVar(&cl.TrustedCAFile, "trusted-ca-file", cl.TrustedCAFile, "")
	fs.BoolVar(&cl.AutoTLS, "auto-tls", cl.AutoTLS, "")
	fs.StringVar(&pe.CertFile, "peer-cert-file", pe.CertFile, "")
	fs.StringVar(&pe.KeyFile, "peer-key-file", pe.KeyFile, "")
	fs.BoolVar(&pe.ClientCertAuth, "peer-client-cert-auth", pe.ClientCertAuth, "")
	fs.StringVar(&pe.ClientCertFile, "peer-client-cert-file", pe.ClientCertFile, "")
	fs.StringVar(&pe.ClientKeyFile, "peer-client-key-file", pe.ClientKeyFile, "")
	fs.StringVar(&pe.TrustedCAFile, "peer-trusted-ca-file", pe.TrustedCAFile, "")
	fs.Var(&listValue{list: &pe.AllowedCNs}, "peer-cert-allowed-cn", "")
	fs.Var(&listValue{list: &pe.AllowedHostnames}, "peer-cert-allowed-hostname", "")
	fs.BoolVar(&pe.AutoTLS, "peer-auto-tls", pe.AutoTLS, "")
	fs.StringVar(&pe.CRLFile, "peer-crl-file", pe.CRLFile, "")
	fs.BoolVar(&pe.SkipClientSANVerify, "peer-skip-client-san-verification", pe.SkipClientSANVerify, "")
	fs.BoolVar(&pe.SkipClientSANVerify, "experimental-peer-skip-client-san-verification", pe.SkipClientSANVerify, renamedUsage("experimental-peer-skip-client-san-verification"))
	fs.UintVar(&c.SelfSignedCertValidity, "self-signed-cert-validity", c.SelfSignedCertValidity, "")
	fs.Var(&listValue{list: &c.CipherSuites}, "cipher-suites", "")
	fs.StringVar(&c.TLSMinVersion, "tls-min-version", c.TLSMinVersion, "")
	fs.StringVar(&c.TLSMaxVersion, "tls-max-version", c.TLSMaxVersion, "")
}

// tlsVersion is etcd's tlsutil.GetTLSVersion.
func tlsVersion(v string) (uint16, error) {
	switch v {
	case "":
		return 0, nil
	case "TLS1.2":
		return tls.VersionTLS12, nil
	case "TLS1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("unexpected TLS version %q (must be one of: TLS1.2, TLS1.3)", v)
}

// cipherSuites is etcd's tlsutil.GetCipherSuites: Go's names, insecure
// ones included, and two short names etcd keeps.
func cipherSuites(names []string) ([]uint16, error) {
	out := make([]uint16, 0, len(names))
	for _, n := range names {
		id, ok := cipherSuite(n)
		if !ok {
			return nil, fmt.Errorf("unexpected TLS cipher suite %q", n)
		}
		out = append(out, id)
	}
	return out, nil
}

func cipherSuite(name string) (uint16, bool) {
	for _, cs := range slices.Concat(tls.CipherSuites(), tls.InsecureCipherSuites()) {
		if cs.Name == name {
			return cs.ID, true
		}
	}
	switch name {
	case "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305":
		return tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, true
	case "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305":
		return tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true
	}
	return 0, false
}

// validateTLS checks the TLS flags as etcd 3.6.8 does, with its errors.
func (c *Config) validateTLS() error {
	minV, err := tlsVersion(c.TLSMinVersion)
	if err != nil {
		return err
	}
	maxV, err := tlsVersion(c.TLSMaxVersion)
	if err != nil {
		return err
	}
	if maxV != 0 && minV > maxV {
		return fmt.Errorf("min version (%s) is greater than max version (%s)", c.TLSMinVersion, c.TLSMaxVersion)
	}
	if minV == tls.VersionTLS13 && len(c.CipherSuites) > 0 {
		return errors.New("cipher suites cannot be configured when only TLS1.3 is enabled")
	}
	if _, err := cipherSuites(c.CipherSuites); err != nil {
		return err
	}
	if c.SelfSignedCertValidity == 0 && (c.ClientTLS.AutoTLS || c.PeerTLS.AutoTLS) {
		return errors.New("selfSignedCertValidity is invalid,it should be greater than 0")
	}
	for _, t := range []TLSConfig{c.ClientTLS, c.PeerTLS} {
		if len(t.AllowedCNs) > 0 && len(t.AllowedHostnames) > 0 {
			return fmt.Errorf("AllowedCNs and AllowedHostnames are mutually exclusive (cns=%q, hostnames=%q)", t.AllowedCNs, t.AllowedHostnames)
		}
	}
	clientTLS := !c.ClientTLS.empty() || c.ClientTLS.AutoTLS
	for _, u := range slices.Concat(c.ListenClientURLs, c.ListenClientHTTPURLs) {
		if u.Scheme == "https" && !clientTLS {
			return fmt.Errorf("TLS key/cert (--cert-file, --key-file) must be provided for client url %s with HTTPS scheme", u.String())
		}
	}
	for _, u := range c.ListenMetricsURLs {
		if u.Scheme == "https" && !clientTLS {
			return errors.New("client TLS key/cert (--cert-file, --key-file) must be provided for metrics secure url")
		}
	}
	for _, u := range c.ListenPeerURLs {
		if u.Scheme == "https" && c.PeerTLS.empty() && !c.PeerTLS.AutoTLS {
			return fmt.Errorf("cannot listen on TLS for %s: KeyFile and CertFile are not presented (fix: give --peer-cert-file and --peer-key-file, or --peer-auto-tls)", u.Host)
		}
	}
	if len(c.ListenPeerURLs) > 1 && slices.ContainsFunc(c.ListenPeerURLs, func(u url.URL) bool { return u.Scheme != c.ListenPeerURLs[0].Scheme }) {
		return fmt.Errorf("--listen-peer-urls %s: troupe serves peers on one protoactor remote, so all of them must be http or all https", joinURLs(c.ListenPeerURLs))
	}
	return nil
}

// tlsWarnings are etcd's warnings about TLS flags that do not apply.
func (c *Config) tlsWarnings() []string {
	var out []string
	for _, u := range slices.Concat(c.ListenClientURLs, c.ListenClientHTTPURLs) {
		if u.Scheme != "http" {
			continue
		}
		if !c.ClientTLS.empty() {
			out = append(out, "scheme is http or unix while key and cert files are present; ignoring key and cert files: client-url "+u.String())
		}
		if c.ClientTLS.ClientCertAuth {
			out = append(out, "scheme is http or unix while --client-cert-auth is enabled; ignoring client cert auth for this URL: client-url "+u.String())
		}
	}
	for _, u := range c.ListenPeerURLs {
		if u.Scheme != "http" {
			continue
		}
		if !c.PeerTLS.empty() {
			out = append(out, "scheme is HTTP while key and cert files are present; ignoring key and cert files: peer-url "+u.String())
		}
		if c.PeerTLS.ClientCertAuth {
			out = append(out, "scheme is HTTP while --peer-client-cert-auth is enabled; ignoring client cert auth for this URL: peer-url "+u.String())
		}
	}
	if c.ClientTLS.AutoTLS && !c.ClientTLS.empty() {
		out = append(out, "ignoring client auto TLS since certs given")
	}
	if c.PeerTLS.AutoTLS && !c.PeerTLS.empty() {
		out = append(out, "ignoring peer auto TLS since certs given")
	}
	return out
}

// setUpTLS builds the client and peer Security from the flags, making
// the self-signed certificates of --auto-tls / --peer-auto-tls first. A
// side whose URLs are all http stays plaintext, as etcd ignores the
// certificates then.
func (c *Config) setUpTLS() error {
	client, err := c.sideTLS(c.ClientTLS, "client", hostsOf(slices.Concat(c.ListenClientURLs, c.ListenClientHTTPURLs)),
		anyHTTPS(slices.Concat(c.ListenClientURLs, c.ListenClientHTTPURLs, c.ListenMetricsURLs)), true)
	if err != nil {
		return err
	}
	peer, err := c.sideTLS(c.PeerTLS, "peer", hostsOf(c.ListenPeerURLs), anyHTTPS(c.ListenPeerURLs), c.PeerTLS.SkipClientSANVerify)
	if err != nil {
		return err
	}
	c.tls = tlsState{client: client, peer: peer}
	return nil
}

func (c *Config) sideTLS(t TLSConfig, side string, hosts []string, https, skipSAN bool) (*transport.Security, error) {
	if !https {
		return nil, nil
	}
	suites, err := cipherSuites(c.CipherSuites)
	if err != nil {
		return nil, err
	}
	minV, _ := tlsVersion(c.TLSMinVersion)
	maxV, _ := tlsVersion(c.TLSMaxVersion)
	info := transport.TLSInfo{
		CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCertFile: t.ClientCertFile, ClientKeyFile: t.ClientKeyFile,
		TrustedCAFile: t.TrustedCAFile, CRLFile: t.CRLFile, ClientCertAuth: t.ClientCertAuth,
		AllowedCNs: t.AllowedCNs, AllowedHostnames: t.AllowedHostnames, SkipClientSANVerify: skipSAN,
		CipherSuites: suites, MinVersion: minV, MaxVersion: maxV, Endpoint: side,
	}
	if t.empty() && t.AutoTLS {
		dir := filepath.Join(c.DataDir, "fixtures", side)
		certFile, keyFile, err := transport.SelfCert(dir, hosts, c.SelfSignedCertValidity, c.Logger)
		if err != nil {
			return nil, fmt.Errorf("failed to get %s self-signed certs: %w", side, err)
		}
		// As etcd's SelfCert, the generated files replace the whole side:
		// a trusted CA, client cert auth or CRL given with auto TLS are
		// dropped (etcd does the same).
		info = transport.TLSInfo{
			CertFile: certFile, KeyFile: keyFile, ClientCertFile: certFile, ClientKeyFile: keyFile,
			InsecureSkipVerify: true, SkipClientSANVerify: skipSAN,
			CipherSuites: suites, MinVersion: minV, MaxVersion: maxV, Endpoint: side,
		}
	}
	sec, err := transport.NewSecurity(info, c.Logger.With("side", side))
	if err != nil {
		return nil, fmt.Errorf("%s TLS: %w", side, err)
	}
	if sec != nil {
		c.Logger.Info("starting with "+side+" TLS", slog.String("cert-file", info.CertFile), slog.String("trusted-ca-file", info.TrustedCAFile),
			slog.Bool("client-cert-auth", info.ClientCertAuth || info.TrustedCAFile != ""), slog.String("crl-file", info.CRLFile))
	}
	return sec, nil
}

func hostsOf(urls []url.URL) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = u.Host
	}
	return out
}

func anyHTTPS(urls []url.URL) bool {
	return slices.ContainsFunc(urls, func(u url.URL) bool { return u.Scheme == "https" })
}

// tlsAcceptedFlags are etcd's TLS flags with what each means here (the
// rest of the accepted flags are in acceptedFlags).
var tlsAcceptedFlags = map[string]string{
	"cert-file":                         "client TLS certificate, re-read when it changes (node/security.go)",
	"key-file":                          "client TLS key, re-read when it changes",
	"client-cert-auth":                  "require client certificates verified by --trusted-ca-file",
	"client-cert-file":                  "certificate this member presents when it dials another member's client URL",
	"client-key-file":                   "key of --client-cert-file",
	"client-crl-file":                   "revoked client certificates (PEM or DER), re-read when it changes",
	"client-cert-allowed-hostname":      "client certificates must be valid for one of these hostnames",
	"trusted-ca-file":                   "CA bundle verifying client certificates (and requiring them, as etcd), re-read when it changes",
	"auto-tls":                          "self-signed client certificate in <data-dir>/fixtures/client",
	"peer-cert-file":                    "peer TLS certificate of the protoactor remote, re-read when it changes",
	"peer-key-file":                     "peer TLS key",
	"peer-client-cert-auth":             "require peer client certificates verified by --peer-trusted-ca-file",
	"peer-client-cert-file":             "certificate presented when dialing peers",
	"peer-client-key-file":              "key of --peer-client-cert-file",
	"peer-trusted-ca-file":              "CA bundle verifying peers, re-read when it changes",
	"peer-cert-allowed-cn":              "peer certificates must have one of these common names",
	"peer-cert-allowed-hostname":        "peer certificates must be valid for one of these hostnames",
	"peer-auto-tls":                     "self-signed peer certificate in <data-dir>/fixtures/peer",
	"self-signed-cert-validity":         "years of the --auto-tls / --peer-auto-tls certificates",
	"peer-crl-file":                     "revoked peer certificates (PEM or DER), re-read when it changes",
	"cipher-suites":                     "TLS 1.2 cipher suites by Go's names, as etcd",
	"tls-min-version":                   "TLS1.2 or TLS1.3",
	"tls-max-version":                   "TLS1.2, TLS1.3 or empty (Go's newest)",
	"peer-skip-client-san-verification": "do not check a peer certificate's SANs against its address",
	"experimental-peer-skip-client-san-verification": "old name of --peer-skip-client-san-verification (deprecated)",
}
