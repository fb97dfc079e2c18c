// Package authtoken holds the token providers of etcd's auth: "simple"
// (random tokens that live in one member's memory, assigned when the
// Authenticate entry is applied) and "jwt" (signed tokens any member can
// verify), chosen by --auth-token as etcd 3.6.8 parses it.
//
// Contract:
//   - A Provider is safe for concurrent use. The applier drives its
//     apply-time side (Assign, InvalidateUser, Enable, Disable: etcd's
//     tokenProvider calls in the auth store), the API layer the request
//     side (Prefix before proposing an Authenticate, Sign after it was
//     applied, Info for every request that carries a token).
//   - The simple provider owns one goroutine while auth is enabled: the
//     keeper that deletes expired tokens once a second, as etcd's. Disable
//     and Stop end it; the node Stops the provider when it stops.
//   - Errors are etcd's (server/auth), with its texts, so the API layer
//     can show them as etcd does.
package authtoken

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// etcd's errors about token options and signing, word for word.
var (
	ErrInvalidAuthOpts   = errors.New("auth: invalid auth options")
	ErrInvalidAuthMethod = errors.New("auth: invalid auth signature method")
	ErrMissingKey        = errors.New("auth: missing key data")
	ErrKeyMismatch       = errors.New("auth: public and private keys don't match")
	ErrVerifyOnly        = errors.New("auth: token signing attempted with verify-only key")
	// ErrAuthFailed is what Sign answers when no provider is configured
	// (--auth-token=""), as etcd's nop provider.
	ErrAuthFailed = errors.New("auth: authentication failed, invalid user ID or password")
)

// DefaultSimpleTTL is --auth-token-ttl's default, and the TTL of simple
// tokens when it is zero.
const DefaultSimpleTTL = 300 * time.Second

// Provider makes and checks tokens.
type Provider interface {
	// Assign records token as user's, at the apply of its Authenticate
	// entry (simple tokens; the others ignore it).
	Assign(token, user string, revision uint64)
	// InvalidateUser drops user's tokens (user deleted, password changed).
	InvalidateUser(user string)
	// Enable and Disable follow auth being enabled and disabled; Disable
	// drops every token.
	Enable()
	Disable()
	// Prefix is the SimpleToken of the next InternalAuthenticateRequest:
	// the applier makes "<prefix>.<index>" of it. Empty for JWT.
	Prefix() (string, error)
	// Signed reports whether the token of an Authenticate is made by Sign
	// after the apply (JWT) rather than at the apply (simple).
	Signed() bool
	// Sign makes user's token at auth revision revision.
	Sign(user string, revision uint64) (string, error)
	// Info returns the user and auth revision token stands for; revision
	// is the member's auth revision, which a simple token carries. ok is
	// false for an unknown, expired or forged token.
	Info(ctx context.Context, token string, revision uint64) (user string, rev uint64, ok bool)
	// Stop ends the provider's goroutine, if any.
	Stop()
}

// Options are what New needs besides --auth-token.
type Options struct {
	// SimpleTTL is --auth-token-ttl (zero: DefaultSimpleTTL).
	SimpleTTL time.Duration
	// WaitApplied returns once this member applied index, or with an
	// error; a simple token names the index of its Authenticate entry,
	// which a member may not have applied yet when the token reaches it.
	WaitApplied func(ctx context.Context, index uint64) error
	Logger      *slog.Logger
}

// New returns the provider --auth-token spec asks for: "simple", "jwt,"
// followed by its options, or "" (no tokens at all), with etcd's errors.
func New(spec string, o Options) (Provider, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	kind, opts, err := decompose(spec)
	if err != nil {
		o.Logger.Error("invalid token option", "option", spec, "error", err)
		return nil, ErrInvalidAuthOpts
	}
	switch kind {
	case "simple":
		o.Logger.Warn("simple token is not cryptographically signed")
		return newSimple(o.SimpleTTL, o.WaitApplied, o.Logger), nil
	case "jwt":
		return newJWT(opts, o.Logger)
	case "":
		return nop{}, nil
	default:
		o.Logger.Warn("unknown token type", "type", kind, "error", ErrInvalidAuthOpts)
		return nil, ErrInvalidAuthOpts
	}
}

// decompose splits "kind,key=value,..." as etcd's decomposeOpts: a pair
// without exactly one "=" or a key given twice is refused.
func decompose(spec string) (string, map[string]string, error) {
	parts := strings.Split(spec, ",")
	opts := make(map[string]string, len(parts)-1)
	for _, p := range parts[1:] {
		kv := strings.Split(p, "=")
		if len(kv) != 2 {
			return "", nil, fmt.Errorf("option %q is not key=value", p)
		}
		if _, dup := opts[kv[0]]; dup {
			return "", nil, fmt.Errorf("option %q given twice", kv[0])
		}
		opts[kv[0]] = kv[1]
	}
	return parts[0], opts, nil
}

// Redact is the fingerprint of a token logs may show, as etcd's
// redactToken: never the token itself.
func Redact(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])[:12]
}

// nop is etcd's provider for --auth-token="": no token is ever valid.
type nop struct{}

func (nop) Assign(string, string, uint64) {}
func (nop) InvalidateUser(string)         {}
func (nop) Enable()                       {}
func (nop) Disable()                      {}
func (nop) Prefix() (string, error)       { return "", nil }
func (nop) Signed() bool                  { return true }
func (nop) Sign(string, uint64) (string, error) {
	return "", ErrAuthFailed
}

func (nop) Info(context.Context, string, uint64) (string, uint64, bool) { return "", 0, false }
func (nop) Stop()                                                       {}
