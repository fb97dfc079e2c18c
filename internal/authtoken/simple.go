package authtoken

import (
	"context"
	"crypto/rand"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	letters      = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	prefixLength = 16
	// keeperResolution is how often expired tokens are dropped, as etcd's
	// simpleTokenTTLResolution: a token lives at most this long past its TTL.
	keeperResolution = time.Second
)

// simple is etcd's simple token provider: "<16 letters>.<raft index>"
// tokens, valid on the members that applied their Authenticate entry,
// alive while used within the TTL.
type simple struct {
	ttl         time.Duration
	waitApplied func(ctx context.Context, index uint64) error
	logger      *slog.Logger

	mu      sync.Mutex
	tokens  map[string]simpleToken // only while enabled
	keeper  *keeper                // running while enabled; nil otherwise
	stopped bool                   // Stop was called: Enable starts nothing
}

type simpleToken struct {
	user    string
	expires time.Time
}

// keeper is the goroutine that drops expired tokens; stop and done are
// its owner's handle.
type keeper struct {
	stop, done chan struct{}
}

func newSimple(ttl time.Duration, waitApplied func(context.Context, uint64) error, logger *slog.Logger) *simple {
	if ttl <= 0 {
		ttl = DefaultSimpleTTL
	}
	return &simple{ttl: ttl, waitApplied: waitApplied, logger: logger, tokens: map[string]simpleToken{}}
}

func (s *simple) Prefix() (string, error) {
	b := make([]byte, prefixLength)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	// The prefix is the token's secret (the index is guessable): 16
	// letters from crypto/rand, about 91 bits. 256 is not a multiple of
	// 52, so the first 48 letters are slightly likelier; that costs
	// under 0.02 bits a letter.
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b), nil
}

func (s *simple) Signed() bool { return false }

func (s *simple) Sign(string, uint64) (string, error) {
	return "", ErrAuthFailed // the token was made at the apply
}

func (s *simple) Assign(token, user string, _ uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keeper == nil {
		return // auth disabled: etcd assigns nothing either
	}
	if _, dup := s.tokens[token]; dup {
		// etcd panics here; an index is applied once, so this is a replay
		// of the same entry and the token stays the user's.
		s.logger.Error("simple token assigned twice", "user", user, "token-fingerprint", Redact(token))
	}
	s.tokens[token] = simpleToken{user: user, expires: time.Now().Add(s.ttl)}
}

func (s *simple) InvalidateUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, st := range s.tokens {
		if st.user == user {
			delete(s.tokens, t)
		}
	}
}

func (s *simple) Enable() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keeper != nil || s.stopped {
		return
	}
	k := &keeper{stop: make(chan struct{}), done: make(chan struct{})}
	s.keeper = k
	go s.keep(k)
}

func (s *simple) Disable() {
	s.mu.Lock()
	k := s.keeper
	s.keeper = nil
	clear(s.tokens)
	s.mu.Unlock()
	if k != nil {
		close(k.stop)
		<-k.done
	}
}

func (s *simple) Stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.Disable()
}

// keep drops expired tokens every keeperResolution until k is stopped.
func (s *simple) keep(k *keeper) {
	defer close(k.done)
	tick := time.NewTicker(keeperResolution)
	defer tick.Stop()
	for {
		select {
		case <-k.stop:
			return
		case now := <-tick.C:
			s.expire(now)
		}
	}
}

func (s *simple) expire(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, st := range s.tokens {
		if now.After(st.expires) {
			s.logger.Debug("deleted a simple token", "user", st.user, "token-fingerprint", Redact(t))
			delete(s.tokens, t)
		}
	}
}

func (s *simple) Info(ctx context.Context, token string, revision uint64) (string, uint64, bool) {
	index, ok := simpleIndex(token)
	if !ok {
		return "", 0, false
	}
	if user, ok := s.use(token); ok {
		return user, revision, true
	}
	// The Authenticate entry may be committed but not applied here yet,
	// as etcd's indexWaiter allows for.
	if s.waitApplied == nil || s.waitApplied(ctx, index) != nil {
		return "", 0, false
	}
	user, ok := s.use(token)
	return user, revision, ok
}

// use returns token's user and restarts its TTL.
func (s *simple) use(token string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.tokens[token]
	if !ok {
		return "", false
	}
	st.expires = time.Now().Add(s.ttl)
	s.tokens[token] = st
	return st.user, true
}

// simpleIndex is the raft index a simple token names; ok is false when
// token is not of the form "<prefix>.<index>".
func simpleIndex(token string) (uint64, bool) {
	prefix, idx, found := strings.Cut(token, ".")
	if !found || strings.Contains(idx, ".") || prefix == "" && idx == "" {
		return 0, false
	}
	index, err := strconv.ParseUint(idx, 10, 64)
	return index, err == nil
}
