package etcdapi

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"golang.org/x/crypto/bcrypt"

	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/raftclient"
)

// bcrypt work runs at most Hashers at a time; a waiter gives up with its
// context's error, or with etcd's "request timed out" after the request
// timeout, never holding a slot.
func TestAuthBoundsBcrypt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := raftclient.New(raftclient.Config{
			View: memberview.New(memberview.Member{ID: 1}, 1), Waits: raftclient.NewWaits(), RequestTimeout: 5 * time.Second,
		})
		s := NewAuth(AuthConfig{KV: NewKV(KVConfig{Raft: rc}), Hashers: 1, BcryptCost: 99})
		if s.cfg.BcryptCost != bcrypt.DefaultCost {
			t.Fatalf("cost 99 kept as %d, want etcd's fallback %d", s.cfg.BcryptCost, bcrypt.DefaultCost)
		}
		release := make(chan struct{})
		running := make(chan struct{})
		go func() {
			_ = s.bounded(context.Background(), func() { close(running); <-release })
		}()
		<-running

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := s.bounded(ctx, func() { t.Error("ran past the bound") })
		cancel()
		if !errors.Is(err, rpctypes.ErrGRPCTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("waiter whose context ended: %v", err)
		}
		start := time.Now()
		err = s.bounded(context.Background(), func() { t.Error("ran past the bound") })
		if !errors.Is(err, rpctypes.ErrGRPCTimeout) || time.Since(start) != 5*time.Second {
			t.Errorf("waiter without deadline: %v after %s, want %v after the 5s request timeout", err, time.Since(start), rpctypes.ErrGRPCTimeout)
		}

		close(release)
		ran := false
		if err := s.bounded(context.Background(), func() { ran = true }); err != nil || !ran {
			t.Errorf("after the slot was freed: ran %v, %v", ran, err)
		}
	})
}
