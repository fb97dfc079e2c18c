package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// bucketEntry is one committed "key" bucket entry, decoded.
type bucketEntry struct {
	rev  revision
	tomb bool
	kv   *mvccpb.KeyValue
}

// committed returns the committed "key" bucket and consistent index.
func committed(t *testing.T, s *Store) ([]bucketEntry, uint64) {
	t.Helper()
	var out []bucketEntry
	var ci uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(metaBucket).Get(consistentIndexKey); v != nil {
			ci = binary.BigEndian.Uint64(v)
		}
		return tx.Bucket(keyBucket).ForEach(func(k, v []byte) error {
			rev, tomb, err := parseBucketKey(k)
			if err != nil {
				return err
			}
			kv := &mvccpb.KeyValue{}
			if err := proto.Unmarshal(v, kv); err != nil {
				return err
			}
			out = append(out, bucketEntry{rev, tomb, kv})
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, ci
}

func TestLayoutSubRevisionsAndTombstones(t *testing.T) {
	ts := openTest(t, Options{})
	ts.mustPut("a", "1") // rev 2
	if _, err := ts.do(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("b", "2"), opDel("a", ""), opPut("c", "3")}}); err != nil {
		t.Fatal(err)
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	got, ci := committed(t, ts.Store)
	want := []struct {
		rev  revision
		tomb bool
		key  string
	}{{revision{2, 0}, false, "a"}, {revision{3, 0}, false, "b"}, {revision{3, 1}, true, "a"}, {revision{3, 2}, false, "c"}}
	if len(got) != len(want) {
		t.Fatalf("bucket has %d entries, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].rev != w.rev || got[i].tomb != w.tomb || string(got[i].kv.Key) != w.key {
			t.Errorf("entry %d = %v %v %q, want %v %v %q", i, got[i].rev, got[i].tomb, got[i].kv.Key, w.rev, w.tomb, w.key)
		}
	}
	if got[2].kv.Value != nil || got[2].kv.ModRevision != 0 {
		t.Errorf("tombstone value %v, want the key alone", got[2].kv)
	}
	if ci != 2 {
		t.Errorf("committed consistent index %d, want 2", ci)
	}
	if k := bucketKey(revision{3, 1}, true); len(k) != 18 || k[8] != '_' || k[17] != 't' {
		t.Errorf("tombstone key %x", k)
	}
}

func TestBatchingReadsSeePendingAndCommitIsAtomic(t *testing.T) {
	ts := openTest(t, Options{})
	ts.mustPut("a", "1")
	ts.mustPut("b", "2")
	ts.SetConsistentIndex(10)
	if got := ts.mustRange(rng("a", "c")); len(got.Kvs) != 2 || got.Header.Revision != 3 {
		t.Fatalf("pending data not visible: %v", got)
	}
	if entries, ci := committed(t, ts.Store); len(entries) != 0 || ci != 0 {
		t.Fatalf("committed before Commit: %d entries, index %d", len(entries), ci)
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	if entries, ci := committed(t, ts.Store); len(entries) != 2 || ci != 10 {
		t.Fatalf("after Commit: %d entries, index %d; want 2, 10", len(entries), ci)
	}
	if got := ts.mustRange(rng("a", "c")); len(got.Kvs) != 2 {
		t.Fatalf("committed data not visible: %v", got)
	}
	ts.reopen(Options{})
	if ts.ConsistentIndex() != 10 || ts.Rev() != 3 {
		t.Fatalf("after reopen: index %d rev %d, want 10, 3", ts.ConsistentIndex(), ts.Rev())
	}
	if got := ts.mustRange(get("b")); string(got.Kvs[0].Value) != "2" || got.Kvs[0].ModRevision != 3 {
		t.Fatalf("after reopen: %v", got)
	}
}

func TestUncommittedWritesAreLostTogetherWithTheirIndex(t *testing.T) {
	ts := openTest(t, Options{})
	ts.mustPut("a", "1")
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	ts.mustPut("b", "2")
	// simulate a crash: drop the pending batch instead of committing it
	ts.pending = newBatch()
	ts.reopen(Options{})
	if ts.ConsistentIndex() != 1 || ts.Rev() != 2 {
		t.Fatalf("after crash: index %d rev %d, want 1, 2", ts.ConsistentIndex(), ts.Rev())
	}
	// the raft log replays entry 2 and it applies again, with the same result
	resp, err := ts.Put(2, put("b", "2"))
	if err != nil || resp.Header.Revision != 3 {
		t.Fatalf("replay: %v %v", resp, err)
	}
}

func TestAlreadyApplied(t *testing.T) {
	ts := openTest(t, Options{})
	if _, err := ts.Put(5, put("a", "1")); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func() error{
		"put":     func() error { _, err := ts.Put(5, put("a", "2")); return err },
		"delete":  func() error { _, err := ts.DeleteRange(4, del("a", "")); return err },
		"txn":     func() error { _, err := ts.Txn(1, &pb.TxnRequest{}); return err },
		"compact": func() error { _, err := ts.Compact(5, &pb.CompactionRequest{Revision: 1}); return err },
	} {
		if err := f(); !errors.Is(err, ErrAlreadyApplied) {
			t.Errorf("%s: %v, want ErrAlreadyApplied", name, err)
		}
	}
	if ts.Rev() != 2 {
		t.Fatalf("rev %d after skipped entries, want 2", ts.Rev())
	}
	// a failing request still counts as applied
	if _, err := ts.Put(6, &pb.PutRequest{Key: []byte("x"), IgnoreValue: true}); !errors.Is(err, ErrKeyNotFound) {
		t.Fatal(err)
	}
	if ts.ConsistentIndex() != 6 {
		t.Fatalf("index %d, want 6", ts.ConsistentIndex())
	}
	ts.SetConsistentIndex(3) // lower: ignored
	ts.SetConsistentIndex(8)
	if ts.ConsistentIndex() != 8 {
		t.Fatalf("index %d, want 8", ts.ConsistentIndex())
	}
}

func TestBatchLimitCommits(t *testing.T) {
	ts := openTest(t, Options{BatchLimit: 3})
	ts.mustPut("a", "1")
	ts.mustPut("b", "1")
	if entries, _ := committed(t, ts.Store); len(entries) != 0 {
		t.Fatalf("committed %d entries below the limit", len(entries))
	}
	ts.mustPut("c", "1") // starts a background commit of the batch
	ts.waitBackground()
	if entries, ci := committed(t, ts.Store); len(entries) != 3 || ci != 3 {
		t.Fatalf("at the limit: %d entries, index %d; want 3, 3", len(entries), ci)
	}
	ts.mustPut("d", "1")
	if entries, _ := committed(t, ts.Store); len(entries) != 3 || ts.pending.size() != 1 {
		t.Fatalf("after the limit: %d entries committed, %d pending; want 3, 1", len(entries), ts.pending.size())
	}
}

func TestLeases(t *testing.T) {
	ts := openTest(t, Options{})
	ts.grant(7, 60)
	if _, err := ts.do(&pb.PutRequest{Key: []byte("a"), Value: []byte("1"), Lease: 8}); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("unknown lease: %v", err)
	}
	if _, err := ts.do(&pb.PutRequest{Key: []byte("a"), Value: []byte("1"), Lease: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.do(&pb.PutRequest{Key: []byte("a"), Value: []byte("2"), IgnoreLease: true}); err != nil {
		t.Fatal(err)
	}
	if kv := ts.mustRange(get("a")).Kvs[0]; kv.Lease != 7 || string(kv.Value) != "2" {
		t.Fatalf("ignore_lease lost the lease: %v", kv)
	}
	resp, err := ts.do(&pb.TxnRequest{Compare: []*pb.Compare{cmpLease("a", eq, 7)}, Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b"), Lease: 9}}}}})
	if !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("txn with unknown lease: %v %v", resp, err)
	}
	ts.reopen(Options{})
	if kv := ts.mustRange(get("a")).Kvs[0]; kv.Lease != 7 {
		t.Fatalf("lease not persisted: %v", kv)
	}
}

func TestCompactionRemovesDataAndSurvivesReopen(t *testing.T) {
	ts := openTest(t, Options{})
	ts.mustPut("a", "1")                           // 2
	ts.mustPut("a", "2")                           // 3
	ts.mustPut("b", "1")                           // 4
	if _, err := ts.do(del("b", "")); err != nil { // 5
		t.Fatal(err)
	}
	ts.mustPut("c", "1") // 6
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	ts.mustPut("a", "3") // 7, still pending
	if _, err := ts.do(&pb.CompactionRequest{Revision: 5}); err != nil {
		t.Fatal(err)
	}
	// a@3 is kept (latest <= 5) and so is b's tombstone @5 (as etcd 3.6:
	// until the next compaction); a@2 and b@4 go
	if _, err := ts.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 4}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("read below compaction: %v", err)
	}
	got := ts.mustRange(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), Revision: 5})
	if len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "2" {
		t.Fatalf("read at compaction: %v", got)
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	entries, _ := committed(t, ts.Store)
	var revs []revision
	for _, e := range entries {
		revs = append(revs, e.rev)
	}
	if fmt.Sprint(revs) != "[{3 0} {5 0} {6 0} {7 0}]" {
		t.Fatalf("bucket after compaction: %v", revs)
	}
	ts.reopen(Options{})
	if ts.CompactRev() != 5 || ts.Rev() != 7 {
		t.Fatalf("after reopen: compact %d rev %d", ts.CompactRev(), ts.Rev())
	}
	if _, err := ts.do(&pb.CompactionRequest{Revision: 5}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("compact again after reopen: %v", err)
	}
	got = ts.mustRange(&pb.RangeRequest{Key: []byte("a"), Revision: 6})
	if len(got.Kvs) != 1 || got.Kvs[0].Version != 2 || got.Kvs[0].CreateRevision != 2 {
		t.Fatalf("history after reopen: %v", got)
	}
	// versions continue from the restored generation
	if r := ts.mustPut("a", "4"); r.Header.Revision != 8 {
		t.Fatal(r)
	}
	if kv := ts.mustRange(get("a")).Kvs[0]; kv.Version != 4 || kv.CreateRevision != 2 {
		t.Fatalf("version after restore: %v", kv)
	}
}

// TestCompactionOfDeletedHeadKeepsRevision: a file whose newest revision
// is a tombstone that a compaction removed (etcd 3.4 did; etcd 3.6 and
// troupe keep it until the next compaction) must not make the revision
// go back on open.
func TestCompactionOfDeletedHeadKeepsRevision(t *testing.T) {
	ts := openTest(t, Options{})
	ts.mustPut("a", "1")                           // 2
	if _, err := ts.do(del("a", "")); err != nil { // 3
		t.Fatal(err)
	}
	if _, err := ts.do(&pb.CompactionRequest{Revision: 3}); err != nil {
		t.Fatal(err)
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := ts.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(keyBucket).Delete(bucketKey(revision{main: 3}, true))
	}); err != nil {
		t.Fatal(err)
	}
	ts.reopen(Options{})
	if entries, _ := committed(t, ts.Store); len(entries) != 0 {
		t.Fatalf("bucket not empty: %v", entries)
	}
	// the revision must not go back although no entry records it
	if ts.Rev() != 3 {
		t.Fatalf("rev %d after reopen, want 3", ts.Rev())
	}
	if r := ts.mustPut("a", "2"); r.Header.Revision != 4 {
		t.Fatal(r)
	}
}

