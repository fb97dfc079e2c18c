package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// SelfCert returns the files of a self-signed certificate in dir
// (cert.pem, key.pem) for hosts (host:port, as in the listen URLs), valid
// for validityYears, making them unless both exist, as etcd's
// --auto-tls / --peer-auto-tls do. Connections dialed with it do not
// verify the server (TLSInfo.InsecureSkipVerify).
func SelfCert(dir string, hosts []string, validityYears uint, logger *slog.Logger) (certFile, keyFile string, err error) {
	if validityYears == 0 {
		return "", "", errors.New("selfSignedCertValidity is invalid,it should be greater than 0")
	}
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("transport: cannot create cert directory: %w", err)
	}
	if certFile, err = filepath.Abs(filepath.Join(dir, "cert.pem")); err != nil {
		return "", "", err
	}
	if keyFile, err = filepath.Abs(filepath.Join(dir, "key.pem")); err != nil {
		return "", "", err
	}
	_, errCert := os.Stat(certFile)
	_, errKey := os.Stat(keyFile)
	if errCert == nil && errKey == nil {
		return certFile, keyFile, nil
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return "", "", fmt.Errorf("transport: serial of the self-signed certificate: %w", err)
	}
	now := time.Now()
	tmpl := x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"etcd"}},
		NotBefore:             now,
		NotAfter:              now.Add(time.Duration(validityYears) * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	logger.Warn("automatically generate certificates", "certificate-validity-bound-not-after", tmpl.NotAfter)
	for _, hp := range hosts {
		h, _, _ := net.SplitHostPort(hp)
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("transport: cannot generate ECDSA key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", fmt.Errorf("transport: cannot generate x509 certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", fmt.Errorf("transport: cannot marshal the key: %w", err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", fmt.Errorf("transport: cannot write cert file: %w", err)
	}
	logger.Info("created cert file", "path", certFile)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", fmt.Errorf("transport: cannot write key file: %w", err)
	}
	logger.Info("created key file", "path", keyFile)
	return certFile, keyFile, nil
}
