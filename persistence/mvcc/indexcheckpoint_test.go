package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// checkpointWorkload writes what the checkpoint must carry: overwrites,
// deletes and re-creations (several generations), a txn (sub-revisions),
// keys attached to leases (one detached by an overwrite, one deleted),
// a compaction at a tombstone's revision (etcd 3.6 keeps the tombstone)
// and a later one, and writes still pending when the store closes.
func checkpointWorkload(ts *testStore) {
	ts.t.Helper()
	for i := range 50 {
		ts.mustPut(fmt.Sprintf("k/%03d", i), "v1")
	}
	ts.index++
	if _, err := ts.LeaseGrant(ts.index, &pb.LeaseGrantRequest{ID: 7, TTL: 100}); err != nil {
		ts.t.Fatal(err)
	}
	for _, k := range []string{"lease/a", "lease/b", "lease/c"} {
		if _, err := ts.do(&pb.PutRequest{Key: []byte(k), Value: []byte("x"), Lease: 7}); err != nil {
			ts.t.Fatal(err)
		}
	}
	ts.mustPut("lease/b", "no lease now")
	mustDo(ts, del("lease/c", ""))
	for i := range 20 {
		ts.mustPut(fmt.Sprintf("k/%03d", i), "v2")
	}
	mustDo(ts, del("k/010", "k/015"))
	tomb := mustDo(ts, del("k/020", "")).(*pb.DeleteRangeResponse).Header.Revision
	mustDo(ts, &pb.TxnRequest{Success: []*pb.RequestOp{opPut("t/1", "a"), opPut("t/2", "b"), opDel("k/030", "")}})
	mustDo(ts, &pb.CompactionRequest{Revision: tomb})
	ts.mustPut("k/012", "again") // a generation after a deleted one
	if err := ts.Commit(); err != nil {
		ts.t.Fatal(err)
	}
	mustDo(ts, &pb.CompactionRequest{Revision: tomb + 1})
	ts.mustPut("k/040", "v3")
	mustDo(ts, del("k/041", ""))
	ts.mustPut("k/041", "back")
	// left pending: Close commits them before writing the checkpoint
}

func mustDo(ts *testStore, req proto.Message) proto.Message {
	ts.t.Helper()
	resp, err := ts.do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	return resp
}

// storeDump is a store's key index, revisions and key leases in a form
// that compares equal whichever way Open rebuilt them. A compacted
// generation that ended in a tombstone is rebuilt by the scan from the
// tombstone alone, so only the live generation's created revision and
// version are part of it, and of the created revision only its main part
// (the scan reads it from CreateRevision; nothing uses the sub part).
func storeDump(s *Store) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var b strings.Builder
	fmt.Fprintf(&b, "rev=%d compact=%d keys=%d\n", s.currentRev, s.compactRev, s.index.tree.Len())
	b.WriteString(indexMismatch(s.index))
	s.index.tree.Ascend(func(ki *keyIndex) bool {
		fmt.Fprintf(&b, "%q:", ki.key)
		for i, g := range ki.gens {
			b.WriteString(" [")
			for _, r := range g.revs {
				fmt.Fprintf(&b, " %d.%d", r.main, r.sub)
			}
			if i == len(ki.gens)-1 && len(g.revs) > 0 {
				fmt.Fprintf(&b, " created=%d ver=%d", g.created.main, g.ver)
			}
			b.WriteString(" ]")
		}
		b.WriteString("\n")
		return true
	})
	for _, id := range slices.Sorted(maps.Keys(s.leases.leases)) {
		fmt.Fprintf(&b, "lease %d keys %v\n", id, slices.Sorted(maps.Keys(s.leases.leases[id].keys)))
	}
	for _, k := range slices.Sorted(maps.Keys(s.leases.keyLease)) {
		fmt.Fprintf(&b, "key %q lease %d\n", k, s.leases.keyLease[k])
	}
	return b.String()
}

