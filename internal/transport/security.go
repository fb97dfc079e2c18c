package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// TLSInfo is one side's TLS flags, as etcd's transport.TLSInfo: the client
// side (--cert-file, --key-file, --client-cert-auth, ...) or the peer side
// (--peer-*).
type TLSInfo struct {
	// CertFile and KeyFile are this member's certificate, served to
	// clients and, unless ClientCertFile is set, presented as the client
	// certificate when this member dials.
	CertFile, KeyFile string
	// ClientCertFile and ClientKeyFile, when set, are presented instead
	// when this member dials (etcd's --client-cert-file).
	ClientCertFile, ClientKeyFile string
	// TrustedCAFile verifies the certificates presented by the other end,
	// both ways. Setting it requires client certificates, as in etcd.
	TrustedCAFile string
	// CRLFile revokes client certificates by serial number.
	CRLFile string
	// ClientCertAuth requires a client certificate verified by
	// TrustedCAFile.
	ClientCertAuth bool
	// AllowedCNs and AllowedHostnames, when set, admit only client
	// certificates with one of these common names, or valid for one of
	// these hostnames (etcd: mutually exclusive).
	AllowedCNs, AllowedHostnames []string
	// SkipClientSANVerify turns off the check that a client's
	// certificate names its source address. etcd checks it on the peer
	// port only; the node sets it for the client side.
	SkipClientSANVerify bool
	// CipherSuites (TLS 1.2; nil: Go's defaults), MinVersion (0: TLS 1.2,
	// etcd's default) and MaxVersion (0: Go's newest).
	CipherSuites           []uint16
	MinVersion, MaxVersion uint16
	// InsecureSkipVerify does not verify the server when dialing: the
	// self-signed certificates of --auto-tls, as etcd.
	InsecureSkipVerify bool
	// Endpoint names the side in logs: "client" or "peer" give etcd's
	// "rejected connection on client endpoint".
	Endpoint string
}

// Empty reports whether no certificate is configured: plaintext.
func (i TLSInfo) Empty() bool { return i.CertFile == "" && i.KeyFile == "" }

// Security is the TLS configuration of one side of the transport: the
// client endpoints, or the peer remote. A nil *Security means plaintext.
type Security struct {
	info TLSInfo
	log  *slog.Logger

	cert       *reloading[*tls.Certificate]
	clientCert *reloading[*tls.Certificate]
	ca         *reloading[*x509.CertPool] // nil: no --trusted-ca-file
	crl        *reloading[revoked]        // nil: no CRL

	requireClientCert bool
	allowed           func(*x509.Certificate) bool // nil: any verified client
}

// NewSecurity checks info's files and returns the Security that applies
// them; a nil *Security (and no error) when info has no certificate. The
// errors name the file and the fix.
func NewSecurity(info TLSInfo, logger *slog.Logger) (*Security, error) {
	if info.Empty() {
		return nil, nil
	}
	if logger == nil {
		logger = slog.Default()
	}
	if info.CertFile == "" || info.KeyFile == "" {
		return nil, fmt.Errorf("transport: KeyFile and CertFile must both be present[key: %v, cert: %v]", info.KeyFile, info.CertFile)
	}
	if (info.ClientCertFile == "") != (info.ClientKeyFile == "") {
		return nil, fmt.Errorf("transport: ClientKeyFile and ClientCertFile must both be present or both absent: key: %v, cert: %v]", info.ClientKeyFile, info.ClientCertFile)
	}
	if len(info.AllowedCNs) > 0 && len(info.AllowedHostnames) > 0 {
		return nil, fmt.Errorf("transport: AllowedCNs and AllowedHostnames are mutually exclusive (cns=%q, hostnames=%q)", info.AllowedCNs, info.AllowedHostnames)
	}
	s := &Security{info: info, log: logger.With("part", "tls")}
	var err error
	if s.cert, err = newReloading("certificate", []string{info.CertFile, info.KeyFile}, parseKeyPair(info.CertFile, info.KeyFile), s.log); err != nil {
		return nil, err
	}
	s.clientCert = s.cert
	if info.ClientCertFile != "" {
		if s.clientCert, err = newReloading("client certificate", []string{info.ClientCertFile, info.ClientKeyFile}, parseKeyPair(info.ClientCertFile, info.ClientKeyFile), s.log); err != nil {
			return nil, err
		}
	}
	if info.TrustedCAFile != "" {
		if s.ca, err = newReloading("trusted CA", []string{info.TrustedCAFile}, parseCAPool(info.TrustedCAFile), s.log); err != nil {
			return nil, err
		}
	}
	if info.CRLFile != "" {
		if s.crl, err = newReloading("CRL", []string{info.CRLFile}, parseCRL(info.CRLFile), s.log); err != nil {
			return nil, err
		}
	}
	s.requireClientCert = info.ClientCertAuth || info.TrustedCAFile != ""
	switch {
	case len(info.AllowedCNs) > 0:
		s.allowed = func(c *x509.Certificate) bool { return slices.Contains(info.AllowedCNs, c.Subject.CommonName) }
	case len(info.AllowedHostnames) > 0:
		s.allowed = func(c *x509.Certificate) bool {
			return slices.ContainsFunc(info.AllowedHostnames, func(h string) bool { return c.VerifyHostname(h) == nil })
		}
	}
	return s, nil
}

