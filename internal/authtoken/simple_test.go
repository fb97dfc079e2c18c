package authtoken

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestSimpleTokenExpiresUnlessUsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := New("simple", Options{SimpleTTL: 10 * time.Second, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop()
		p.Enable()
		prefix, err := p.Prefix()
		if err != nil || len(prefix) != prefixLength || strings.Trim(prefix, letters) != "" {
			t.Fatalf("Prefix() = %q, %v; want %d letters", prefix, err, prefixLength)
		}
		used, idle := prefix+".7", prefix+".8"
		p.Assign(used, "alice", 3)
		p.Assign(idle, "bob", 3)
		ctx := context.Background()
		for range 3 { // used every 6 s: outlives its 10 s TTL
			time.Sleep(6 * time.Second)
			if user, rev, ok := p.Info(ctx, used, 5); !ok || user != "alice" || rev != 5 {
				t.Fatalf("Info(used) = %q, %d, %v; want alice, 5, true", user, rev, ok)
			}
		}
		if _, _, ok := p.Info(ctx, idle, 5); ok {
			t.Fatal("a token unused for 18 s with a 10 s TTL is still valid")
		}
		time.Sleep(12 * time.Second)
		if _, _, ok := p.Info(ctx, used, 5); ok {
			t.Fatal("a token unused for 12 s with a 10 s TTL is still valid")
		}
	})
}

func TestSimpleTokenInvalidateAndDisable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newSimple(0, nil, quiet())
		defer p.Stop()
		p.Assign("abc.1", "alice", 1) // disabled: not recorded, as etcd
		p.Enable()
		if _, _, ok := p.Info(t.Context(), "abc.1", 1); ok {
			t.Fatal("a token assigned while auth was disabled is valid")
		}
		p.Assign("abc.2", "alice", 1)
		p.Assign("abc.3", "bob", 1)
		p.InvalidateUser("alice")
		if _, _, ok := p.Info(t.Context(), "abc.2", 1); ok {
			t.Fatal("alice's token survived InvalidateUser")
		}
		if _, _, ok := p.Info(t.Context(), "abc.3", 1); !ok {
			t.Fatal("bob's token did not survive InvalidateUser(alice)")
		}
		p.Disable()
		p.Enable()
		if _, _, ok := p.Info(t.Context(), "abc.3", 1); ok {
			t.Fatal("a token survived Disable")
		}
	})
}

// A token whose Authenticate entry this member has not applied yet is
// valid once it is applied, and invalid when the wait fails.
func TestSimpleTokenWaitsForItsIndex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p *simple
		waited := 0
		p = newSimple(time.Minute, func(_ context.Context, index uint64) error {
			waited++
			if index != 9 {
				return errors.New("never applied")
			}
			p.Assign("xyz.9", "carol", 1) // the apply this member waited for
			return nil
		}, quiet())
		defer p.Stop()
		p.Enable()
		if user, _, ok := p.Info(t.Context(), "xyz.9", 1); !ok || user != "carol" {
			t.Fatalf("Info(xyz.9) = %q, %v; want carol, true", user, ok)
		}
		if _, _, ok := p.Info(t.Context(), "xyz.10", 1); ok {
			t.Fatal("a token whose index never applied is valid")
		}
		if waited != 2 {
			t.Fatalf("waited %d times, want 2", waited)
		}
		for _, bad := range []string{"", "abc", "abc.", "abc.x", "a.1.2", "abc.-1"} {
			if _, _, ok := p.Info(t.Context(), bad, 1); ok {
				t.Fatalf("malformed token %q is valid", bad)
			}
		}
		if waited != 2 {
			t.Fatalf("a malformed token waited for an index")
		}
	})
}

func TestNewRefusesBadSpecs(t *testing.T) {
	for _, spec := range []string{"simple,ttl", "jwt,a=b,a=c", "jwt,ttl=5m,ttl=5m", "bogus", "jwt", "jwt,sign-method=bogus", "jwt,sign-method=RS256,ttl=x", "jwt,sign-method=RS256,priv-key=/nonexistent"} {
		if _, err := New(spec, Options{Logger: quiet()}); !errors.Is(err, ErrInvalidAuthOpts) {
			t.Errorf("New(%q) = %v, want %v", spec, err, ErrInvalidAuthOpts)
		}
	}
	p, err := New("", Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Sign("root", 1); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("nop Sign = %v, want %v", err, ErrAuthFailed)
	}
}
