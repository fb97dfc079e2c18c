package mvcc

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestDefragShrinksWithConcurrentReads fills the file, deletes and
// compacts nearly everything, and defragments while readers range over
// the keys left: they never see an error or a wrong value, the file
// shrinks, and writes batched across the swap reach the new file.
func TestDefragShrinksWithConcurrentReads(t *testing.T) {
	ts := openTest(t, Options{})
	value := string(make([]byte, 1024))
	for i := range 3000 {
		ts.mustPut(fmt.Sprintf("k%04d", i), value)
	}
	ts.mustPut("zkeep", "v")
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.do(del("k", "l")); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.do(&pb.CompactionRequest{Revision: ts.Rev()}); err != nil {
		t.Fatal(err)
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	before := fileSize(t, ts.Path())
	hashBefore, _, err := ts.Hash()
	if err != nil {
		t.Fatal(err)
	}
	ts.mustPut("pending", "p") // batched, not committed, across the swap

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				resp, err := ts.Range(get("zkeep"))
				if err != nil {
					errs <- err
					return
				}
				if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
					errs <- fmt.Errorf("read %v", resp.Kvs)
					return
				}
			}
		})
	}
	for range 3 {
		if err := ts.Defrag(); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("read during defrag: %v", err)
	}
	if after := fileSize(t, ts.Path()); after >= before/4 {
		t.Fatalf("file %d bytes after defrag, %d before: want it to shrink", after, before)
	}
	ts.reopen(Options{})
	if got := ts.mustRange(get("pending")); len(got.Kvs) != 1 {
		t.Fatalf("batched put lost across defrag: %v", got.Kvs)
	}
	if got := ts.mustRange(get("zkeep")); len(got.Kvs) != 1 {
		t.Fatalf("zkeep lost across defrag: %v", got.Kvs)
	}
	if _, err := ts.do(del("pending", "")); err != nil {
		t.Fatal(err)
	}
	if hashAfter, _, _ := ts.Hash(); hashAfter == hashBefore {
		// the delete left a tombstone revision: the hash must differ
		t.Fatalf("hash unchanged by a delete")
	}
}

// TestHashCountsBatches checks Hash answers the same whether changes are
// batched or committed, and that it ignores the consistent index.
func TestHashCountsBatches(t *testing.T) {
	ts := openTest(t, Options{})
	for i := range 10 {
		ts.mustPut(fmt.Sprintf("k%d", i), "v")
	}
	if _, err := ts.do(del("k3", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.do(&pb.CompactionRequest{Revision: 5}); err != nil {
		t.Fatal(err)
	}
	batched, rev, err := ts.Hash()
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	committed, rev2, err := ts.Hash()
	if err != nil {
		t.Fatal(err)
	}
	if batched != committed || rev != rev2 {
		t.Fatalf("batched hash %d rev %d, committed %d rev %d", batched, rev, committed, rev2)
	}
	ts.SetConsistentIndex(ts.ConsistentIndex() + 10)
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := ts.Hash(); h != committed {
		t.Fatalf("hash changed with the consistent index alone")
	}
}

// TestDefragIfFreeable: etcd's bootstrap defragmentation runs only when
// the free pages reach the threshold; the file keeps the map freelist it
// was opened with across the reopen.
func TestDefragIfFreeable(t *testing.T) {
	ts := openTest(t, Options{FreelistType: "map"})
	value := string(make([]byte, 1024))
	for i := range 1000 {
		ts.mustPut(fmt.Sprintf("k%04d", i), value)
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.do(del("k", "l")); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.do(&pb.CompactionRequest{Revision: ts.Rev()}); err != nil {
		t.Fatal(err)
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	ts.mustPut("z", "v") // a later commit releases the pages the deletes freed
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	total, inUse := ts.DBSize()
	free := total - inUse
	if free < 512<<10 {
		t.Fatalf("only %d bytes free after deleting 1 MiB", free)
	}
	for _, tc := range []struct {
		threshold int64
		want      bool
	}{{0, false}, {free + 1, false}, {free, true}} {
		before := fileSize(t, ts.Path())
		did, err := ts.DefragIfFreeable(tc.threshold)
		if err != nil || did != tc.want {
			t.Fatalf("threshold %d (free %d): defragmented %v, err %v; want %v", tc.threshold, free, did, err, tc.want)
		}
		if after := fileSize(t, ts.Path()); did != (after < before) {
			t.Fatalf("threshold %d: file %d -> %d bytes", tc.threshold, before, after)
		}
	}
	if ts.db.FreelistType != "map" {
		t.Errorf("reopened with freelist %q, want map", ts.db.FreelistType)
	}
}
