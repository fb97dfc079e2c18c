package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"

	"github.com/troupedb/troupe/actors/actorapi"
	"github.com/troupedb/troupe/client/actorclient"
	"github.com/troupedb/troupe/e2e/e2etest"
)

// actorSystem starts an actor system with remote, as a subscriber program
// would; stop ends it (its endpoint going away for the member).
func actorSystem(t *testing.T) (sys *actor.ActorSystem, stop func()) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	r := remote.NewRemote(system, remote.Configure("127.0.0.1", 0,
		remote.WithDialOptions(actorapi.DialOptions(actorapi.DefaultMaxMessageBytes)...)))
	r.Start()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			r.Shutdown(true)
			system.Shutdown()
		}
	}
	t.Cleanup(stop)
	return system, stop
}

// watcherGauge reads etcd_debugging_mvcc_watcher_total from /metrics.
func watcherGauge(t *testing.T, s *e2etest.Server) string {
	t.Helper()
	resp, err := http.Get(s.Endpoint() + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "etcd_debugging_mvcc_watcher_total ") {
			return strings.TrimPrefix(line, "etcd_debugging_mvcc_watcher_total ")
		}
	}
	t.Fatal("no etcd_debugging_mvcc_watcher_total in /metrics")
	return ""
}

func waitGauge(t *testing.T, s *e2etest.Server, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := watcherGauge(t, s)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("watcher_total %s, want %s", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestActorAPIWatch: an actor subscribes to watches over protoactor
// remote and gets what a gRPC watch gets: created with the id, history
// from the start revision with prev_kv, live events in order, the
// compaction cancel; its watches go away when it closes them or when its
// actor system goes away.
func TestActorAPIWatch(t *testing.T) {
	srv := e2etest.Start(t, e2etest.Config{Kind: e2etest.Troupe})
	cli := srv.Client(t)
	system, stopSystem := actorSystem(t)
	kv := actorclient.New(system, srv.ActorAddress(), actorclient.WithTimeout(10*time.Second))
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	first := wput(t, cli, "aw/0", "a")
	wput(t, cli, "aw/0", "b")
	w, err := kv.Watch(c, &pb.WatchCreateRequest{Key: []byte("aw/"), RangeEnd: []byte("aw0"), StartRevision: first, PrevKv: true})
	must(t, err)
	if w.ID != 0 || !w.Created.Created || w.Created.Header.Revision != first+1 {
		t.Fatalf("created %v id %d", w.Created, w.ID)
	}
	// a second watch on the same key, on its own subscriber
	w2, err := kv.Watch(c, &pb.WatchCreateRequest{Key: []byte("aw/0"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}})
	must(t, err)
	const n = 300
	want := []string{fmt.Sprintf("PUT aw/0=a@%d/%d/1", first, first), fmt.Sprintf("PUT aw/0=b@%d/%d/2 prev=a@%d", first+1, first, first)}
	for i := 0; i < n; i++ {
		wput(t, cli, fmt.Sprintf("aw/%d", i%7), fmt.Sprint(i))
	}
	var got []string
	var last int64
	for len(got) < n+2 {
		select {
		case r, ok := <-w.C:
			if !ok {
				t.Fatalf("watch ended: %v", w.Err())
			}
			for _, ev := range r.Events {
				if ev.Kv.ModRevision <= last {
					t.Fatalf("event at %d after %d", ev.Kv.ModRevision, last)
				}
				last = ev.Kv.ModRevision
				got = append(got, eventString(ev))
			}
		case <-c.Done():
			t.Fatalf("got %d of %d events", len(got), n+2)
		}
	}
	if got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("history %q, want %q", got[:2], want)
	}
	if last != first+1+n {
		t.Fatalf("last event at %d, want %d", last, first+1+n)
	}
	waitGauge(t, srv, "2")
	w.Close()
	waitGauge(t, srv, "1")

	// compaction cancel, as etcd's
	_, err = cli.Compact(ctx(t), last)
	must(t, err)
	w3, err := kv.Watch(c, &pb.WatchCreateRequest{Key: []byte("aw/0"), StartRevision: first})
	must(t, err)
	select {
	case r := <-w3.C:
		if !r.Canceled || r.CompactRevision != last {
			t.Fatalf("compacted watch got %v", r)
		}
	case <-c.Done():
		t.Fatal("no compaction cancel")
	}
	// the subscriber's actor system goes away: the member drops its watches
	waitGauge(t, srv, "1")
	start := time.Now()
	stopSystem()
	waitGauge(t, srv, "0")
	t.Logf("watches of a stopped actor system removed after %v", time.Since(start).Round(time.Millisecond))
	_ = w2 // its subscriber's system is gone: nothing to close

	// the member stopping ends a watch with Unavailable: etcd's "server
	// stopped" when it arrives before the remote closes, else the client
	// sees the endpoint go away
	system2, _ := actorSystem(t)
	w4, err := actorclient.New(system2, srv.ActorAddress()).Watch(c, &pb.WatchCreateRequest{Key: []byte("aw/0")})
	must(t, err)
	start = time.Now()
	srv.Stop()
	t.Logf("member stopped in %v", time.Since(start).Round(time.Millisecond))
	for {
		select {
		case _, ok := <-w4.C:
			if !ok {
				if code, _ := codeMsg(w4.Err()); code != codes.Unavailable {
					t.Fatalf("watch ended with %v, want Unavailable", w4.Err())
				}
				return
			}
		case <-c.Done():
			t.Fatal("watch still open after the member stopped")
		}
	}
}