// rangesDump reads every key at every revision the store can serve.
func rangesDump(t testing.TB, s *Store) string {
	t.Helper()
	var b strings.Builder
	for rev := max(s.CompactRev(), 1); rev <= s.Rev(); rev++ {
		resp, err := s.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev})
		if err != nil {
			t.Fatalf("range at %d: %v", rev, err)
		}
		fmt.Fprintf(&b, "@%d:", rev)
		for _, kv := range resp.Kvs {
			fmt.Fprintf(&b, " %s=%s(c%d m%d v%d l%d)", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// logBuffer is a logger for Open whose lines a test can read.
func logBuffer() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// openLogged opens path and returns the store with what Open logged.
func openLogged(t testing.TB, path string) (*Store, string) {
	t.Helper()
	lg, buf := logBuffer()
	s, err := Open(path, Options{Logger: lg, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, buf.String()
}

// withBolt runs f in a write transaction of the closed file at path, as
// another tool (or etcd) would change it.
func withBolt(t testing.TB, path string, f func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(f); err != nil {
		t.Fatal(err)
	}
}

func hasCheckpoint(t testing.TB, path string) bool {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var has bool
	_ = db.View(func(tx *bolt.Tx) error {
		has = tx.Bucket(indexCheckpointBucket) != nil
		return nil
	})
	return has
}

func dropCheckpoint(tx *bolt.Tx) error {
	if tx.Bucket(indexCheckpointBucket) == nil {
		return nil
	}
	return tx.DeleteBucket(indexCheckpointBucket)
}

// closedWithCheckpoint runs the workload on a new store and closes it,
// which writes a checkpoint (its threshold lowered to one key).
func closedWithCheckpoint(t *testing.T) string {
	t.Helper()
	ts := openTest(t, Options{})
	ts.checkpointMinKeys = 1
	checkpointWorkload(ts)
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if !hasCheckpoint(t, ts.Path()) {
		t.Fatal("Close wrote no checkpoint")
	}
	return ts.Path()
}

const (
	fromCheckpoint = "index-from-checkpoint=true"
	rebuiltByScan  = "rebuilding the key index by a scan"
)

// TestIndexCheckpointEqualsScan opens the same file once from the
// checkpoint and once by the scan and compares the index, the revisions,
// the key leases and every read the store can serve.
func TestIndexCheckpointEqualsScan(t *testing.T) {
	path := closedWithCheckpoint(t)
	scanned := filepath.Join(t.TempDir(), "scanned")
	copyFile(t, path, scanned)
	withBolt(t, scanned, dropCheckpoint)

	a, logA := openLogged(t, path)
	if !strings.Contains(logA, fromCheckpoint) {
		t.Fatalf("open did not use the checkpoint; log:\n%s", logA)
	}
	b, logB := openLogged(t, scanned)
	if strings.Contains(logB, fromCheckpoint) {
		t.Fatalf("open without a checkpoint says it used one; log:\n%s", logB)
	}
	if da, db := storeDump(a), storeDump(b); da != db {
		t.Fatalf("index from the checkpoint:\n%s\nindex from the scan:\n%s", da, db)
	}
	if ra, rb := rangesDump(t, a), rangesDump(t, b); ra != rb {
		t.Fatalf("reads from the checkpoint's index:\n%s\nfrom the scan's:\n%s", ra, rb)
	}
	if !strings.Contains(storeDump(a), `lease 7 keys [lease/a]`) {
		t.Fatalf("lease 7 should hold lease/a alone:\n%s", storeDump(a))
	}
	if hasCheckpointOpen(t, a) {
		t.Fatal("Open left the checkpoint in the file")
	}

	// The index read from a checkpoint keeps working: writes, compaction
	// and another close and open.
	ts := &testStore{Store: a, t: t, index: a.ConsistentIndex()}
	ts.checkpointMinKeys = 1
	ts.mustPut("k/001", "after")
	mustDo(ts, del("t/", "t0"))
	mustDo(ts, &pb.CompactionRequest{Revision: ts.Rev() - 1})
	want := storeDump(ts.Store)
	ts.reopen(Options{Logger: slog.New(slog.DiscardHandler)})
	if got := storeDump(ts.Store); got != want {
		t.Fatalf("after a second close and open:\n%s\nwant:\n%s", got, want)
	}
}

// hasCheckpointOpen reports whether the open store's file holds a
// checkpoint bucket.
func hasCheckpointOpen(t testing.TB, s *Store) bool {
	t.Helper()
	var has bool
	if err := s.db.View(func(tx *bolt.Tx) error {
		has = tx.Bucket(indexCheckpointBucket) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return has
}

// TestIndexCheckpointRefused changes a closed file as a tool, an etcd or
// damage would and checks that Open scans and gets the same index as a
// scan of the changed file without the checkpoint.
func TestIndexCheckpointRefused(t *testing.T) {
	putRev := func(key string, rev int64, tomb bool) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			kv := &mvccpb.KeyValue{Key: []byte(key), Value: []byte("etcd"), CreateRevision: rev, ModRevision: rev, Version: 1}
			if tomb {
				kv = &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}
			}
			return tx.Bucket(keyBucket).Put(bucketKey(revision{main: rev}, tomb), encodeKV(kv))
		}
	}
	nextRev := func(tx *bolt.Tx) int64 {
		k, _ := tx.Bucket(keyBucket).Cursor().Last()
		rev, _, _ := parseBucketKey(k)
		return rev.main + 1
	}
	setCI := func(tx *bolt.Tx, d uint64) error {
		meta := tx.Bucket(metaBucket)
		ci := binary.BigEndian.Uint64(meta.Get(consistentIndexKey)) + d
		return meta.Put(consistentIndexKey, binary.BigEndian.AppendUint64(nil, ci))
	}
	flip := func(key []byte, at int) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b := tx.Bucket(indexCheckpointBucket)
			v := bytes.Clone(b.Get(key))
			if at < 0 {
				at += len(v)
			}
			v[at] ^= 0x40
			return b.Put(key, v)
		}
	}
	for _, tc := range []struct {
		name   string
		change func(tx *bolt.Tx) error
	}{
		{"a put by another writer", func(tx *bolt.Tx) error {
			if err := putRev("k/001", nextRev(tx), false)(tx); err != nil {
				return err
			}
			return setCI(tx, 1)
		}},
		{"a delete with the same consistent index", func(tx *bolt.Tx) error { return putRev("k/002", nextRev(tx), true)(tx) }},
		{"only the consistent index", func(tx *bolt.Tx) error { return setCI(tx, 5) }},
		{"a compaction scheduled", func(tx *bolt.Tx) error {
			return tx.Bucket(metaBucket).Put(scheduledCompactKey, bucketKey(revision{main: nextRev(tx) - 1}, false))
		}},
		{"a compaction finished", func(tx *bolt.Tx) error {
			rb := bucketKey(revision{main: nextRev(tx) - 1}, false)
			if err := tx.Bucket(metaBucket).Put(scheduledCompactKey, rb); err != nil {
				return err
			}
			return tx.Bucket(metaBucket).Put(finishedCompactKey, rb)
		}},
		{"a damaged chunk", flip(chunkKey(0), 17)},
		{"a damaged chunk checksum", flip(chunkKey(0), -1)},
		{"a damaged header", flip(checkpointHeaderKey, 3)},
		{"a missing chunk", func(tx *bolt.Tx) error { return tx.Bucket(indexCheckpointBucket).Delete(chunkKey(0)) }},
		{"a missing header", func(tx *bolt.Tx) error { return tx.Bucket(indexCheckpointBucket).Delete(checkpointHeaderKey) }},
		{"an unknown version", func(tx *bolt.Tx) error {
			b := tx.Bucket(indexCheckpointBucket)
			v := bytes.Clone(b.Get(checkpointHeaderKey))
			v[0] = checkpointVersion + 1
			body := v[:len(v)-4]
			return b.Put(checkpointHeaderKey, binary.BigEndian.AppendUint32(body, crc32c(body)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := closedWithCheckpoint(t)
			withBolt(t, path, tc.change)
			scanned := filepath.Join(t.TempDir(), "scanned")
			copyFile(t, path, scanned)
			withBolt(t, scanned, dropCheckpoint)

			got, log := openLogged(t, path)
			if strings.Contains(log, fromCheckpoint) || !strings.Contains(log, rebuiltByScan) {
				t.Fatalf("open used a stale or damaged checkpoint; log:\n%s", log)
			}
			if hasCheckpointOpen(t, got) {
				t.Fatal("Open left the refused checkpoint in the file")
			}
			want, _ := openLogged(t, scanned)
			if g, w := storeDump(got), storeDump(want); g != w {
				t.Fatalf("index:\n%s\nwant (scan):\n%s", g, w)
			}
		})
	}
}

// TestIndexCheckpointCrash checks the two crashes around a checkpoint: a
// crash after an Open that used one (later commits must not be hidden by
// it) and a commit that fails at Close (the index in memory is ahead of
// the file: no checkpoint may be written from it).
func TestIndexCheckpointCrash(t *testing.T) {
	t.Run("crash after writes that followed a checkpointed open", func(t *testing.T) {
		path := closedWithCheckpoint(t)
		lg, buf := logBuffer()
		s, err := Open(path, Options{Logger: lg, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), fromCheckpoint) {
			t.Fatalf("open did not use the checkpoint; log:\n%s", buf)
		}
		ts := &testStore{Store: s, t: t, index: s.ConsistentIndex()}
		ts.mustPut("new", "committed")
		mustDo(ts, del("k/000", ""))
		if err := ts.Commit(); err != nil {
			t.Fatal(err)
		}
		want := storeDump(s)
		// the crash: the file is left as the last commit made it
		if err := s.db.Close(); err != nil {
			t.Fatal(err)
		}
		got, log := openLogged(t, path)
		if strings.Contains(log, fromCheckpoint) {
			t.Fatalf("open after a crash used a checkpoint; log:\n%s", log)
		}
		if g := storeDump(got); g != want {
			t.Fatalf("index after the crash:\n%s\nwant:\n%s", g, want)
		}
	})
	t.Run("final commit fails", func(t *testing.T) {
		ts := openTest(t, Options{})
		ts.checkpointMinKeys = 1
		checkpointWorkload(ts)
		if err := ts.Commit(); err != nil {
			t.Fatal(err)
		}
		want := storeDump(ts.Store)
		ts.mustPut("lost", "never committed")
		ts.commitHook = func() error { return errors.New("disk gone") }
		if err := ts.Close(); err == nil {
			t.Fatal("Close with a failing commit returned no error")
		}
		if hasCheckpoint(t, ts.Path()) {
			t.Fatal("a checkpoint was written after the commit failed")
		}
		got, _ := openLogged(t, ts.Path())
		if g := storeDump(got); g != want {
			t.Fatalf("index after a failed final commit:\n%s\nwant:\n%s", g, want)
		}
	})
}

// TestIndexCheckpointThreshold checks that a small index gets no
// checkpoint (the scan is as fast) and a large one does.
func TestIndexCheckpointThreshold(t *testing.T) {
	ts := openTest(t, Options{})
	ts.checkpointMinKeys = 3
	ts.mustPut("a", "1")
	ts.mustPut("b", "1")
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if hasCheckpoint(t, ts.Path()) {
		t.Fatal("checkpoint written for 2 keys, threshold 3")
	}
	ts.reopen(Options{})
	ts.checkpointMinKeys = 3
	ts.mustPut("c", "1")
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if !hasCheckpoint(t, ts.Path()) {
		t.Fatal("no checkpoint for 3 keys, threshold 3")
	}
}

// TestCloseForReplaceWritesNoCheckpoint: a store closed for a snapshot
// install commits its writes but leaves no checkpoint in the file that is
// about to be replaced.
func TestCloseForReplaceWritesNoCheckpoint(t *testing.T) {
	ts := openTest(t, Options{})
	ts.checkpointMinKeys = 1
	ts.mustPut("a", "1")
	if err := ts.CloseForReplace(); err != nil {
		t.Fatal(err)
	}
	if hasCheckpoint(t, ts.Path()) {
		t.Fatal("CloseForReplace wrote a checkpoint")
	}
	ts.reopen(Options{})
	if got := ts.Rev(); got != 2 {
		t.Fatalf("revision after CloseForReplace and reopen = %d, want 2 (the put committed)", got)
	}
}

// TestIndexCheckpointChunks round-trips an index larger than one chunk.
func TestIndexCheckpointChunks(t *testing.T) {
	ts := openTest(t, Options{})
	ts.checkpointMinKeys = 1
	for i := range 2*checkpointChunkKeys + 5 {
		ts.index++
		if _, err := ts.Put(ts.index, put(fmt.Sprintf("key/%06d", i), "v")); err != nil {
			t.Fatal(err)
		}
	}
	want := storeDump(ts.Store)
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	got, log := openLogged(t, ts.Path())
	if !strings.Contains(log, fromCheckpoint) {
		t.Fatalf("open did not use the checkpoint; log:\n%s", log)
	}
	if g := storeDump(got); g != want {
		t.Fatal("index read from a 3-chunk checkpoint differs from the one written")
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crcTable) }