// For is s for a URL of the https scheme, nil (plaintext) for any other:
// etcd serves an http URL in plaintext even when certificates are given.
func (s *Security) For(u url.URL) *Security {
	if u.Scheme == "https" {
		return s
	}
	return nil
}

func (s *Security) minVersion() uint16 {
	if s.info.MinVersion != 0 {
		return s.info.MinVersion
	}
	return tls.VersionTLS12
}

// ServerConfig is the crypto/tls configuration of a server secured by s:
// every handshake gets the current certificate, CA pool and CRL. Its
// user runs accepted on each connection after the handshake (the CRL and
// SAN checks, as etcd's TLS listener).
func (s *Security) ServerConfig() *tls.Config {
	return &tls.Config{MinVersion: s.minVersion(), MaxVersion: s.info.MaxVersion, GetConfigForClient: s.configForClient}
}

// configForClient builds the configuration of one server handshake from
// the files as they are now.
func (s *Security) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	cert, err := s.cert.get()
	if err != nil {
		s.log.Warn("cannot load the server certificate", "err", err)
		return nil, err
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{*cert},
		MinVersion:   s.minVersion(),
		MaxVersion:   s.info.MaxVersion,
		CipherSuites: s.info.CipherSuites,
		NextProtos:   negotiate(hello.SupportedProtos),
	}
	if !s.requireClientCert {
		return cfg, nil
	}
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	if s.ca != nil {
		if cfg.ClientCAs, err = s.ca.get(); err != nil {
			return nil, err
		}
	}
	var remote net.Addr
	if hello.Conn != nil {
		remote = hello.Conn.RemoteAddr()
	}
	if s.allowed != nil {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			err := s.verifyAllowed(cs)
			if err != nil {
				s.logRejected(addrString(remote), cs, err)
				return &verifyError{err}
			}
			return nil
		}
	}
	return cfg, nil
}

// negotiate picks the one protocol a client may get: HTTP/1.1 for a
// client that offers it (curl, browsers, Prometheus), so that ConnMux
// sends it to the HTTP server; h2 for one that offers only h2 (gRPC
// clients), which ConnMux sends to the gRPC server. A client offering
// neither negotiates nothing and is routed by its first bytes.
func negotiate(offered []string) []string {
	switch {
	case slices.Contains(offered, "http/1.1"):
		return []string{"http/1.1"}
	case slices.Contains(offered, "h2"):
		return []string{"h2"}
	}
	return nil
}

// verifyAllowed refuses, within the handshake (the client reads a TLS
// alert), a certificate whose common name or hostname is not allowed, as
// etcd's VerifyPeerCertificate does.
func (s *Security) verifyAllowed(cs tls.ConnectionState) error {
	if !slices.ContainsFunc(cs.VerifiedChains, func(chain []*x509.Certificate) bool {
		return len(chain) > 0 && s.allowed(chain[0])
	}) {
		return errors.New("client certificate authentication failed")
	}
	return nil
}

// accepted runs, on a connection whose handshake succeeded, the checks
// etcd's TLS listener runs after the handshake: the CRL and, on the peer
// side, the client's SAN against its address. A refused connection is
// logged and closed (its client reads EOF, as from etcd); the error says
// why.
func (s *Security) accepted(tc *tls.Conn) error {
	if !s.requireClientCert {
		return nil
	}
	cs := tc.ConnectionState()
	err := s.verifyAccepted(cs, tc.RemoteAddr())
	if err != nil {
		s.logRejected(addrString(tc.RemoteAddr()), cs, err)
		_ = tc.Close()
	}
	return err
}

func (s *Security) verifyAccepted(cs tls.ConnectionState, remote net.Addr) error {
	if s.crl != nil {
		crl, err := s.crl.get()
		if err != nil {
			return err
		}
		if err := crl.check(cs.PeerCertificates); err != nil {
			return err
		}
	}
	if !s.info.SkipClientSANVerify && remote != nil && len(cs.PeerCertificates) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return checkCertSAN(ctx, cs.PeerCertificates[0], remote.String())
	}
	return nil
}