func TestKeyIndexCompact(t *testing.T) {
	r := func(m int64) revision { return revision{main: m} }
	newKI := func() *keyIndex {
		ki := &keyIndex{key: "k"}
		ki.put(r(2), r(2), 1)
		ki.put(r(4), r(4), 1)
		ki.tombstone(r(6))
		ki.put(r(8), r(8), 1)
		ki.put(r(10), r(10), 1)
		return ki
	}
	for _, tc := range []struct {
		at      int64
		removed string
		empty   bool
		gens    int
	}{
		{1, "[]", false, 2},
		{2, "[]", false, 2},
		{3, "[]", false, 2},
		{4, "[{{2 0} false}]", false, 2},
		{6, "[{{2 0} false} {{4 0} false}]", false, 2}, // the tombstone at 6 stays
		{7, "[{{2 0} false} {{4 0} false} {{6 0} true}]", false, 1},
		{9, "[{{2 0} false} {{4 0} false} {{6 0} true}]", false, 1},
		{10, "[{{2 0} false} {{4 0} false} {{6 0} true} {{8 0} false}]", false, 1},
	} {
		ki := newKI()
		removed, empty := ki.compact(tc.at, nil)
		if fmt.Sprint(removed) != tc.removed || empty != tc.empty || len(ki.gens) != tc.gens {
			t.Errorf("compact(%d) = %v %v gens %d, want %s %v %d", tc.at, removed, empty, len(ki.gens), tc.removed, tc.empty, tc.gens)
		}
		if _, ok := ki.get(tc.at); tc.at >= 2 && tc.at != 6 && tc.at != 7 && !ok {
			t.Errorf("compact(%d) lost the value at %d", tc.at, tc.at)
		}
	}
	ki := newKI()
	ki.tombstone(r(12))
	if removed, empty := ki.compact(12, nil); empty || len(removed) != 5 {
		t.Errorf("compact of a key deleted at its revision: removed %v empty %v", removed, empty)
	}
	if _, ok := ki.get(12); ok {
		t.Error("the kept tombstone reads as a value")
	}
	// the next compaction drops the tombstone and the key
	if removed, empty := ki.compact(13, nil); !empty || fmt.Sprint(removed) != "[{{12 0} true}]" {
		t.Errorf("compact after the kept tombstone: removed %v empty %v", removed, empty)
	}
}

