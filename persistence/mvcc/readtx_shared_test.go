package mvcc

import (
	"fmt"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// openReadTxs is how many bbolt read transactions are open on ts's file.
func openReadTxs(ts *testStore) int {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	return ts.db.Stats().OpenTxN
}

// TestSharedReadTxRenewedByCommits: ranges share one read transaction;
// a commit retires it (a range after the commit reads the committed value
// from the file, which a transaction begun before could not), the retired
// one lives on until its last reader ends, and Defrag does not wait for
// the store's own reference.
func TestSharedReadTxRenewedByCommits(t *testing.T) {
	ts := openTest(t, Options{})
	// Grow the file first: a commit that needs a larger mmap waits for
	// every open read transaction (bbolt's rule, shared or not), and this
	// test holds one across a commit.
	val := strings.Repeat("v", 4096)
	for i := range 2000 {
		ts.mustPut(fmt.Sprintf("k/%05d", i), val)
	}
	ts.mustPut("a", "1")
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got := ts.mustRange(get("a")); string(got.Kvs[0].Value) != "1" {
			t.Fatalf("a = %q, want 1", got.Kvs[0].Value)
		}
	}
	if n := openReadTxs(ts); n != 1 {
		t.Fatalf("%d read transactions open after three ranges, want the shared one", n)
	}
	ts.mu.RLock()
	held, err := ts.acquireReadTx() // a reader still at work on the old one
	ts.mu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}

	ts.mustPut("a", "2")
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := ts.mustRange(get("a")); string(got.Kvs[0].Value) != "2" {
		t.Fatalf("after the commit a = %q, want 2", got.Kvs[0].Value)
	}
	if n := openReadTxs(ts); n != 2 {
		t.Fatalf("%d read transactions open, want 2: the held old one and the new shared one", n)
	}
	held.release()
	if n := openReadTxs(ts); n != 1 {
		t.Fatalf("%d read transactions open after the last reader of the old one, want 1", n)
	}

	if err := ts.Defrag(); err != nil {
		t.Fatal(err)
	}
	if got := ts.mustRange(get("a")); string(got.Kvs[0].Value) != "2" {
		t.Fatalf("after defrag a = %q, want 2", got.Kvs[0].Value)
	}
}

// TestReadsDuringACommitDoNotBlockItsRemap: a range while a batch that
// grows the file commits opens a transaction of its own. Were it to
// create a shared one the store holds, bbolt's remap at the end of the
// commit would wait for it forever (the test would hang).
func TestReadsDuringACommitDoNotBlockItsRemap(t *testing.T) {
	ts := openTest(t, Options{})
	ts.mustPut("a", "1")
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	ts.mustRange(get("a")) // a shared transaction exists before the commit
	g := holdFirstCommit(ts)
	val := strings.Repeat("v", 4096)
	for i := range 2000 { // 8 MiB: bbolt must grow the file and remap
		ts.mustPut(fmt.Sprintf("k/%05d", i), val)
	}
	if err := ts.CommitAsync(); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	for range 3 {
		if got := ts.mustRange(get("a")); string(got.Kvs[0].Value) != "1" {
			t.Fatalf("during the commit a = %q, want 1", got.Kvs[0].Value)
		}
		if got := ts.mustRange(&pb.RangeRequest{Key: []byte("k/"), RangeEnd: []byte("k0"), CountOnly: true}); got.Count != 2000 {
			t.Fatalf("during the commit count = %d, want 2000", got.Count)
		}
	}
	g.open()
	ts.waitBackground()
	if err := ts.reap(); err != nil {
		t.Fatal(err)
	}
	if got := ts.mustRange(get("k/01999")); len(got.Kvs) != 1 || len(got.Kvs[0].Value) != 4096 {
		t.Fatalf("after the commit: %v", got.Kvs)
	}
}
