package node

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestRestartFromIndexCheckpoint stops a member holding more keys than
// the store's checkpoint threshold (with overwrites, deletes, a
// compaction and keys on a lease), checks that the stop left the index
// checkpoint in the backend, and that the restarted member, which builds
// its index from it, serves the same keys, revisions and lease keys and
// goes on writing.
func TestRestartFromIndexCheckpoint(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const keys, perTxn = 12_000, 100
	for i := 0; i < keys; i += perTxn {
		ops := make([]clientv3.Op, 0, perTxn)
		for j := i; j < i+perTxn; j++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("ck/%06d", j), "v1"))
		}
		if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	lease, err := c.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ck/000001", "ck/000002"} {
		if _, err := c.Put(ctx, k, "leased", clientv3.WithLease(lease.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Delete(ctx, "ck/000100", clientv3.WithRange("ck/000200")); err != nil {
		t.Fatal(err)
	}
	last, err := c.Put(ctx, "ck/000150", "again")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compact(ctx, last.Header.Revision-1); err != nil {
		t.Fatal(err)
	}
	before := snapshotOf(ctx, t, c, lease.ID)
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !hasIndexCheckpoint(t, filepath.Join(dir, "member", "snap", "db")) {
		t.Fatal("stopping the member left no index checkpoint in its backend")
	}

	n, err = Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	c = client(t, cfg)
	if after := snapshotOf(ctx, t, c, lease.ID); after != before {
		t.Fatalf("after the restart:\n%s\nbefore:\n%s", after, before)
	}
	put, err := c.Put(ctx, "ck/000001", "v2")
	if err != nil {
		t.Fatal(err)
	}
	if put.Header.Revision != last.Header.Revision+1 {
		t.Fatalf("put after the restart at revision %d, want %d", put.Header.Revision, last.Header.Revision+1)
	}
	if _, err := c.Get(ctx, "ck/000001", clientv3.WithRev(last.Header.Revision-2)); err == nil {
		t.Fatal("a read below the compaction succeeded after the restart")
	}
}

// snapshotOf renders what a client sees of the test's keys: the revision,
// every key with its create and mod revisions and version, the keys at
// the revision before the last write, and the keys on the lease.
func snapshotOf(ctx context.Context, t *testing.T, c *clientv3.Client, lease clientv3.LeaseID) string {
	t.Helper()
	get, err := c.Get(ctx, "ck/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("revision %d, %d keys\n", get.Header.Revision, len(get.Kvs))
	for _, kv := range get.Kvs {
		out += fmt.Sprintf("%s %s c%d m%d v%d l%d\n", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
	}
	old, err := c.Get(ctx, "ck/", clientv3.WithPrefix(), clientv3.WithRev(get.Header.Revision-1), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	out += fmt.Sprintf("at %d: %d keys\n", get.Header.Revision-1, old.Count)
	ttl, err := c.TimeToLive(ctx, lease, clientv3.WithAttachedKeys())
	if err != nil {
		t.Fatal(err)
	}
	var leased []string
	for _, k := range ttl.Keys {
		leased = append(leased, string(k))
	}
	slices.Sort(leased)
	return out + fmt.Sprintf("lease keys %v\n", leased)
}

func hasIndexCheckpoint(t *testing.T, path string) bool {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var has bool
	_ = db.View(func(tx *bolt.Tx) error {
		has = tx.Bucket([]byte("troupe_key_index")) != nil
		return nil
	})
	return has
}
