package e2e

// Snapshots saved with etcdctl and restored into a new member: from real
// etcd 3.4 with leases, and from the server under test. A restore into
// troupe uses `troupe snapshot restore`, one into etcd etcd 3.4's `etcdctl
// snapshot restore` (and etcd 3.4 serves it); with -e2e.server=etcd the
// first test restores into etcd, which pins what troupe must match.

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// saveSnapshotAt saves s's snapshot with etcdctl into dir until it holds
// rev (troupe's backend reaches the file within a commit interval) and
// returns its path.
func saveSnapshotAt(t *testing.T, s *e2etest.Server, dir string, rev int64) string {
	t.Helper()
	var st jsonSnapshotStatus
	for attempt := range 50 {
		path := filepath.Join(dir, fmt.Sprintf("snap-%d.db", attempt))
		etcdctl(t, s, "", "snapshot", "save", path)
		decodeJSON(t, etcdctl34(t, nil, "", "snapshot", "status", path, "-w", "json"), &st)
		if st.Revision >= rev {
			return path
		}
	}
	t.Fatalf("snapshot revision %d, want %d", st.Revision, rev)
	return ""
}

// restoreAndStart restores the snapshot at path into a new one-member
// cluster with the restore tool of kind, starts kind on it, and returns it
// with the member's peer URL. etcd 3.6's etcdctl has no restore (etcdutl
// has it, not built here) and etcd 3.6 does not start on a data dir that
// etcdctl 3.4 restored, so a restore into etcd is one into etcd 3.4.
func restoreAndStart(t *testing.T, kind string, path string) (*e2etest.Server, string) {
	t.Helper()
	dataDir, peer, flags := restoreSnapshot(t, kind, path)
	if kind != e2etest.Troupe {
		kind = e2etest.Etcd34
	}
	return e2etest.Start(t, e2etest.Config{Kind: kind, DataDir: dataDir, Args: append(flags, "--listen-peer-urls", peer)}), peer
}

// restoreSnapshot restores the snapshot at path into a new data dir of a
// one-member cluster (member e2e) with the restore tool of kind (troupe's,
// else etcdctl 3.4's) and returns the data dir, the member's peer URL and
// the cluster flags a member started on it needs.
func restoreSnapshot(t *testing.T, kind string, path string) (dataDir, peer string, flags []string) {
	t.Helper()
	peer = freeURL(t, "http")
	dataDir = filepath.Join(t.TempDir(), "restored")
	flags = []string{"--initial-cluster", "e2e=" + peer, "--initial-advertise-peer-urls", peer}
	args := append([]string{"snapshot", "restore", path, "--data-dir", dataDir, "--name", "e2e"}, flags...)
	if kind == e2etest.Troupe {
		troupeCmd(t, args...)
	} else {
		etcdctl34(t, nil, "", args...)
	}
	return dataDir, peer, flags
}

// storeView is what a client can read of a store: every key, the keys as
// of past revisions, and the leases with their TTLs and keys.
type storeView struct {
	rev    int64
	now    []kv
	past   map[int64][]kv
	leases map[clientv3.LeaseID]leaseView
}

type leaseView struct {
	granted int64
	keys    []string
}

// readView reads the keys under prefix now and at pastRevs, and the
// leases if withLeases.
func readView(t *testing.T, cli *clientv3.Client, prefix string, pastRevs []int64, withLeases bool) storeView {
	t.Helper()
	resp, err := cli.Get(ctx(t), prefix, clientv3.WithPrefix())
	must(t, err)
	v := storeView{rev: resp.Header.Revision, now: toKVs(resp.Kvs), past: map[int64][]kv{}, leases: map[clientv3.LeaseID]leaseView{}}
	for _, r := range pastRevs {
		resp, err := cli.Get(ctx(t), prefix, clientv3.WithPrefix(), clientv3.WithRev(r))
		must(t, err)
		v.past[r] = toKVs(resp.Kvs)
	}
	if !withLeases {
		return v
	}
	ls, err := cli.Leases(ctx(t))
	must(t, err)
	for _, l := range ls.Leases {
		ttl, err := cli.TimeToLive(ctx(t), l.ID, clientv3.WithAttachedKeys())
		must(t, err)
		if ttl.TTL <= 0 || ttl.TTL > ttl.GrantedTTL {
			t.Fatalf("lease %x: TTL %d of %d granted", l.ID, ttl.TTL, ttl.GrantedTTL)
		}
		var keys []string
		for _, k := range ttl.Keys {
			keys = append(keys, string(k))
		}
		slices.Sort(keys)
		v.leases[l.ID] = leaseView{granted: ttl.GrantedTTL, keys: keys}
	}
	return v
}

func requireSameView(t *testing.T, got, want storeView) {
	t.Helper()
	if got.rev != want.rev {
		t.Errorf("revision %d, want %d", got.rev, want.rev)
	}
	if fmt.Sprint(got.now) != fmt.Sprint(want.now) {
		t.Errorf("keys:\n got  %v\n want %v", got.now, want.now)
	}
	for r, kvs := range want.past {
		if fmt.Sprint(got.past[r]) != fmt.Sprint(kvs) {
			t.Errorf("keys at revision %d:\n got  %v\n want %v", r, got.past[r], kvs)
		}
	}
	if fmt.Sprint(got.leases) != fmt.Sprint(want.leases) {
		t.Errorf("leases:\n got  %v\n want %v", got.leases, want.leases)
	}
}

