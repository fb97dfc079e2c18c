package mvcc

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

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
	var wantAll []CompactHash
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
		wantAll = append([]CompactHash{{Hash: h, Revision: rev, CompactRevision: prev}}, wantAll...)
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
