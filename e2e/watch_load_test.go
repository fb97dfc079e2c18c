package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// watchLog is what one clientv3 watch saw: every event's revision, in
// order, checked as it arrives.
type watchLog struct {
	mu   sync.Mutex
	revs []int64
	err  error
	// stopKey, if set, ends follow once an event on it arrived.
	stopKey string
}

// follow records wc until it has n events or ctx ends. One put per
// revision: revisions must strictly increase.
func follow(c context.Context, wc clientv3.WatchChan, n int, wl *watchLog) {
	for r := range wc {
		wl.mu.Lock()
		if err := r.Err(); err != nil && wl.err == nil {
			wl.err = err
		}
		for _, ev := range r.Events {
			rev := ev.Kv.ModRevision
			if k := len(wl.revs); k > 0 && rev <= wl.revs[k-1] && wl.err == nil {
				wl.err = fmt.Errorf("event at revision %d after %d", rev, wl.revs[k-1])
			}
			wl.revs = append(wl.revs, rev)
			if wl.stopKey != "" && string(ev.Kv.Key) == wl.stopKey {
				n = 0
			}
		}
		done := len(wl.revs) >= n
		wl.mu.Unlock()
		if done || c.Err() != nil {
			return
		}
	}
}

// requireExactly checks that wl saw exactly the revisions of want, in order.
func requireExactly(t testing.TB, name string, wl *watchLog, want []int64) {
	t.Helper()
	wl.mu.Lock()
	defer wl.mu.Unlock()
	if wl.err != nil {
		t.Fatalf("%s: %v", name, wl.err)
	}
	if len(wl.revs) != len(want) {
		t.Fatalf("%s saw %d events, want %d", name, len(wl.revs), len(want))
	}
	for i := range want {
		if wl.revs[i] != want[i] {
			t.Fatalf("%s: event %d at revision %d, want %d", name, i, wl.revs[i], want[i])
		}
	}
}

// putMany writes n keys under prefix from clients*2 goroutines and returns
// the put revisions in order.
func putMany(t testing.TB, clis []*clientv3.Client, prefix string, n int) []int64 {
	t.Helper()
	workers := 2 * len(clis)
	revs := make([]int64, n)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			cli := clis[w%len(clis)]
			for i := w; i < n; i += workers {
				c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				r, err := cli.Put(c, fmt.Sprintf("%s%05d", prefix, i), "v")
				cancel()
				if err != nil {
					errs <- err
					return
				}
				revs[i] = r.Header.Revision
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.Sort(revs)
	return revs
}

// TestWatchManyWatchersConcurrentPuts: 10 watchers on a prefix each see
// all 5000 concurrent puts from several clients, once each, in order.
func TestWatchManyWatchersConcurrentPuts(t *testing.T) {
	const watchers, puts = 10, 5000
	s, cli := startServer(t)
	clis := []*clientv3.Client{cli, s.Client(t), s.Client(t), s.Client(t)}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := make([]*watchLog, watchers)
	var wg sync.WaitGroup
	for i := range logs {
		logs[i] = &watchLog{}
		// one stream per watcher: separate metadata makes clientv3 open one
		wctx := clientv3.WithRequireLeader(c)
		if i%2 == 1 {
			wctx = c
		}
		wc := clis[i%len(clis)].Watch(wctx, "load/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		<-wc // created
		wg.Add(1)
		go func(wl *watchLog) { defer wg.Done(); follow(c, wc, puts, wl) }(logs[i])
	}
	revs := putMany(t, clis, "load/", puts)
	wg.Wait()
	for i, wl := range logs {
		requireExactly(t, fmt.Sprintf("watcher %d", i), wl, revs)
	}
}

// TestWatchAcrossRestart: a member killed and restarted in the middle of
// a watch; clientv3 resumes from its last revision and nothing is missed
// or repeated.
func TestWatchAcrossRestart(t *testing.T) {
	s, cli := startServer(t)
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wl := &watchLog{}
	wc := cli.Watch(c, "r/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	<-wc
	done := make(chan struct{})
	go func() { defer close(done); follow(c, wc, 400, wl) }()
	before := putMany(t, []*clientv3.Client{cli}, "r/a", 200)
	s.Kill()
	s.Restart()
	after := putMany(t, []*clientv3.Client{cli}, "r/b", 200)
	select {
	case <-done:
	case <-c.Done():
		t.Fatal("watch did not see every event")
	}
	requireExactly(t, "watcher", wl, append(before, after...))
}

// TestWatchAcrossActorPanics: panics of the applier (a core restart that
// replays the WAL) and of the watch hub (which loses its watchers) during
// a watch: every event arrives once, in order.
func TestWatchAcrossActorPanics(t *testing.T) {
	s := e2etest.Start(t, e2etest.Config{Env: []string{
		"TROUPE_FAILPOINTS=applierPanic=after(300):1*panic;watchHubPanic=after(600):1*panic",
	}})
	cli := s.Client(t)
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 1500 // acknowledged puts
	var logs [3]*watchLog
	var wg sync.WaitGroup
	for i := range logs {
		logs[i] = &watchLog{stopKey: "p/end"}
		wc := cli.Watch(clientv3.WithRequireLeader(c), "p/", clientv3.WithPrefix(), clientv3.WithCreatedNotify(), clientv3.WithPrevKV())
		<-wc
		wg.Add(1)
		go func(wl *watchLog) { defer wg.Done(); follow(c, wc, 1<<30, wl) }(logs[i])
	}
	// Requests in flight while the core restarts fail with an unknown
	// outcome: each attempt writes a key of its own, and what the store
	// holds afterwards is what the watchers must have seen.
	acked := 0
	for attempt := 0; acked < n; attempt++ {
		if _, err := cli.Put(ctx(t), fmt.Sprintf("p/%05d", attempt), "v"); err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		acked++
	}
	_, err := cli.Put(ctx(t), "p/end", "v")
	must(t, err)
	got, err := cli.Get(ctx(t), "p/", clientv3.WithPrefix())
	must(t, err)
	var revs []int64
	for _, kv := range got.Kvs {
		if kv.Version != 1 {
			t.Fatalf("key %s written %d times", kv.Key, kv.Version)
		}
		revs = append(revs, kv.ModRevision)
	}
	slices.Sort(revs)
	wg.Wait()
	for i, wl := range logs {
		requireExactly(t, fmt.Sprintf("watcher %d", i), wl, revs)
	}
	if s.Kind() == e2etest.Troupe {
		for _, p := range []string{"applierPanic", "watchHubPanic"} {
			if !strings.Contains(s.Log(), "failpoint "+p) {
				t.Errorf("failpoint %s did not fire", p)
			}
		}
	}
}

// TestWatchSlowReader: a stream that does not read while thousands of
// events happen catches up, in order, once it reads.
func TestWatchSlowReader(t *testing.T) {
	_, cli := startServer(t)
	c, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(c)
	must(t, err)
	must(t, stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte("s/"), RangeEnd: []byte("s0"),
	}}}))
	first, err := stream.Recv()
	must(t, err)
	if !first.Created {
		t.Fatalf("first response %v", first)
	}
	// 2000 puts of 2 KiB: far more than gRPC's windows and the sink hold
	const n = 2000
	val := strings.Repeat("v", 2048)
	revs := make([]int64, 0, n)
	for i := 0; i < n; i++ {
		r, err := cli.Put(ctx(t), fmt.Sprintf("s/%05d", i), val)
		must(t, err)
		revs = append(revs, r.Header.Revision)
	}
	var got []int64
	for len(got) < n {
		r, err := stream.Recv()
		must(t, err)
		for _, ev := range r.Events {
			got = append(got, ev.Kv.ModRevision)
		}
	}
	requireExactly(t, "slow reader", &watchLog{revs: got}, revs)
}

