package metrics

import (
	"log/slog"
	"testing"
	"testing/synctest"

	"github.com/asynkron/protoactor-go/actor"
)

type ping struct{}
type boom struct{}

// TestMailboxMetrics: processed messages are counted, waiting ones show
// as the length, a panic's lost message does not stay in the length, and
// a stopped actor's count stays in the total.
// It runs in a synctest bubble: synctest.Wait is "the actor did all it
// could", so the checks need no polling.
func TestMailboxMetrics(t *testing.T) {
	synctest.Test(t, testMailboxMetrics)
}

func testMailboxMetrics(t *testing.T) {
	sys := actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	})))
	defer sys.Shutdown()
	k := kindOf("test-mailbox")
	release := make(chan struct{})
	handled := make(chan struct{}, 100)
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case ping:
			<-release
			handled <- struct{}{}
		case boom:
			panic("boom")
		}
	}, Mailbox("test-mailbox")))
	for range 5 {
		sys.Root.Send(pid, ping{})
	}
	// The first ping blocks the actor: it counts until handled, four wait.
	waitFor(t, "5 in the mailbox", func() bool { l, _ := k.totals(); return l == 5 })
	close(release)
	for range 5 {
		<-handled
	}
	waitFor(t, "empty mailbox", func() bool { l, p := k.totals(); return l == 0 && p >= 6 }) // Started + 5 pings
	sys.Root.Send(pid, boom{})
	sys.Root.Send(pid, ping{})
	<-handled // restarted, and the ping after the panic is handled
	waitFor(t, "length back to 0 after the panic", func() bool { l, _ := k.totals(); return l == 0 })
	_, before := k.totals()
	if err := sys.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "mailbox retired", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return len(k.live) == 0
	})
	if _, after := k.totals(); after < before {
		t.Fatalf("processed fell from %d to %d after stop", before, after)
	}
}

// waitFor checks ok once the actors are idle.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	synctest.Wait()
	if !ok() {
		t.Fatalf("never: %s", what)
	}
}

// BenchmarkMailbox is the cost of the actor metrics per message: one
// sender, one actor, with protoactor's default mailbox and with Mailbox.
func BenchmarkMailbox(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts []actor.PropsOption
	}{
		{"default", nil},
		{"counted", []actor.PropsOption{Mailbox("bench")}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			sys := actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
				return slog.New(slog.DiscardHandler)
			})))
			defer sys.Shutdown()
			done := make(chan struct{})
			n := 0
			pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
				if _, ok := ctx.Message().(ping); ok {
					if n++; n == b.N {
						close(done)
					}
				}
			}, tc.opts...))
			b.ResetTimer()
			for range b.N {
				sys.Root.Send(pid, ping{})
			}
			<-done
		})
	}
}
