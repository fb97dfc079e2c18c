package e2e

// The Kubernetes contract: what the kube-apiserver asks of etcd, through
// etcd's own client package for it (go.etcd.io/etcd/client/v3/kubernetes)
// where that package covers it, and through clientv3 where the apiserver
// goes around it (compaction, watch).

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/kubernetes"
	"go.uber.org/zap"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// kubeClient returns etcd's Kubernetes client for s, closed at cleanup.
func kubeClient(t *testing.T, s *e2etest.Server) *kubernetes.Client {
	t.Helper()
	kc, err := kubernetes.New(clientv3.Config{
		Endpoints:   []string{s.Endpoint()},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kc.Close() })
	return kc
}

func TestKubernetesGet(t *testing.T) {
	s, cli := startServer(t)
	kc := kubeClient(t, s)

	absent, err := kc.Kubernetes.Get(ctx(t), "/registry/pods/default/a", kubernetes.GetOptions{})
	must(t, err)
	if absent.KV != nil || absent.Revision != 1 {
		t.Fatalf("get of an absent key: %v at revision %d, want nothing at 1", absent.KV, absent.Revision)
	}
	m := newModel()
	applyPuts(t, cli, m, "/registry/pods/default/a", "v1", "/registry/pods/default/a", "v2", "/registry/pods/default/b", "v1")

	got, err := kc.Kubernetes.Get(ctx(t), "/registry/pods/default/a", kubernetes.GetOptions{})
	must(t, err)
	requireKVs(t, []*mvccpb.KeyValue{got.KV}, m.now("/registry/pods/default/a"))
	if got.Revision != m.rev {
		t.Fatalf("get revision %d, want %d", got.Revision, m.rev)
	}
	// at a past revision: the value then, the header at the current one
	old, err := kc.Kubernetes.Get(ctx(t), "/registry/pods/default/a", kubernetes.GetOptions{Revision: 2})
	must(t, err)
	requireKVs(t, []*mvccpb.KeyValue{old.KV}, m.at(2, "/registry/pods/default/a"))
	if old.Revision != m.rev {
		t.Fatalf("get at revision 2 answered at %d, want the current %d", old.Revision, m.rev)
	}
	// the key did not exist yet at revision 1
	before, err := kc.Kubernetes.Get(ctx(t), "/registry/pods/default/b", kubernetes.GetOptions{Revision: 2})
	must(t, err)
	if before.KV != nil {
		t.Fatalf("get of b at revision 2: %v, want nothing", toKV(before.KV))
	}

	_, err = cli.Compact(ctx(t), 3)
	must(t, err)
	_, err = kc.Kubernetes.Get(ctx(t), "/registry/pods/default/a", kubernetes.GetOptions{Revision: 2})
	requireErr(t, err, rpctypes.ErrGRPCCompacted)
	_, err = kc.Kubernetes.Get(ctx(t), "/registry/pods/default/a", kubernetes.GetOptions{Revision: m.rev + 1})
	requireErr(t, err, rpctypes.ErrGRPCFutureRev)
}

