package mailbox

import (
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/asynkron/protoactor-go/actor"
)

func newSystem(t testing.TB) *actor.ActorSystem {
	sys := actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	})))
	t.Cleanup(sys.Shutdown)
	return sys
}

func gatedMailbox() actor.Mailbox { return Gated(actor.Unbounded()()) }

// recordingProps is an actor that sends what it receives, lifecycle
// messages included, to got.
func recordingProps(got chan<- any, opts ...actor.PropsOption) *actor.Props {
	return actor.PropsFromFunc(func(ctx actor.Context) { got <- ctx.Message() }, opts...)
}

// TestProtoactorSpawnPublishesBeforeHandlers pins why Gated exists: with
// protoactor's own mailbox, a message posted to a name between the
// registry's Add and RegisterHandlers (WithOnInit runs there) schedules a
// mailbox that has no dispatcher yet. If this test fails, protoactor's
// spawn changed and the gate may no longer be needed.
func TestProtoactorSpawnPublishesBeforeHandlers(t *testing.T) {
	sys := newSystem(t)
	pid := actor.NewPID(sys.Address(), "plain")
	props := recordingProps(make(chan any, 8), actor.WithOnInit(func(actor.Context) {
		sys.Root.Send(pid, 1)
	}))
	r := recovered(func() { _, _ = sys.Root.SpawnNamed(props, "plain") })
	if _, ok := r.(runtime.Error); !ok {
		t.Fatalf("spawn with a post in the window: recovered %v, want a nil dereference", r)
	}
}

func recovered(f func()) (r any) {
	defer func() { r = recover() }()
	f()
	return nil
}

// TestPostsInTheWindowComeAfterStarted: messages posted to the name while
// the spawn is between the registry's Add and Started, from the spawning
// goroutine and from another, reach the actor after Started and in order;
// so does a stop.
func TestPostsInTheWindowComeAfterStarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem(t)
		pid := actor.NewPID(sys.Address(), "gated")
		got := make(chan any, 16)
		props := recordingProps(got, actor.WithMailbox(gatedMailbox), actor.WithOnInit(func(actor.Context) {
			done := make(chan struct{})
			go func() {
				sys.Root.Send(pid, 1)
				sys.Root.Send(pid, 2)
				close(done)
			}()
			<-done
			sys.Root.Send(pid, 3)
		}))
		if _, err := sys.Root.SpawnNamed(props, "gated"); err != nil {
			t.Fatal(err)
		}
		sys.Root.Send(pid, 4)
		want := []string{"*actor.Started", "1", "2", "3", "4"}
		for i, w := range want {
			if m := describe(<-got); m != w {
				t.Fatalf("message %d is %s, want %s (want all of %v)", i, m, w, want)
			}
		}
	})
}

// TestStopInTheWindowComesAfterStarted: a system message held by the gate
// is handled after Started, not before.
func TestStopInTheWindowComesAfterStarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := newSystem(t)
		pid := actor.NewPID(sys.Address(), "stopped")
		got := make(chan any, 16)
		props := recordingProps(got, actor.WithMailbox(gatedMailbox), actor.WithOnInit(func(actor.Context) {
			sys.Root.Stop(pid)
		}))
		if _, err := sys.Root.SpawnNamed(props, "stopped"); err != nil {
			t.Fatal(err)
		}
		want := []string{"*actor.Started", "*actor.Stopping", "*actor.Stopped"}
		for i, w := range want {
			if m := describe(<-got); m != w {
				t.Fatalf("message %d is %s, want %s", i, m, w)
			}
		}
	})
}

type seq struct{ sender, n int }

func describe(m any) string {
	switch m := m.(type) {
	case int:
		return fmt.Sprint(m)
	default:
		return fmt.Sprintf("%T", m)
	}
}

// TestSpawnWhileSendersPostByName is the race as it happens: senders on
// other goroutines post to the name in tight loops from inside the spawn's
// window on, while the spawn registers the handlers and opens the gate.
// The actor must see Started first and every sender's messages, each
// sender's in order. Run it under -race: with protoactor's own mailbox it
// reports the race on the dispatcher or crashes on its nil dereference.
func TestSpawnWhileSendersPostByName(t *testing.T) {
	const (
		rounds  = 20
		senders = 4
		perSend = 500
	)
	for round := range rounds {
		synctest.Test(t, func(t *testing.T) {
			sys := newSystem(t)
			name := fmt.Sprintf("racer-%d", round)
			pid := actor.NewPID(sys.Address(), name)
			window := make(chan struct{})
			var first sync.WaitGroup
			first.Add(senders)
			for s := range senders {
				go func() {
					<-window
					for n := range perSend {
						sys.Root.Send(pid, seq{sender: s, n: n})
						if n == 0 {
							first.Done()
						}
					}
				}()
			}
			done := make(chan error, 1)
			props := actor.PropsFromFunc(orderChecker(senders*perSend, done), actor.WithMailbox(gatedMailbox),
				actor.WithOnInit(func(actor.Context) {
					close(window)
					first.Wait() // every sender has posted in the window
				}))
			if _, err := sys.Root.SpawnNamed(props, name); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// orderChecker is an actor that reports to done once it has seen total
// messages after Started, or the first message out of order.
func orderChecker(total int, done chan<- error) actor.ReceiveFunc {
	started := false
	next := map[int]int{}
	seen := 0
	return func(ctx actor.Context) {
		if seen == total {
			return
		}
		switch m := ctx.Message().(type) {
		case *actor.Started:
			started = true
		case seq:
			switch {
			case !started:
				done <- fmt.Errorf("%v handled before Started", m)
				seen = total
			case m.n != next[m.sender]:
				done <- fmt.Errorf("sender %d: got %d, want %d", m.sender, m.n, next[m.sender])
				seen = total
			default:
				next[m.sender]++
				if seen++; seen == total {
					done <- nil
				}
			}
		}
	}
}

// nopInvoker counts what the mailbox hands it.
type nopInvoker struct{ n int }

func (i *nopInvoker) InvokeSystemMessage(any) { i.n++ }
func (i *nopInvoker) InvokeUserMessage(any)   { i.n++ }
func (*nopInvoker) EscalateFailure(r, _ any)  { panic(r) }

// BenchmarkPostAndProcess is the gate's cost once open: one user message
// posted and processed inline (a synchronous dispatcher), against
// protoactor's plain unbounded mailbox.
func BenchmarkPostAndProcess(b *testing.B) {
	for _, tc := range []struct {
		name string
		mb   func() actor.Mailbox
	}{
		{"plain", actor.Unbounded()},
		{"gated", gatedMailbox},
	} {
		b.Run(tc.name, func(b *testing.B) {
			mb := tc.mb()
			inv := &nopInvoker{}
			mb.RegisterHandlers(inv, actor.NewSynchronizedDispatcher(300))
			mb.PostSystemMessage(&actor.Started{})
			mb.Start()
			msg := any(seq{})
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				mb.PostUserMessage(msg)
			}
			b.StopTimer()
			if inv.n != b.N+1 {
				b.Fatalf("processed %d, want %d", inv.n, b.N+1)
			}
		})
	}
}