// TestSnapshotRestoreEtcdLeases: a snapshot of real etcd 3.4 holding leased
// keys, history and a compaction, restored and served: every key, every
// revision kept, the compaction, and the leases with their TTLs and keys.
func TestSnapshotRestoreEtcdLeases(t *testing.T) {
	src := e2etest.Start(t, e2etest.Config{Kind: e2etest.Etcd34})
	cli := src.Client(t)
	const prefix = "/lsnap/"
	grant := func(ttl int64) clientv3.LeaseID {
		l, err := cli.Grant(ctx(t), ttl)
		must(t, err)
		return l.ID
	}
	long, medium, empty := grant(3600), grant(1800), grant(600) // none expires during the test
	for i := range 4 {
		_, err := cli.Put(ctx(t), fmt.Sprintf("%slong/%d", prefix, i), "v", clientv3.WithLease(long))
		must(t, err)
	}
	_, err := cli.Put(ctx(t), prefix+"medium", "v1", clientv3.WithLease(medium))
	must(t, err)
	_, err = cli.Put(ctx(t), prefix+"medium", "v2", clientv3.WithLease(medium))
	must(t, err)
	_, err = cli.Put(ctx(t), prefix+"plain", "v1")
	must(t, err)
	_, err = cli.Put(ctx(t), prefix+"gone", "v1", clientv3.WithLease(long))
	must(t, err)
	_, err = cli.Delete(ctx(t), prefix+"gone")
	must(t, err)
	// a lease moved off a key: the key keeps no lease
	_, err = cli.Put(ctx(t), prefix+"long/3", "unleased")
	must(t, err)
	_, err = cli.Compact(ctx(t), 3)
	must(t, err)
	put, err := cli.Put(ctx(t), prefix+"plain", "v2")
	must(t, err)
	rev := put.Header.Revision

	want := readView(t, cli, prefix, []int64{3, 6, 8, 10, rev - 1}, true)
	if len(want.leases) != 3 || len(want.leases[empty].keys) != 0 || len(want.leases[long].keys) != 3 {
		t.Fatalf("etcd's leases: %v", want.leases)
	}
	path := saveSnapshotAt(t, src, t.TempDir(), rev)

	r, _ := restoreAndStart(t, e2etest.Kind(), path)
	rcli := r.Client(t)
	pastRevs := []int64{3, 6, 8, 10, rev - 1}
	t.Run("keys", func(t *testing.T) {
		keysOnly := want
		keysOnly.leases = nil
		got := readView(t, rcli, prefix, pastRevs, false)
		got.leases = nil
		requireSameView(t, got, keysOnly)
		_, err := rcli.Get(ctx(t), prefix, clientv3.WithPrefix(), clientv3.WithRev(2))
		requireErr(t, err, rpctypes.ErrGRPCCompacted)
		// the restored member goes on from the snapshot's revision
		p, err := rcli.Put(ctx(t), "/other/after", "v")
		must(t, err)
		if p.Header.Revision != rev+1 {
			t.Fatalf("put after restore at revision %d, want %d", p.Header.Revision, rev+1)
		}
	})
	t.Run("leases", func(t *testing.T) {
		got := readView(t, rcli, prefix, nil, true)
		if fmt.Sprint(got.leases) != fmt.Sprint(want.leases) {
			t.Fatalf("leases:\n got  %v\n want %v", got.leases, want.leases)
		}
		// the restored leases still work: attach, revoke
		_, err := rcli.Put(ctx(t), prefix+"after", "v", clientv3.WithLease(medium))
		must(t, err)
		_, err = rcli.Revoke(ctx(t), long)
		must(t, err)
		left, err := rcli.Get(ctx(t), prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		must(t, err)
		var keys []string
		for _, kv := range left.Kvs {
			keys = append(keys, string(kv.Key))
		}
		if fmt.Sprint(keys) != fmt.Sprint([]string{prefix + "after", prefix + "long/3", prefix + "medium", prefix + "plain"}) {
			t.Fatalf("keys after revoking the long lease: %q", keys)
		}
	})
}

// TestSnapshotRestoreFromEtcdctlSave: `etcdctl snapshot save` from the
// server under test, restored and served by troupe and by etcd, each with
// its own restore tool (etcd 3.4's, see restoreAndStart): the file is
// etcd's format both ways. (troupe's own
// save and restore are TestTroupeSnapshotRestore.)
func TestSnapshotRestoreFromEtcdctlSave(t *testing.T) {
	s, cli := startServer(t)
	const prefix = "/csnap/"
	m := newModel()
	var keys []string
	for i := range 5 {
		keys = append(keys, fmt.Sprintf("%s%d", prefix, i))
		applyPuts(t, cli, m, keys[i], "v1")
	}
	applyPuts(t, cli, m, keys[0], "v2", keys[1], "v2")
	_, err := cli.Delete(ctx(t), keys[4])
	must(t, err)
	m.del(keys[4])
	want := readView(t, cli, prefix, []int64{3, 6, 7}, false)
	path := saveSnapshotAt(t, s, t.TempDir(), m.rev)

	for _, kind := range []string{e2etest.Troupe, e2etest.Etcd34} {
		t.Run("served-by-"+kind, func(t *testing.T) {
			r, _ := restoreAndStart(t, kind, path)
			rcli := r.Client(t)
			got := readView(t, rcli, prefix, []int64{3, 6, 7}, false)
			requireSameView(t, got, want)
			if fmt.Sprint(got.now) != fmt.Sprint(m.now(keys[:4]...)) {
				t.Fatalf("restored keys %v, want %v", got.now, m.now(keys[:4]...))
			}
			p, err := rcli.Put(ctx(t), prefix+"after", "v")
			must(t, err)
			if p.Header.Revision != m.rev+1 {
				t.Fatalf("put after restore at revision %d, want %d", p.Header.Revision, m.rev+1)
			}
		})
	}
}