// TestConcurrentReadersOneWriter reads while one writer writes, compacts,
// commits and starts background commits (also through the batch limit):
// each revision a reader needs must be in the pending batch, the
// committing one or bbolt (rangeKeys fails on one missing from all three).
func TestConcurrentReadersOneWriter(t *testing.T) {
	ts := openTest(t, Options{BatchLimit: 50})
	const writes = 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				rev := ts.Rev()
				resp, err := ts.Range(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), Revision: rev})
				if errors.Is(err, ErrCompacted) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				// every txn writes k1 and k2 together: a reader sees both or neither
				if len(resp.Kvs) == 2 && resp.Kvs[0].ModRevision != resp.Kvs[1].ModRevision {
					errs <- fmt.Errorf("torn txn at rev %d: %v", rev, resp.Kvs)
					return
				}
				// txn i is revision i+2 and writes the value i
				if len(resp.Kvs) != 2 && rev > 1 || len(resp.Kvs) == 2 && (resp.Kvs[0].ModRevision != rev || string(resp.Kvs[1].Value) != fmt.Sprint(rev-2)) {
					errs <- fmt.Errorf("read at rev %d: %v", rev, resp.Kvs)
					return
				}
			}
		}()
	}
	for i := 0; i < writes; i++ {
		v := fmt.Sprint(i)
		if _, err := ts.do(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("k1", v), opPut("k2", v)}}); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			if _, err := ts.do(&pb.CompactionRequest{Revision: ts.Rev() - 50}); err != nil {
				t.Fatal(err)
			}
		}
		switch {
		case i%37 == 0:
			if err := ts.Commit(); err != nil {
				t.Fatal(err)
			}
		case i%3 == 0:
			if err := ts.CommitAsync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := ts.mustRange(get("k2")); string(got.Kvs[0].Value) != fmt.Sprint(writes-1) {
		t.Fatalf("last value %v", got.Kvs)
	}
}

