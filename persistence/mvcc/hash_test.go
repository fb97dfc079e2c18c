package mvcc

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestHashKVIgnoresWhereDataSits: the same history hashes the same whether
// it is pending, committed or reopened, and a compaction changes the hash
// the same way everywhere.
func TestHashKVIgnoresWhereDataSits(t *testing.T) {
	open := func(dir string) *Store {
		s, err := Open(filepath.Join(dir, "db"), Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	apply := func(s *Store) {
		idx := uint64(0)
		for i := 0; i < 20; i++ {
			idx++
			if _, err := s.Put(idx, &pb.PutRequest{Key: []byte{'k', byte('a' + i%5)}, Value: []byte{byte(i)}}); err != nil {
				t.Fatal(err)
			}
		}
		idx++
		if _, err := s.DeleteRange(idx, &pb.DeleteRangeRequest{Key: []byte("kb")}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := open(t.TempDir()), open(t.TempDir())
	defer a.Close()
	apply(a)
	apply(b)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	ha, _, _, err := a.HashKV(0)
	if err != nil {
		t.Fatal(err)
	}
	hb, _, _, _ := b.HashKV(0)
	if ha != hb {
		t.Fatalf("pending hash %x, committed hash %x", ha, hb)
	}
	old, _, _, _ := a.HashKV(10)
	if old == ha {
		t.Fatal("hash at revision 10 equals the hash at the current revision")
	}
	if _, err := a.Compact(100, &pb.CompactionRequest{Revision: 15}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Compact(100, &pb.CompactionRequest{Revision: 15}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(b.Path())
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = open(dir)
	defer b.Close()
	ha2, _, ca, _ := a.HashKV(0)
	hb2, _, cb, _ := b.HashKV(0)
	if ha2 != hb2 || ca != 15 || cb != 15 {
		t.Fatalf("after compaction: pending %x (compact %d), reopened %x (compact %d)", ha2, ca, hb2, cb)
	}
	if ha2 == ha {
		t.Fatal("compaction did not change the hash")
	}
	if _, _, _, err := a.HashKV(14); !errors.Is(err, ErrCompacted) {
		t.Fatalf("hash below the compaction revision: %v, want ErrCompacted", err)
	}
}

// TestCompactHashes: a compaction keeps the hash of the history up to its
// revision, taken before it applied, with the compact revision before it;
// HashKV answers it at that revision (etcd 3.6.8 does, where a hash below
// it is refused), the newest ten are kept, and a reopened store has none.
func TestCompactHashes(t *testing.T) {
	ts := openTest(t, Options{})
	for i := range 40 {
		ts.mustPut(fmt.Sprintf("k%d", i%3), fmt.Sprint(i))
	}
	want := map[int64]uint32{}
	var wantAll []KeyHash
	prev := int64(-1)
	for rev := int64(5); rev <= 38; rev += 3 {
		h, _, _, err := ts.HashKV(rev)
		if err != nil {
			t.Fatal(err)
		}
		want[rev] = h
		if _, err := ts.do(&pb.CompactionRequest{Revision: rev}); err != nil {
			t.Fatal(err)
		}
		wantAll = append([]KeyHash{{Hash: h, Revision: rev, CompactRevision: prev}}, wantAll...)
		prev = rev
	}
	got := ts.CompactHashes()
	if !slices.Equal(got, wantAll[:10]) {
		t.Fatalf("compact hashes %v, want the newest ten %v", got, wantAll[:10])
	}
	h, current, compacted, err := ts.HashKV(35)
	if err != nil || h != want[35] || compacted != 32 || current != 41 {
		t.Fatalf("HashKV(35) = %d, %d, %d, %v; want the stored %d, 41, 32", h, current, compacted, err, want[35])
	}
	if _, _, _, err := ts.HashKV(5); !errors.Is(err, ErrCompacted) {
		t.Fatalf("HashKV(5), no longer kept: %v, want ErrCompacted", err)
	}
	ts.reopen(Options{})
	if got := ts.CompactHashes(); len(got) != 0 {
		t.Fatalf("reopened store keeps %v", got)
	}
}

// TestHashKVMatchesEtcd replays a history recorded against etcd 3.4.23 and
// checks the hashes etcdctl endpoint hashkv printed there.
func TestHashKVMatchesEtcd(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// put a 1; put b 2; put a 3; del b
	steps := []func(uint64) error{
		func(i uint64) error {
			_, err := s.Put(i, &pb.PutRequest{Key: []byte("a"), Value: []byte("1")})
			return err
		},
		func(i uint64) error {
			_, err := s.Put(i, &pb.PutRequest{Key: []byte("b"), Value: []byte("2")})
			return err
		},
		func(i uint64) error {
			_, err := s.Put(i, &pb.PutRequest{Key: []byte("a"), Value: []byte("3")})
			return err
		},
		func(i uint64) error { _, err := s.DeleteRange(i, &pb.DeleteRangeRequest{Key: []byte("b")}); return err },
	}
	for i, step := range steps {
		if err := step(uint64(i + 1)); err != nil {
			t.Fatal(err)
		}
	}
	if h, _, _, _ := s.HashKV(0); h != 1125682900 {
		t.Fatalf("hash %d, etcd 3.4.23 printed 1125682900", h)
	}
	if _, err := s.Compact(10, &pb.CompactionRequest{Revision: 3}); err != nil {
		t.Fatal(err)
	}
	if h, _, c, _ := s.HashKV(0); h != 1468967122 || c != 3 {
		t.Fatalf("after compact 3: hash %d (compact %d), etcd 3.4.23 printed 1468967122", h, c)
	}
}

// TestHashKVCommitInBoltAndMemory: the committing batch reaches bbolt
// before it leaves memory; a hash taken in between counts it once.
func TestHashKVCommitInBoltAndMemory(t *testing.T) {
	ts := openTest(t, Options{})
	ts.mustPut("a", "1")
	ts.mustPut("b", "2")
	want, _, _, err := ts.HashKV(0)
	if err != nil {
		t.Fatal(err)
	}
	b := ts.swap()
	if err := ts.db.Update(func(tx *bolt.Tx) error { return ts.fillTx(tx, b, 0) }); err != nil {
		t.Fatal(err)
	}
	// Committed to bbolt, still the committing batch: the moment before
	// writeBatch takes the lock to drop it.
	got, _, _, err := ts.HashKV(0)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("hash %d while the batch is in bbolt and in memory, want %d", got, want)
	}
	ts.mu.Lock()
	ts.committing = nil
	ts.mu.Unlock()
}

// TestHashByRevMatchesEtcd36 replays e2e's TestHashKVDifferential history
// and checks every answer against what etcd 3.6.8 gave there: the hash,
// the revision hashed, its compact revision and the current revision, or
// the error. It pins etcd 3.6's rules: revision 0 is the current one, the
// compact revision itself is hashed, a negative revision hashes nothing,
// a kept compaction hash answers even below the last compaction, a
// tombstone at the compact revision does not count, and a compaction's
// hash uses the compaction's keep set (step "hash 12" after "compact
// 12", where only tombstones are kept).
func TestHashByRevMatchesEtcd36(t *testing.T) {
	ts := openTest(t, Options{})
	type step struct {
		req  proto.Message // nil: hash at rev; "reopen" when reopen is set
		rev  int64
		want string
	}
	const (
		future    = "mvcc: required revision is a future revision"
		compacted = "mvcc: required revision has been compacted"
	)
	h := func(rev int64, want string) step { return step{rev: rev, want: want} }
	pk := func(k, v string) step { return step{req: put(k, v)} }
	dk := func(k, end string) step { return step{req: del(k, end)} }
	cp := func(rev int64) step { return step{req: &pb.CompactionRequest{Revision: rev}} }
	reopen := step{want: "reopen"}
	steps := []step{
		pk("a", "1"), pk("b", "2"), pk("a", "3"), dk("b", ""), pk("c", "4"), pk("b", "5"), dk("a", ""), pk("d", "6"), pk("c", "7"),
		h(0, "2551608786 10/-1 @10"), h(-1, "1084519789 -1/-1 @10"), h(1, "1084519789 1/-1 @10"), h(5, "1125682900 5/-1 @10"),
		h(8, "3260977121 8/-1 @10"), h(10, "2551608786 10/-1 @10"), h(11, future),
		cp(5),
		h(0, "4066828773 10/5 @10"), h(4, compacted), h(5, "1125682900 5/-1 @10"), h(6, "168415639 6/5 @10"),
		h(-3, "1084519789 -3/5 @10"), h(11, future),
		cp(7),
		h(0, "3231333032 10/7 @10"), h(5, "1125682900 5/-1 @10"), h(6, compacted), h(7, "2237393992 7/5 @10"),
		h(8, "2701200358 8/7 @10"), h(10, "3231333032 10/7 @10"),
		pk("e", "8"), dk("\x00", "\x00"), cp(12),
		h(12, "313424940 12/7 @12"), h(0, "1084519789 12/12 @12"), h(11, compacted), h(7, "2237393992 7/5 @12"), h(13, future),
		reopen,
		h(5, compacted), h(7, compacted), h(11, compacted), h(12, "1084519789 12/12 @12"), h(0, "1084519789 12/12 @12"),
		h(-1, "1084519789 -1/12 @12"), h(13, future),
		pk("f", "9"), pk("b", "10"), cp(13),
		h(13, "1329870930 13/12 @14"), h(12, compacted), h(0, "341181043 14/13 @14"), h(14, "341181043 14/13 @14"), h(15, future),
		reopen,
		h(13, "1329870930 13/13 @14"), h(12, compacted), h(0, "341181043 14/13 @14"),
	}
	for i, st := range steps {
		switch {
		case st.want == "reopen":
			ts.reopen(Options{})
		case st.req != nil:
			if _, err := ts.do(st.req); err != nil {
				t.Fatalf("step %d %v: %v", i, st.req, err)
			}
		default:
			kh, current, err := ts.HashByRev(st.rev)
			got := fmt.Sprintf("%d %d/%d @%d", kh.Hash, kh.Revision, kh.CompactRevision, current)
			if err != nil {
				got = err.Error()
			}
			if got != st.want {
				t.Errorf("step %d: HashByRev(%d) = %s, etcd 3.6.8 answered %s", i, st.rev, got, st.want)
			}
		}
	}
}

// TestHashSkipsTombstoneAtCompactRev: troupe, as etcd since 3.5.16,
// keeps the tombstone a compaction lands on, where etcd 3.4 removed it; a
// store opened on a file without it (as etcd 3.4 left it) hashes as one
// with it, at the compact revision, at the current one and at the next
// compaction.
func TestHashSkipsTombstoneAtCompactRev(t *testing.T) {
	kept, dropped := openTest(t, Options{}), openTest(t, Options{})
	var tombs [][2][]byte
	for _, ts := range []*testStore{kept, dropped} {
		ts.mustPut("a", "1")
		ts.mustPut("b", "2")
		// Every key deleted: nothing is kept at 4, so only the tombstone
		// rule leaves the tombstones out.
		if _, err := ts.do(del("a", "c")); err != nil { // 4
			t.Fatal(err)
		}
		if err := ts.Commit(); err != nil {
			t.Fatal(err)
		}
		if tombs == nil {
			if err := ts.db.View(func(tx *bolt.Tx) error {
				return tx.Bucket(keyBucket).ForEach(func(k, v []byte) error {
					if r, tomb, err := parseBucketKey(k); err == nil && tomb && r.main == 4 {
						tombs = append(tombs, [2][]byte{slices.Clone(k), slices.Clone(v)})
					}
					return nil
				})
			}); err != nil {
				t.Fatal(err)
			}
			if len(tombs) != 2 {
				t.Fatalf("%d tombstones at 4, want 2", len(tombs))
			}
		}
		if _, err := ts.do(&pb.CompactionRequest{Revision: 4}); err != nil {
			t.Fatal(err)
		}
		if err := ts.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := dropped.db.Update(func(tx *bolt.Tx) error {
		for _, kv := range tombs {
			if err := tx.Bucket(keyBucket).Delete(kv[0]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	kept.reopen(Options{})
	dropped.reopen(Options{})
	same := func(what string, rev int64) {
		t.Helper()
		hp, cp, errp := dropped.HashByRev(rev)
		hk, ck, errk := kept.HashByRev(rev)
		if hp != hk || cp != ck || !errors.Is(errk, errp) || errp != nil {
			t.Fatalf("%s: without the tombstone %+v @%d %v, with it %+v @%d %v", what, hp, cp, errp, hk, ck, errk)
		}
	}
	same("at the compact revision", 4)
	same("at the current revision", 0)
	for _, ts := range []*testStore{kept, dropped} {
		ts.mustPut("c", "3")
		if _, err := ts.do(&pb.CompactionRequest{Revision: 5}); err != nil {
			t.Fatal(err)
		}
	}
	same("kept at the next compaction", 5)
	same("after the next compaction", 0)
}

// TestCompactKeep: a compaction keeps the newest revision at or below its
// revision of the generation alive then, a tombstone at its revision
// included; a hash's keep set (keepAt) leaves that tombstone out.
func TestCompactKeep(t *testing.T) {
	ki := &keyIndex{key: "k"}
	ki.put(revision{main: 2}, revision{main: 2}, 1)
	ki.put(revision{main: 3}, revision{main: 2}, 1)
	ki.tombstone(revision{main: 5})
	ki.put(revision{main: 7}, revision{main: 7}, 1)
	for _, c := range []struct {
		at       int64
		want     int64 // 0: none
		tomb     bool
		keepWant int64
	}{
		{1, 0, false, 0}, {2, 2, false, 2}, {4, 3, false, 3}, {5, 5, true, 0},
		{6, 0, false, 0}, {7, 7, false, 7}, {9, 7, false, 7},
	} {
		r, tomb, ok := ki.compactKeep(c.at)
		if (ok && (r.main != c.want || tomb != c.tomb)) || (!ok && c.want != 0) {
			t.Errorf("compactKeep(%d) = %v %v %v, want %d tomb %v", c.at, r, tomb, ok, c.want, c.tomb)
		}
		k, ok := ki.keepAt(c.at)
		if (ok && k.main != c.keepWant) || (!ok && c.keepWant != 0) {
			t.Errorf("keepAt(%d) = %v %v, want %d", c.at, k, ok, c.keepWant)
		}
	}
}