// TestWatchRequireLeader: a watch stream that requires a leader ends with
// etcd's "no leader" error when its member loses the leader.
func TestWatchRequireLeader(t *testing.T) {
	cl := e2etest.StartCluster(t, e2etest.ClusterConfig{Size: 3})
	cli := cl.MemberClient(t, 0)
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wc := cli.Watch(clientv3.WithRequireLeader(c), "l", clientv3.WithCreatedNotify())
	<-wc
	must(t, cl.Stop(1))
	must(t, cl.Stop(2))
	for {
		select {
		case r, ok := <-wc:
			if !ok {
				t.Fatal("watch channel closed without an error")
			}
			if err := r.Err(); err != nil {
				requireErr(t, err, rpctypes.ErrGRPCNoLeader)
				return
			}
		case <-c.Done():
			t.Fatal("watch not canceled without a leader")
		}
	}
}

// TestWatchOnPausedMember: a member with a watch is paused (SIGSTOP)
// while the others write thousands of keys; once it runs again its watch
// delivers every event once, in order. (The snapshot install case, which
// a pause does not force, is node's TestClusterWatchAcrossSnapshotInstall.)
func TestWatchOnPausedMember(t *testing.T) {
	cl := e2etest.StartCluster(t, e2etest.ClusterConfig{Size: 3, SnapshotCount: 100})
	lead := cl.Leader(t)
	behind := (lead + 1) % 3
	wcli := cl.MemberClient(t, behind)
	c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wl := &watchLog{stopKey: "snap/end"}
	wc := wcli.Watch(c, "snap/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	<-wc
	done := make(chan struct{})
	go func() { defer close(done); follow(c, wc, 1<<30, wl) }()
	lcli := cl.MemberClient(t, lead)
	first := putMany(t, []*clientv3.Client{lcli}, "snap/a", 50)
	must(t, cl.Pause(behind))
	during := putMany(t, []*clientv3.Client{lcli, cl.MemberClient(t, lead), cl.MemberClient(t, lead)}, "snap/b", 5200)
	must(t, cl.Resume(behind))
	end, err := lcli.Put(ctx(t), "snap/end", "x")
	must(t, err)
	select {
	case <-done:
	case <-c.Done():
		t.Fatal("watch did not see every event")
	}
	want := append(append(first, during...), end.Header.Revision)
	requireExactly(t, "watcher on the member that was behind", wl, want)
}
