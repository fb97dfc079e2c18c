package authtoken

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// writeKeys writes k's PKCS#8 private and PKIX public PEM files.
func writeKeys(t *testing.T, name string, k crypto.Signer) (priv, pub string) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	priv, pub = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func TestJWTSignAndVerify(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method string
		key    crypto.Signer
	}{{"RS256", rsaKey}, {"PS384", rsaKey}, {"ES256", ecKey}, {"EdDSA", edKey}} {
		t.Run(tc.method, func(t *testing.T) {
			priv, pub := writeKeys(t, "k", tc.key)
			signer, err := New("jwt,sign-method="+tc.method+",priv-key="+priv+",pub-key="+pub+",ttl=1h", Options{Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			token, err := signer.Sign("alice", 42)
			if err != nil {
				t.Fatal(err)
			}
			verifier, err := New("jwt,sign-method="+tc.method+",pub-key="+pub, Options{Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			for name, p := range map[string]Provider{"signer": signer, "verifier": verifier} {
				if user, rev, ok := p.Info(context.Background(), token, 7); !ok || user != "alice" || rev != 42 {
					t.Errorf("%s: Info = %q, %d, %v; want alice, 42, true", name, user, rev, ok)
				}
			}
			if _, err := verifier.Sign("alice", 1); !errors.Is(err, ErrVerifyOnly) {
				t.Errorf("verify-only Sign = %v, want %v", err, ErrVerifyOnly)
			}
			forged := token[:strings.LastIndex(token, ".")+1] + "AAAA"
			if _, _, ok := verifier.Info(context.Background(), forged, 1); ok {
				t.Error("a token with a forged signature is valid")
			}
		})
	}
}

func TestJWTRefusesExpiredAndOtherMethods(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := writeKeys(t, "ec", ecKey)
	p, err := New("jwt,sign-method=ES256,priv-key="+priv, Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"username": "alice", "revision": 1, "exp": time.Now().Add(-time.Minute).Unix(),
	}).SignedString(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	hmac, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"username": "root", "revision": 1, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte("guess"))
	if err != nil {
		t.Fatal(err)
	}
	noRevision, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"username": "alice", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"expired": expired, "hmac": hmac, "no revision": noRevision, "garbage": "a.b.c"} {
		if _, _, ok := p.Info(context.Background(), tok, 1); ok {
			t.Errorf("%s token is valid", name)
		}
	}
}

func TestJWTKeyErrors(t *testing.T) {
	a, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privA, _ := writeKeys(t, "a", a)
	_, pubB := writeKeys(t, "b", b)
	for spec, want := range map[string]error{
		"jwt,sign-method=ES256": ErrMissingKey,
		"jwt,sign-method=HS256": ErrMissingKey,
		"jwt,sign-method=ES256,priv-key=" + privA + ",pub-key=" + pubB: ErrKeyMismatch,
	} {
		if _, err := New(spec, Options{Logger: quiet()}); !errors.Is(err, want) {
			t.Errorf("New(%q) = %v, want %v", spec, err, want)
		}
	}
	if _, err := New("jwt,sign-method=RS256,priv-key="+privA, Options{Logger: quiet()}); err == nil {
		t.Error("an EC key for RS256 was accepted")
	}
}
