package authtoken

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultJWTTTL is the TTL of JWT tokens without a "ttl" option, as etcd's.
const DefaultJWTTTL = 5 * time.Minute

// jwtOptions are the options etcd's jwt provider knows; others are
// logged and ignored, as etcd does.
var jwtOptions = []string{"sign-method", "pub-key", "priv-key", "ttl"}

// jwtProvider is etcd's JWT provider: tokens carry the user name, the
// auth revision and an expiry, signed with the configured key; with only
// a public key the member verifies tokens but cannot issue them.
type jwtProvider struct {
	method     jwt.SigningMethod
	key        any // private key (or HMAC secret) to sign, public key when verifyOnly
	ttl        time.Duration
	verifyOnly bool
	logger     *slog.Logger
}

func newJWT(opts map[string]string, logger *slog.Logger) (*jwtProvider, error) {
	p, priv, pub, err := parseJWT(opts, logger)
	if err != nil {
		logger.Error("problem loading JWT options", "error", err)
		return nil, ErrInvalidAuthOpts
	}
	var unknown []string
	for k := range opts {
		if !slices.Contains(jwtOptions, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		logger.Warn("unknown JWT options", "keys", unknown)
	}
	// etcd returns the key errors themselves, not ErrInvalidAuthOpts.
	if p.key, err = jwtKey(p.method, priv, pub); err != nil {
		return nil, err
	}
	switch p.key.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey, *rsa.PublicKey:
		p.verifyOnly = true
	}
	return p, nil
}

// parseJWT reads the options in etcd's order (ttl, key files, method),
// returning the key files' contents.
func parseJWT(opts map[string]string, logger *slog.Logger) (p *jwtProvider, priv, pub []byte, err error) {
	p = &jwtProvider{ttl: DefaultJWTTTL, logger: logger}
	if s := opts["ttl"]; s != "" {
		if p.ttl, err = time.ParseDuration(s); err != nil {
			return nil, nil, nil, err
		}
	}
	if priv, pub, err = readKeys(opts); err != nil {
		return nil, nil, nil, err
	}
	p.method = jwt.GetSigningMethod(opts["sign-method"])
	if p.method == nil {
		return nil, nil, nil, ErrInvalidAuthMethod
	}
	return p, priv, pub, nil
}

func readKeys(opts map[string]string) (priv, pub []byte, err error) {
	if f := opts["pub-key"]; f != "" {
		if pub, err = os.ReadFile(f); err != nil {
			return nil, nil, err
		}
	}
	if f := opts["priv-key"]; f != "" {
		if priv, err = os.ReadFile(f); err != nil {
			return nil, nil, err
		}
	}
	return priv, pub, nil
}

// jwtKey parses the PEM keys the method needs: the private key when
// given (checked against the public key if both are), else the public key.
func jwtKey(method jwt.SigningMethod, priv, pub []byte) (any, error) {
	switch method.(type) {
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		return pair(priv, pub, jwt.ParseRSAPrivateKeyFromPEM, jwt.ParseRSAPublicKeyFromPEM)
	case *jwt.SigningMethodECDSA:
		return pair(priv, pub, jwt.ParseECPrivateKeyFromPEM, jwt.ParseECPublicKeyFromPEM)
	case *jwt.SigningMethodEd25519:
		return pair(priv, pub,
			func(b []byte) (ed25519.PrivateKey, error) {
				k, err := jwt.ParseEdPrivateKeyFromPEM(b)
				return asEd[ed25519.PrivateKey](k, err)
			},
			func(b []byte) (ed25519.PublicKey, error) {
				k, err := jwt.ParseEdPublicKeyFromPEM(b)
				return asEd[ed25519.PublicKey](k, err)
			})
	case *jwt.SigningMethodHMAC:
		if len(priv) == 0 {
			return nil, ErrMissingKey
		}
		return priv, nil
	default:
		return nil, fmt.Errorf("unsupported signing method: %T", method)
	}
}

func asEd[T any](k any, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	t, ok := k.(T)
	if !ok {
		return zero, fmt.Errorf("key is a %T, not an Ed25519 key", k)
	}
	return t, nil
}

type privateKey interface {
	Public() crypto.PublicKey
}

type publicKey interface {
	Equal(crypto.PublicKey) bool
}

func pair[Priv privateKey, Pub publicKey](priv, pub []byte, parsePriv func([]byte) (Priv, error), parsePub func([]byte) (Pub, error)) (any, error) {
	var (
		sk           Priv
		pk           Pub
		hasSK, hasPK bool
	)
	if len(priv) > 0 {
		k, err := parsePriv(priv)
		if err != nil {
			return nil, err
		}
		sk, hasSK = k, true
	}
	if len(pub) > 0 {
		k, err := parsePub(pub)
		if err != nil {
			return nil, err
		}
		pk, hasPK = k, true
	}
	switch {
	case !hasSK && !hasPK:
		return nil, ErrMissingKey
	case !hasSK:
		return pk, nil // verify only
	case hasPK && !pk.Equal(sk.Public()):
		return nil, ErrKeyMismatch
	}
	return sk, nil
}

func (p *jwtProvider) Assign(string, string, uint64) {}
func (p *jwtProvider) InvalidateUser(string)         {}
func (p *jwtProvider) Enable()                       {}
func (p *jwtProvider) Disable()                      {}
func (p *jwtProvider) Prefix() (string, error)       { return "", nil }
func (p *jwtProvider) Signed() bool                  { return true }
func (p *jwtProvider) Stop()                         {}

func (p *jwtProvider) Sign(user string, revision uint64) (string, error) {
	if p.verifyOnly {
		return "", ErrVerifyOnly
	}
	tok := jwt.NewWithClaims(p.method, jwt.MapClaims{
		"username": user,
		"revision": revision,
		"exp":      time.Now().Add(p.ttl).Unix(),
	})
	s, err := tok.SignedString(p.key)
	if err != nil {
		p.logger.Debug("failed to sign a JWT token", "user-name", user, "revision", revision, "error", err)
		return "", err
	}
	return s, nil
}

func (p *jwtProvider) Info(_ context.Context, token string, _ uint64) (string, uint64, bool) {
	parsed, err := jwt.Parse(token, p.verifyKey, jwt.WithValidMethods([]string{p.method.Alg()}))
	if err != nil {
		p.logger.Warn("failed to parse a JWT token", "error", err)
		return "", 0, false
	}
	claims, ok := parsed.Claims.(jwt.MapClaims)
	if !parsed.Valid || !ok {
		p.logger.Warn("failed to obtain claims from a JWT token")
		return "", 0, false
	}
	user, ok := claims["username"].(string)
	if !ok {
		p.logger.Warn("failed to obtain user claims from jwt token")
		return "", 0, false
	}
	rev, ok := claims["revision"].(float64)
	if !ok {
		p.logger.Warn("failed to obtain revision claims from jwt token")
		return "", 0, false
	}
	return user, uint64(rev), true
}

func (p *jwtProvider) verifyKey(t *jwt.Token) (any, error) {
	if t.Method.Alg() != p.method.Alg() {
		return nil, errors.New("invalid signing method")
	}
	switch k := p.key.(type) {
	case *rsa.PrivateKey:
		return &k.PublicKey, nil
	case *ecdsa.PrivateKey:
		return &k.PublicKey, nil
	case ed25519.PrivateKey:
		return k.Public(), nil
	default:
		return p.key, nil
	}
}