// TestKubernetesListPagination lists a prefix page by page as the
// apiserver does: the first page fixes the revision, later pages read at
// it from the last key + "\x00", while writers change the prefix.
func TestKubernetesListPagination(t *testing.T) {
	s, cli := startServer(t)
	kc := kubeClient(t, s)
	const prefix = "/registry/pods/"
	m := newModel()
	var keys []string
	for i := range 10 {
		k := fmt.Sprintf("%sns/p%02d", prefix, i)
		keys = append(keys, k)
		applyPuts(t, cli, m, k, "v")
	}
	// neighbours on both sides of the prefix's range
	applyPuts(t, cli, m, "/registry/pod", "x", "/registry/pods0", "x", "/registry/services/s", "x")

	all, err := kc.Kubernetes.List(ctx(t), prefix, kubernetes.ListOptions{})
	must(t, err)
	requireKVs(t, all.Kvs, m.now(keys...))
	if all.Count != 10 || all.Revision != m.rev {
		t.Fatalf("full list: count %d at revision %d, want 10 at %d", all.Count, all.Revision, m.rev)
	}
	n, err := kc.Kubernetes.Count(ctx(t), prefix, kubernetes.CountOptions{})
	must(t, err)
	if n != 10 {
		t.Fatalf("count %d, want 10", n)
	}

	pinned := m.rev
	var listed []*mvccpb.KeyValue
	opts := kubernetes.ListOptions{Limit: 3}
	for page := 0; ; page++ {
		if page > 10 {
			t.Fatal("pagination does not end")
		}
		resp, err := kc.Kubernetes.List(ctx(t), prefix, opts)
		must(t, err)
		if page == 0 {
			pinned = resp.Revision
			// writes after the first page must not show in later ones
			applyPuts(t, cli, m, keys[9], "changed", prefix+"ns/p05x", "new")
			_, err := cli.Delete(ctx(t), keys[8])
			must(t, err)
			m.del(keys[8])
		}
		// Count is every key from the continue key to the end of the
		// prefix: the apiserver's remaining-items count is Count-len(Kvs).
		if want := int64(len(keys) - len(listed)); resp.Count != want {
			t.Fatalf("page %d: count %d, want %d", page, resp.Count, want)
		}
		if page > 0 && resp.Revision != m.rev {
			t.Fatalf("page %d at revision %d: header revision %d, want the current %d", page, pinned, resp.Revision, m.rev)
		}
		listed = append(listed, resp.Kvs...)
		if int64(len(resp.Kvs)) == resp.Count {
			break
		}
		if len(resp.Kvs) != 3 {
			t.Fatalf("page %d: %d kvs with more to come, want the limit 3", page, len(resp.Kvs))
		}
		opts = kubernetes.ListOptions{Revision: pinned, Limit: 3, Continue: string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"}
	}
	requireKVs(t, listed, m.at(pinned, keys...))

	now, err := kc.Kubernetes.List(ctx(t), prefix, kubernetes.ListOptions{})
	must(t, err)
	if now.Count != 10 || string(now.Kvs[6].Key) != prefix+"ns/p05x" {
		t.Fatalf("list after the writes: %v", toKVs(now.Kvs))
	}
	_, err = cli.Compact(ctx(t), m.rev)
	must(t, err)
	_, err = kc.Kubernetes.List(ctx(t), prefix, kubernetes.ListOptions{Revision: pinned, Limit: 3, Continue: keys[2] + "\x00"})
	requireErr(t, err, rpctypes.ErrGRPCCompacted)
}

func TestKubernetesOptimisticPut(t *testing.T) {
	s, _ := startServer(t)
	kc := kubeClient(t, s)
	k := kc.Kubernetes
	const key = "/registry/configmaps/default/c"

	created, err := k.OptimisticPut(ctx(t), key, []byte("v1"), 0, kubernetes.PutOptions{GetOnFailure: true})
	must(t, err)
	if !created.Succeeded || created.Revision != 2 || created.KV != nil {
		t.Fatalf("create: %+v, want success at revision 2", created)
	}
	// create again: the key exists, the failure carries it
	again, err := k.OptimisticPut(ctx(t), key, []byte("v1bis"), 0, kubernetes.PutOptions{GetOnFailure: true})
	must(t, err)
	want := kv{Key: key, Value: "v1", Create: 2, Mod: 2, Version: 1}
	if again.Succeeded || again.Revision != 2 || toKV(again.KV) != want {
		t.Fatalf("second create: succeeded=%v rev=%d kv=%v, want a failure at 2 with %v", again.Succeeded, again.Revision, toKV(again.KV), want)
	}
	updated, err := k.OptimisticPut(ctx(t), key, []byte("v2"), 2, kubernetes.PutOptions{})
	must(t, err)
	if !updated.Succeeded || updated.Revision != 3 {
		t.Fatalf("update at 2: %+v, want success at 3", updated)
	}
	stale, err := k.OptimisticPut(ctx(t), key, []byte("v3"), 2, kubernetes.PutOptions{GetOnFailure: true})
	must(t, err)
	want = kv{Key: key, Value: "v2", Create: 2, Mod: 3, Version: 2}
	if stale.Succeeded || stale.Revision != 3 || toKV(stale.KV) != want {
		t.Fatalf("stale update: succeeded=%v rev=%d kv=%v, want a failure at 3 with %v", stale.Succeeded, stale.Revision, toKV(stale.KV), want)
	}
	quiet, err := k.OptimisticPut(ctx(t), key, []byte("v3"), 2, kubernetes.PutOptions{})
	must(t, err)
	if quiet.Succeeded || quiet.KV != nil {
		t.Fatalf("stale update without GetOnFailure: %+v", quiet)
	}

	del, err := k.OptimisticDelete(ctx(t), key, 2, kubernetes.DeleteOptions{GetOnFailure: true})
	must(t, err)
	if del.Succeeded || del.Revision != 3 || toKV(del.KV) != want {
		t.Fatalf("stale delete: succeeded=%v rev=%d kv=%v, want a failure at 3 with %v", del.Succeeded, del.Revision, toKV(del.KV), want)
	}
	del, err = k.OptimisticDelete(ctx(t), key, 3, kubernetes.DeleteOptions{GetOnFailure: true})
	must(t, err)
	if !del.Succeeded || del.Revision != 4 || del.KV != nil {
		t.Fatalf("delete at 3: %+v, want success at 4", del)
	}
	got, err := k.Get(ctx(t), key, kubernetes.GetOptions{})
	must(t, err)
	if got.KV != nil || got.Revision != 4 {
		t.Fatalf("get after delete: %v at %d", got.KV, got.Revision)
	}
	// an absent key has mod revision 0: the delete "succeeds" and changes
	// nothing, not even the revision
	del, err = k.OptimisticDelete(ctx(t), key, 0, kubernetes.DeleteOptions{GetOnFailure: true})
	must(t, err)
	if !del.Succeeded || del.Revision != 4 {
		t.Fatalf("delete of an absent key at 0: %+v, want success at 4", del)
	}
	// and a create after the delete starts a new generation
	created, err = k.OptimisticPut(ctx(t), key, []byte("v4"), 0, kubernetes.PutOptions{})
	must(t, err)
	got, err = k.Get(ctx(t), key, kubernetes.GetOptions{})
	must(t, err)
	if !created.Succeeded || toKV(got.KV) != (kv{Key: key, Value: "v4", Create: 5, Mod: 5, Version: 1}) {
		t.Fatalf("re-create: %+v, then %v", created, toKV(got.KV))
	}
}

// compactRevKey is the key the kube-apiservers of a cluster agree on
// compactions through.
const compactRevKey = "compact_rev_key"

// kubeCompact is the kube-apiserver's compaction step
// (k8s.io/apiserver/pkg/storage/etcd3/compact.go): if compact_rev_key's
// version is still t (no other apiserver compacted since this one last
// looked), record rev in it and compact to rev; else learn the current
// version. It returns the new version and the revision to compact to next
// interval (the header revision now).
func kubeCompact(c context.Context, cli *clientv3.Client, t, rev int64) (int64, int64, error) {
	resp, err := cli.Txn(c).If(
		clientv3.Compare(clientv3.Version(compactRevKey), "=", t),
	).Then(
		clientv3.OpPut(compactRevKey, strconv.FormatInt(rev, 10)), // bumps the version
	).Else(
		clientv3.OpGet(compactRevKey),
	).Commit()
	if err != nil {
		return t, rev, err
	}
	curRev := resp.Header.Revision
	if !resp.Succeeded {
		return resp.Responses[0].GetResponseRange().Kvs[0].Version, curRev, nil
	}
	if rev == 0 { // bootstrap: nothing to compact yet
		return t + 1, curRev, nil
	}
	if _, err := cli.Compact(c, rev); err != nil {
		return t + 1, curRev, err
	}
	return t + 1, curRev, nil
}

// TestKubernetesCompaction runs two apiservers' compactors against each
// other: each interval only one of them compacts, to the revision it saw
// an interval ago, and the other learns the new version.
func TestKubernetesCompaction(t *testing.T) {
	_, cli := startServer(t)
	type compactor struct{ t, rev int64 }
	a, b := compactor{}, compactor{}
	step := func(c *compactor) {
		t.Helper()
		var err error
		c.t, c.rev, err = kubeCompact(ctx(t), cli, c.t, c.rev)
		must(t, err)
	}
	compacted := func(rev int64) bool {
		_, err := cli.Get(ctx(t), "/registry/x", clientv3.WithRev(rev))
		return err != nil
	}

	step(&a) // bootstrap: a records revision 0, compacts nothing
	if a.t != 1 || a.rev != 2 {
		t.Fatalf("a after bootstrap: %+v, want version 1 at revision 2", a)
	}
	step(&b) // b lost the race: learns version 1
	if b.t != 1 || b.rev != 2 {
		t.Fatalf("b after losing: %+v, want version 1 at revision 2", b)
	}
	for i := range 5 {
		_, err := cli.Put(ctx(t), "/registry/x", fmt.Sprint(i))
		must(t, err)
	}
	// interval 2: a wins again and compacts to what it saw in interval 1
	step(&a)
	if a.t != 2 || a.rev != 8 || !compacted(1) || compacted(2) {
		t.Fatalf("a in interval 2: %+v; want version 2 at revision 8, compacted to 2", a)
	}
	step(&b) // b's version 1 is stale: no compaction, learns 2
	if b.t != 2 || b.rev != 8 || compacted(2) {
		t.Fatalf("b in interval 2: %+v; want version 2 at 8 and no compaction", b)
	}
	got, err := cli.Get(ctx(t), compactRevKey)
	must(t, err)
	if string(got.Kvs[0].Value) != "2" || got.Kvs[0].Version != 2 {
		t.Fatalf("%s: %v", compactRevKey, toKV(got.Kvs[0]))
	}
	// interval 3: b is first now and compacts to 8
	step(&b)
	if b.t != 3 || b.rev != 9 || !compacted(7) || compacted(8) {
		t.Fatalf("b in interval 3: %+v; want version 3 at 9, compacted to 8", b)
	}
	_, err = cli.Compact(ctx(t), 8)
	requireErr(t, err, rpctypes.ErrGRPCCompacted)
}

// nextWatch receives one response from wch within a bound.
func nextWatch(t *testing.T, wch clientv3.WatchChan) clientv3.WatchResponse {
	t.Helper()
	select {
	case wr, ok := <-wch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return wr
	case <-time.After(10 * time.Second):
		t.Fatal("no watch response in 10s")
	}
	panic("unreachable")
}

// TestKubernetesWatch is the apiserver's watch: a prefix from the list's
// revision + 1 with previous values, and RequestProgress answered with the
// current revision on the same stream.
func TestKubernetesWatch(t *testing.T) {
	_, cli := startServer(t)
	const prefix = "/registry/leases/"
	for i := range 3 {
		_, err := cli.Put(ctx(t), fmt.Sprintf("%sl%d", prefix, i), "v0")
		must(t, err)
	}
	list, err := cli.Get(ctx(t), prefix, clientv3.WithPrefix())
	must(t, err)
	_, err = cli.Put(ctx(t), prefix+"l0", "v1") // before the watch starts
	must(t, err)
	_, err = cli.Delete(ctx(t), prefix+"l1")
	must(t, err)

	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wch := cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(list.Header.Revision+1),
		clientv3.WithPrevKV(), clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	if wr := nextWatch(t, wch); !wr.Created {
		t.Fatalf("first response %+v, want created", wr)
	}
	var evs []*clientv3.Event
	for len(evs) < 2 {
		wr := nextWatch(t, wch)
		must(t, wr.Err())
		evs = append(evs, wr.Events...)
	}
	put, del := evs[0], evs[1]
	if put.Type != mvccpb.PUT || toKV(put.Kv) != (kv{Key: prefix + "l0", Value: "v1", Create: 2, Mod: 5, Version: 2}) ||
		toKV(put.PrevKv) != (kv{Key: prefix + "l0", Value: "v0", Create: 2, Mod: 2, Version: 1}) {
		t.Fatalf("first event: %v %v prev %v", put.Type, toKV(put.Kv), toKV(put.PrevKv))
	}
	if del.Type != mvccpb.DELETE || toKV(del.Kv) != (kv{Key: prefix + "l1", Mod: 6}) ||
		toKV(del.PrevKv) != (kv{Key: prefix + "l1", Value: "v0", Create: 3, Mod: 3, Version: 1}) {
		t.Fatalf("second event: %v %v prev %v", del.Type, toKV(del.Kv), toKV(del.PrevKv))
	}

	// writes outside the prefix move the revision without events for us
	for i := range 3 {
		_, err := cli.Put(ctx(t), fmt.Sprintf("/registry/other/%d", i), "v")
		must(t, err)
	}
	must(t, cli.RequestProgress(wctx))
	wr := nextWatch(t, wch)
	if !wr.IsProgressNotify() || wr.Header.Revision != 9 {
		t.Fatalf("after RequestProgress: %+v (progress=%v), want a progress notify at revision 9", wr, wr.IsProgressNotify())
	}
	_, err = cli.Put(ctx(t), prefix+"l2", "v1")
	must(t, err)
	wr = nextWatch(t, wch)
	if len(wr.Events) != 1 || wr.Events[0].Kv.ModRevision != 10 {
		t.Fatalf("after the progress notify: %+v, want the put at 10", wr)
	}
}

// progressInterval is passed as etcd's
// --experimental-watch-progress-notify-interval, which the apiserver's
// test setups shorten the same way.
const progressInterval = 300 * time.Millisecond

// TestKubernetesWatchProgressNotify: a watch with WithProgressNotify gets
// progress notifications carrying the current revision while idle.
func TestKubernetesWatchProgressNotify(t *testing.T) {
	s := e2etest.Start(t, e2etest.Config{Args: []string{"--experimental-watch-progress-notify-interval=" + progressInterval.String()}})
	cli := s.Client(t)
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wch := cli.Watch(wctx, "/registry/events/", clientv3.WithPrefix(), clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	if wr := nextWatch(t, wch); !wr.Created {
		t.Fatalf("first response %+v, want created", wr)
	}
	put, err := cli.Put(ctx(t), "/registry/nodes/n1", "v") // outside the watch
	must(t, err)
	// etcd checks watchers at the interval and skips those sent to in the
	// last one: a notification comes within two intervals, with slack for
	// a loaded machine.
	deadline := time.After(20 * progressInterval)
	for {
		select {
		case wr := <-wch:
			if !wr.IsProgressNotify() {
				t.Fatalf("got %+v, want only progress notifications", wr)
			}
			if wr.Header.Revision == put.Header.Revision {
				return
			}
			if wr.Header.Revision > put.Header.Revision {
				t.Fatalf("progress at revision %d, beyond the current %d", wr.Header.Revision, put.Header.Revision)
			}
		case <-deadline:
			t.Fatalf("no progress notification at revision %d within %v", put.Header.Revision, 20*progressInterval)
		}
	}
}

// TestKubernetesWatchCompacted: a watch from a compacted revision is
// cancelled with the compact revision and ErrCompacted, which makes the
// apiserver relist.
func TestKubernetesWatchCompacted(t *testing.T) {
	_, cli := startServer(t)
	for i := range 5 {
		_, err := cli.Put(ctx(t), "/registry/pods/p", fmt.Sprint(i))
		must(t, err)
	}
	_, err := cli.Compact(ctx(t), 4)
	must(t, err)
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wch := cli.Watch(wctx, "/registry/pods/", clientv3.WithPrefix(), clientv3.WithRev(2))
	wr := nextWatch(t, wch)
	if !wr.Canceled || wr.CompactRevision != 4 {
		t.Fatalf("watch from 2 after compacting to 4: %+v, want cancelled with compact revision 4", wr)
	}
	requireErr(t, wr.Err(), rpctypes.ErrGRPCCompacted)
	select {
	case wr, ok := <-wch:
		if ok {
			t.Fatalf("after the cancel: %+v, want the channel closed", wr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch channel not closed after the cancel")
	}
	// from the compact revision itself the watch works
	wch = cli.Watch(wctx, "/registry/pods/", clientv3.WithPrefix(), clientv3.WithRev(4))
	wr = nextWatch(t, wch)
	must(t, wr.Err())
	if len(wr.Events) == 0 || wr.Events[0].Kv.ModRevision != 4 {
		t.Fatalf("watch from 4: %+v, want the put at 4 first", wr)
	}
}

// TestKubernetesWatchCluster: an apiserver whose etcd client talks to a
// follower watches there: events committed through the leader arrive in
// order, and a progress request on the follower answers with the
// revision it has applied.
func TestKubernetesWatchCluster(t *testing.T) {
	c := e2etest.StartCluster(t, e2etest.ClusterConfig{})
	leader := c.Leader(t)
	follower := (leader + 1) % c.Size()
	wcli, fcli := c.MemberClient(t, leader), c.MemberClient(t, follower)
	const prefix = "/registry/configmaps/"
	first, err := wcli.Put(ctx(t), prefix+"a", "0")
	must(t, err)

	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wch := fcli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(first.Header.Revision), clientv3.WithPrevKV())
	var last int64
	revs := []int64{first.Header.Revision} // of the puts under the prefix
	for i := range 20 {
		p, err := wcli.Put(ctx(t), fmt.Sprintf("%s%c", prefix, 'a'+i%3), fmt.Sprint(i+1))
		must(t, err)
		revs = append(revs, p.Header.Revision)
		p, err = wcli.Put(ctx(t), "/registry/other", fmt.Sprint(i))
		must(t, err)
		last = p.Header.Revision
	}
	var got []int64
	existed := map[string]bool{}
	for len(got) < len(revs) {
		wr := nextWatch(t, wch)
		must(t, wr.Err())
		for _, ev := range wr.Events {
			if existed[string(ev.Kv.Key)] != (ev.PrevKv != nil) {
				t.Fatalf("event at %d: previous value %v, want one iff the key existed", ev.Kv.ModRevision, ev.PrevKv)
			}
			existed[string(ev.Kv.Key)] = true
			got = append(got, ev.Kv.ModRevision)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(revs) {
		t.Fatalf("events at revisions %v, want %v", got, revs)
	}
	// a linearizable read on the follower: it has applied everything
	r, err := fcli.Get(ctx(t), "/registry/other")
	must(t, err)
	if r.Header.Revision != last {
		t.Fatalf("follower read at revision %d, want %d", r.Header.Revision, last)
	}
	must(t, fcli.RequestProgress(wctx))
	wr := nextWatch(t, wch)
	if !wr.IsProgressNotify() || wr.Header.Revision != last {
		t.Fatalf("progress on the follower: %+v (progress=%v), want revision %d", wr, wr.IsProgressNotify(), last)
	}
}