func TestValidateNilAndEmpty(t *testing.T) {
	for name, err := range map[string]error{
		"nil range":      ValidateRange(nil),
		"nil put":        ValidatePut(nil),
		"nil delete":     ValidateDeleteRange(nil),
		"nil put in txn": ValidateTxn(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{}}}}, DefaultMaxTxnOps),
		"nil txn in txn": ValidateTxn(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{}}}}, DefaultMaxTxnOps),
		"nil op":         ValidateTxn(&pb.TxnRequest{Failure: []*pb.RequestOp{nil}}, DefaultMaxTxnOps),
		"nil compare":    ValidateTxn(&pb.TxnRequest{Compare: []*pb.Compare{nil}}, DefaultMaxTxnOps),
	} {
		switch name {
		case "nil txn in txn":
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case "nil op":
			if !errors.Is(err, ErrKeyNotFound) {
				t.Errorf("%s: %v", name, err)
			}
		default:
			if !errors.Is(err, ErrEmptyKey) {
				t.Errorf("%s: %v, want ErrEmptyKey", name, err)
			}
		}
	}
}

func TestValidateSortTarget(t *testing.T) {
	bad := &pb.RangeRequest{Key: []byte("a"), SortTarget: 9, SortOrder: pb.RangeRequest_ASCEND}
	if err := ValidateRange(bad); !errors.Is(err, ErrInvalidSortOption) {
		t.Errorf("range: %v", err)
	}
	if err := ValidateTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opGet(bad)}}, DefaultMaxTxnOps); !errors.Is(err, ErrInvalidSortOption) {
		t.Errorf("txn: %v", err)
	}
	// etcd 3.6 refuses an unknown order too (3.4 did not sort)
	if err := ValidateRange(&pb.RangeRequest{Key: []byte("a"), SortOrder: 7}); !errors.Is(err, ErrInvalidSortOption) {
		t.Errorf("unknown order: %v", err)
	}
}

