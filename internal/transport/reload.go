package transport

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"
)

// fileStamp identifies one version of a file without reading it: a
// rotation that renames a new file into place changes the inode, one
// that rewrites it in place changes the size or the modification time.
type fileStamp struct {
	mtime time.Time
	size  int64
	inode uint64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	st := fileStamp{mtime: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.inode = sys.Ino
	}
	return st, nil
}

// reloading is a value parsed from files that is parsed again when one of
// them changes, checked on every use (a stat per file per TLS handshake:
// microseconds, and handshakes are per connection, not per request). A
// new version that does not parse is logged once with the file to fix, and
// the last good value stays in use, so a half-finished rotation (a new
// certificate written before its key) never fails handshakes.
type reloading[T any] struct {
	what  string // for logs: "certificate", "trusted CA", "CRL"
	paths []string
	parse func(data [][]byte) (T, error)
	log   *slog.Logger

	mu     sync.Mutex
	stamps []fileStamp
	val    T
	good   bool
}

func newReloading[T any](what string, paths []string, parse func([][]byte) (T, error), log *slog.Logger) (*reloading[T], error) {
	r := &reloading[T]{what: what, paths: paths, parse: parse, log: log}
	if _, err := r.get(); err != nil {
		return nil, err
	}
	return r, nil
}

// get returns the current value, re-reading the files when they changed.
// The error, when there is no good value at all, names the files.
func (r *reloading[T]) get() (T, error) {
	stamps := make([]fileStamp, len(r.paths))
	var statErr error
	for i, p := range r.paths {
		st, err := stampOf(p)
		if err != nil && statErr == nil {
			statErr = err
		}
		stamps[i] = st
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.good && sameStamps(stamps, r.stamps) {
		return r.val, nil
	}
	v, err := r.load()
	if err == nil && statErr != nil {
		err = statErr // changed while being read: try again next time
	}
	if err != nil {
		if !r.good {
			var zero T
			return zero, err
		}
		if !sameStamps(stamps, r.stamps) {
			r.log.Error("cannot reload TLS file, keeping the previous one", "what", r.what, "err", err)
			r.stamps = stamps
		}
		return r.val, nil
	}
	if r.good {
		r.log.Info("reloaded TLS file", "what", r.what, "files", r.paths)
	}
	r.val, r.stamps, r.good = v, stamps, true
	return v, nil
}

func (r *reloading[T]) load() (T, error) {
	data := make([][]byte, len(r.paths))
	for i, p := range r.paths {
		b, err := os.ReadFile(p)
		if err != nil {
			var zero T
			return zero, fmt.Errorf("transport: read %s %s: %w", r.what, p, err)
		}
		data[i] = b
	}
	return r.parse(data)
}

func sameStamps(a, b []fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// parseKeyPair parses a certificate and its key; the error names both
// files.
func parseKeyPair(certFile, keyFile string) func([][]byte) (*tls.Certificate, error) {
	return func(data [][]byte) (*tls.Certificate, error) {
		pair, err := tls.X509KeyPair(data[0], data[1])
		if err != nil {
			return nil, fmt.Errorf("transport: certificate %s with key %s: %w (fix: give a PEM certificate and its own PEM private key)", certFile, keyFile, err)
		}
		if pair.Leaf == nil && len(pair.Certificate) > 0 {
			if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
				return nil, fmt.Errorf("transport: certificate %s: %w", certFile, err)
			}
		}
		return &pair, nil
	}
}

// parseCAPool parses a PEM bundle of trusted CA certificates.
func parseCAPool(caFile string) func([][]byte) (*x509.CertPool, error) {
	return func(data [][]byte) (*x509.CertPool, error) {
		pool := x509.NewCertPool()
		rest, n := data[0], 0
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("transport: trusted CA file %s: %w", caFile, err)
			}
			pool.AddCert(c)
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("transport: trusted CA file %s holds no PEM certificate (fix: give a PEM bundle of CA certificates)", caFile)
		}
		return pool, nil
	}
}

// revoked is the set of serial numbers a CRL revokes.
type revoked map[string]struct{}

// parseCRL parses a CRL, PEM ("X509 CRL") or DER (etcd reads DER only).
func parseCRL(crlFile string) func([][]byte) (revoked, error) {
	return func(data [][]byte) (revoked, error) {
		der := data[0]
		if block, _ := pem.Decode(der); block != nil {
			if block.Type != "X509 CRL" {
				return nil, fmt.Errorf("transport: CRL file %s: PEM block %q, want \"X509 CRL\"", crlFile, block.Type)
			}
			der = block.Bytes
		}
		list, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("transport: CRL file %s: %w (fix: give a PEM or DER X.509 CRL)", crlFile, err)
		}
		set := make(revoked, len(list.RevokedCertificateEntries))
		for _, e := range list.RevokedCertificateEntries {
			set[string(e.SerialNumber.Bytes())] = struct{}{}
		}
		return set, nil
	}
}

// check fails when any of certs is revoked, as etcd's checkCRL.
func (r revoked) check(certs []*x509.Certificate) error {
	for _, c := range certs {
		if _, ok := r[string(c.SerialNumber.Bytes())]; ok {
			return fmt.Errorf("transport: certificate serial %x revoked", c.SerialNumber.Bytes())
		}
	}
	return nil
}

var (
	errServerOnly = errors.New("transport: server credentials cannot dial")
	errClientOnly = errors.New("transport: client credentials cannot serve")
)
