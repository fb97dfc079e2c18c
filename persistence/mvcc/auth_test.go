package mvcc

import (
	"errors"
	"testing"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/troupedb/troupe/persistence/auth"
)

func loadAuthState(t *testing.T, s *Store) *auth.State {
	t.Helper()
	kvs, err := s.LoadAuth()
	if err != nil {
		t.Fatal(err)
	}
	st, err := auth.Load(kvs)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestApplyAuth: a new backend holds etcd's initial auth revision 1; auth
// writes are seen before and after the commit (deletes included), survive
// a reopen, a replayed entry is skipped, and a refused request still moves
// the index.
func TestApplyAuth(t *testing.T) {
	ts := openTest(t, Options{})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	st := loadAuthState(t, ts.Store)
	if st.Revision() != 1 || st.Enabled() {
		t.Fatalf("new backend: revision %d enabled %v, want 1 false", st.Revision(), st.Enabled())
	}
	apply := func(idx uint64, req *pb.InternalRaftRequest) {
		t.Helper()
		next, _, ops, err := st.Apply(req)
		must(err)
		must(ts.ApplyAuth(idx, ops))
		st = next
	}
	apply(1, &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "alice", HashedPassword: "aGFzaA=="}})
	apply(2, &pb.InternalRaftRequest{AuthUserAdd: &pb.AuthUserAddRequest{Name: "bob", HashedPassword: "aGFzaA=="}})
	if got := loadAuthState(t, ts.Store); got.Revision() != 3 || !has(got, "alice") || !has(got, "bob") {
		t.Fatalf("pending: revision %d", got.Revision())
	}
	must(ts.Commit())
	apply(3, &pb.InternalRaftRequest{AuthUserDelete: &pb.AuthUserDeleteRequest{Name: "bob"}})
	if got := loadAuthState(t, ts.Store); got.Revision() != 4 || !has(got, "alice") || has(got, "bob") {
		t.Fatalf("after delete: revision %d", got.Revision())
	}
	if err := ts.ApplyAuth(3, nil); !errors.Is(err, ErrAlreadyApplied) {
		t.Fatalf("replay: %v", err)
	}
	must(ts.ApplyAuth(4, nil)) // a refused request: only the index
	ts.reopen(Options{})
	got := loadAuthState(t, ts.Store)
	if got.Revision() != 4 || !has(got, "alice") || has(got, "bob") || ts.ConsistentIndex() != 4 {
		t.Fatalf("after reopen: revision %d index %d", got.Revision(), ts.ConsistentIndex())
	}
	// etcd's encoding: 8 bytes big-endian.
	must(ts.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(auth.BucketAuth).Get(auth.KeyRevision); string(v) != "\x00\x00\x00\x00\x00\x00\x00\x04" {
			t.Fatalf("authRevision %x", v)
		}
		return nil
	}))
}

func has(s *auth.State, user string) bool {
	_, ok := s.User(user)
	return ok
}

// TestDefragKeepsAuth: defragmenting keeps the auth buckets, pending
// writes included.
func TestDefragKeepsAuth(t *testing.T) {
	ts := openTest(t, Options{})
	st := loadAuthState(t, ts.Store)
	next, _, ops, err := st.Apply(&pb.InternalRaftRequest{AuthRoleAdd: &pb.AuthRoleAddRequest{Name: "r"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.ApplyAuth(1, ops); err != nil {
		t.Fatal(err)
	}
	if err := ts.Defrag(); err != nil {
		t.Fatal(err)
	}
	got := loadAuthState(t, ts.Store)
	if _, ok := got.Role("r"); !ok || got.Revision() != next.Revision() {
		t.Fatalf("after defrag: role %v revision %d", ok, got.Revision())
	}
}