func TestCheckIntervals(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []*pb.RequestOp
		dup  bool
	}{
		{"distinct puts", []*pb.RequestOp{opPut("a", ""), opPut("b", "")}, false},
		{"put twice", []*pb.RequestOp{opPut("a", ""), opPut("a", "")}, true},
		{"put in deleted range", []*pb.RequestOp{opDel("a", "c"), opPut("b", "")}, true},
		{"put at deleted range end", []*pb.RequestOp{opDel("a", "c"), opPut("c", "")}, false},
		{"put at deleted range start", []*pb.RequestOp{opPut("a", ""), opDel("a", "c")}, true},
		{"put after delete-to-end (etcd misses it)", []*pb.RequestOp{opDel("a", "\x00"), opPut("b", "")}, false},
		{"deletes overlap", []*pb.RequestOp{opDel("a", "c"), opDel("b", "d")}, false},
		{"nested branches same key", []*pb.RequestOp{opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "")}, Failure: []*pb.RequestOp{opPut("a", "")}})}, false},
		{"nested and parent put", []*pb.RequestOp{opPut("a", ""), opTxn(&pb.TxnRequest{Failure: []*pb.RequestOp{opPut("a", "")}})}, true},
		{"nested delete covers parent put", []*pb.RequestOp{opPut("b", ""), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "c")}})}, true},
		{"two nested txns same key", []*pb.RequestOp{opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "")}}), opTxn(&pb.TxnRequest{Failure: []*pb.RequestOp{opPut("a", "")}})}, true},
		{"deep nesting", []*pb.RequestOp{opDel("x", ""), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("x", "")}})}})}, true},
	} {
		_, _, err := checkIntervals(tc.ops)
		if (errors.Is(err, ErrDuplicateKey)) != tc.dup || (err != nil && !errors.Is(err, ErrDuplicateKey)) {
			t.Errorf("%s: %v, want duplicate %v", tc.name, err, tc.dup)
		}
		// ValidateTxn skips the check where no duplicate can be; it must
		// still find every one in either branch.
		for _, req := range []*pb.TxnRequest{{Success: tc.ops}, {Failure: tc.ops}} {
			if err := ValidateTxn(req, DefaultMaxTxnOps); (errors.Is(err, ErrDuplicateKey)) != tc.dup || (err != nil && !errors.Is(err, ErrDuplicateKey)) {
				t.Errorf("%s: ValidateTxn: %v, want duplicate %v", tc.name, err, tc.dup)
			}
		}
	}
}

// TestValidateTxnOnePutAllocatesNothing guards the fast path of the
// common txn (compare, then a put, else a get): checking it allocated a
// map per txn on the request path.
func TestValidateTxnOnePutAllocatesNothing(t *testing.T) {
	req := &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL}},
		Success: []*pb.RequestOp{opPut("a", "v")},
		Failure: []*pb.RequestOp{opGet(&pb.RangeRequest{Key: []byte("a")})},
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := ValidateTxn(req, DefaultMaxTxnOps); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("ValidateTxn allocated %v times, want 0", n)
	}
}

func TestOpenErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("open of a directory: %v", err)
	}
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("x"), 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(junk, Options{}); err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("open of a non-bbolt file: %v", err)
	}
}

func TestDBSize(t *testing.T) {
	ts := openTest(t, Options{})
	total0, _ := ts.DBSize()
	for i := 0; i < 2000; i++ {
		ts.mustPut(fmt.Sprint("k", i), strings.Repeat("v", 100))
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	total, inUse := ts.DBSize()
	if total <= total0 || inUse <= 0 || inUse > total {
		t.Fatalf("DBSize = %d, %d (empty %d)", total, inUse, total0)
	}
}

// TestCompactionLogged: as etcd, each compaction says so at info once it
// is done (what operators and kube-apiserver's docs look for).
func TestCompactionLogged(t *testing.T) {
	var buf bytes.Buffer
	ts := openTest(t, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	ts.mustPut("a", "1")
	ts.mustPut("a", "2")
	if _, err := ts.do(&pb.CompactionRequest{Revision: 2}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `msg="finished scheduled compaction" compact-revision=2`) {
		t.Fatalf("no compaction line in the log:\n%s", buf.String())
	}
	buf.Reset()
	if _, err := ts.do(&pb.CompactionRequest{Revision: 2}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("compacting again: %v", err)
	}
	if strings.Contains(buf.String(), "finished scheduled compaction") {
		t.Fatal("a refused compaction was logged as finished")
	}
}