// checkCertSAN admits a certificate without SANs, or one whose IP SANs
// hold the remote address, or whose DNS names resolve to it (etcd's
// checkCertSAN, by forward lookup only).
func checkCertSAN(ctx context.Context, cert *x509.Certificate, remoteAddr string) error {
	if len(cert.IPAddresses) == 0 && len(cert.DNSNames) == 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return err
	}
	var ipErr error
	if len(cert.IPAddresses) > 0 {
		if ipErr = cert.VerifyHostname(host); ipErr == nil {
			return nil
		}
		if len(cert.DNSNames) == 0 {
			return ipErr
		}
	}
	var lookupErr error
	for _, name := range cert.DNSNames {
		if strings.HasPrefix(name, "*.") {
			continue
		}
		addrs, err := net.DefaultResolver.LookupHost(ctx, name)
		if err != nil {
			lookupErr = err
			continue
		}
		if slices.Contains(addrs, host) {
			return nil
		}
	}
	if lookupErr != nil {
		return fmt.Errorf("tls: %q does not match any of DNSNames %q (%v)", host, cert.DNSNames, lookupErr)
	}
	return fmt.Errorf("tls: %q does not match any of DNSNames %q", host, cert.DNSNames)
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// ClientConfig is the crypto/tls configuration of a connection this member
// dials to serverName: the current CA pool, and the client certificate
// when the server asks for one.
func (s *Security) ClientConfig(serverName string) (*tls.Config, error) {
	cfg := &tls.Config{
		ServerName:           serverName,
		MinVersion:           s.minVersion(),
		MaxVersion:           s.info.MaxVersion,
		CipherSuites:         s.info.CipherSuites,
		InsecureSkipVerify:   s.info.InsecureSkipVerify,
		GetClientCertificate: s.clientCertificate,
	}
	if s.ca != nil {
		pool, err := s.ca.get()
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func (s *Security) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c, err := s.clientCert.get()
	if err != nil {
		s.log.Warn("cannot load the client certificate", "err", err)
	}
	return c, err
}

// listener returns lis as clients must meet it: lis itself in plaintext,
// else a listener of TLS connections whose handshake runs on first use,
// never in Accept. Every user handshakes them and then runs accepted:
// ConnMux (the client port, and NewHTTPMux for HTTP-only servers) and
// the gRPC credentials.
func (s *Security) listener(lis net.Listener) net.Listener {
	if s == nil {
		return lis
	}
	return &tlsListener{Listener: lis, sec: s, cfg: s.ServerConfig()}
}

// serverOptions are the gRPC server options that secure a server: none in
// plaintext, else credentials that complete (or take over) the TLS
// handshake and expose the verified client certificate.
func (s *Security) serverOptions() []grpc.ServerOption {
	if s == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.Creds(&serverCreds{sec: s})}
}

// dialCredentials secure a gRPC client connection.
func (s *Security) dialCredentials() credentials.TransportCredentials {
	if s == nil {
		return insecure.NewCredentials()
	}
	return &clientCreds{sec: s}
}

// selfCredentials secure a connection to this member's own endpoint (the
// JSON gateway's): its certificate need not name the loopback address it
// is reached on, as etcd's gateway dials with InsecureSkipVerify.
func (s *Security) selfCredentials() credentials.TransportCredentials {
	if s == nil {
		return insecure.NewCredentials()
	}
	return &clientCreds{sec: s, skipVerify: true}
}

// handshakeFailed logs a refused or broken handshake, as etcd's "rejected
// connection on ... endpoint"; a refusal of verifyAllowed is logged already.
func (s *Security) handshakeFailed(c net.Conn, err error) {
	var ve *verifyError
	if errors.As(err, &ve) {
		return
	}
	var st tls.ConnectionState
	if tc, ok := c.(*tls.Conn); ok {
		st = tc.ConnectionState()
	}
	s.logRejected(addrString(c.RemoteAddr()), st, err)
}

// logRejected logs as etcd does: at warn, at debug for a connection
// closed before the handshake ended (probes, load balancers).
func (s *Security) logRejected(remote string, st tls.ConnectionState, err error) {
	msg := "rejected connection"
	if s.info.Endpoint != "" {
		msg += " on " + s.info.Endpoint + " endpoint"
	}
	level := slog.LevelWarn
	if errors.Is(err, io.EOF) {
		level = slog.LevelDebug
	}
	attrs := []any{"remote-addr", remote, "server-name", st.ServerName}
	if len(st.PeerCertificates) > 0 {
		c := st.PeerCertificates[0]
		ips := make([]string, len(c.IPAddresses))
		for i, ip := range c.IPAddresses {
			ips[i] = ip.String()
		}
		attrs = append(attrs, "ip-addresses", ips, "dns-names", c.DNSNames)
	}
	s.log.Log(context.Background(), level, msg, append(attrs, "error", err)...)
}

// verifyError is a refusal of verifyAllowed, logged when it happened.
type verifyError struct{ err error }

func (e *verifyError) Error() string { return e.err.Error() }
func (e *verifyError) Unwrap() error { return e.err }

// tlsListener hands out server-side TLS connections not yet handshaken.
type tlsListener struct {
	net.Listener
	sec *Security
	cfg *tls.Config
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(c, l.cfg), nil
}
