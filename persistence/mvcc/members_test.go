package mvcc

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/troupedb/troupe/persistence/membership"
)

var (
	m1 = membership.Member{ID: 0xed8c37d1f56cc743, Name: "m1", PeerURLs: []string{"http://127.0.0.1:42311"}, ClientURLs: []string{"http://127.0.0.1:42310"}}
	m2 = membership.Member{ID: 0xabde6fb3fb46a68e, PeerURLs: []string{"http://127.0.0.1:42321"}, IsLearner: true}
)

func loadMembers(t *testing.T, s *Store) ([]membership.Member, []uint64) {
	t.Helper()
	ms, removed, err := s.LoadMembers()
	if err != nil {
		t.Fatal(err)
	}
	return ms, removed
}

// TestApplyMembers: changes are visible at once (pending), survive a
// commit and a reopen, and a replayed index changes nothing.
func TestApplyMembers(t *testing.T) {
	ts := openTest(t, Options{})
	if err := ts.ApplyMembers(5, []membership.Member{m1, m2}, nil); err != nil {
		t.Fatal(err)
	}
	ms, removed := loadMembers(t, ts.Store)
	if want := []membership.Member{m2, m1}; !reflect.DeepEqual(ms, want) || len(removed) != 0 {
		t.Fatalf("pending: members %+v removed %v, want %+v", ms, removed, want)
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := ts.ApplyMembers(6, nil, []uint64{m2.ID}); err != nil {
		t.Fatal(err)
	}
	if err := ts.ApplyMembers(6, []membership.Member{m2}, nil); !errors.Is(err, ErrAlreadyApplied) {
		t.Fatalf("replayed index: %v, want ErrAlreadyApplied", err)
	}
	check := func(when string) {
		ms, removed := loadMembers(t, ts.Store)
		if !reflect.DeepEqual(ms, []membership.Member{m1}) || !reflect.DeepEqual(removed, []uint64{m2.ID}) {
			t.Fatalf("%s: members %+v removed %v", when, ms, removed)
		}
	}
	check("pending over bbolt")
	ts.reopen(Options{})
	check("after reopen")
	if ci := ts.ConsistentIndex(); ci != 6 {
		t.Fatalf("consistent index %d, want 6", ci)
	}
	// A conf change that failed validation records only its index.
	if err := ts.ApplyMembers(7, nil, nil); err != nil {
		t.Fatal(err)
	}
	ts.reopen(Options{})
	if ci := ts.ConsistentIndex(); ci != 7 {
		t.Fatalf("consistent index %d, want 7", ci)
	}
	check("after an empty change")
}

// TestApplyMembersWhileCommitting: a member change made while the batch
// before it is being written is read from memory and lands with the next
// commit.
func TestApplyMembersWhileCommitting(t *testing.T) {
	ts := openTest(t, Options{})
	gate := holdFirstCommit(ts)
	if err := ts.ApplyMembers(1, []membership.Member{m1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := ts.CommitAsync(); err != nil {
		t.Fatal(err)
	}
	<-gate.entered
	if err := ts.ApplyMembers(2, []membership.Member{m2}, nil); err != nil {
		t.Fatal(err)
	}
	if ms, _ := loadMembers(t, ts.Store); len(ms) != 2 {
		t.Fatalf("members while committing: %+v", ms)
	}
	gate.open()
	ts.reopen(Options{})
	if ms, _ := loadMembers(t, ts.Store); len(ms) != 2 {
		t.Fatalf("members after reopen: %+v", ms)
	}
}

// TestMembersEtcdFormat reads the membership of a snapshot real etcd
// 3.4.23 wrote (testdata/etcd34-members.db: a 3-member cluster, a learner
// added, updated and removed, then a learner m4 added and started), and
// checks that what troupe writes is byte for byte what etcd stored.
func TestMembersEtcdFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	copyFile(t, "testdata/etcd34-members.db", path)
	want := map[string]string{}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(membersBucket).ForEach(func(k, v []byte) error {
			want[string(k)] = string(v)
			return nil
		})
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms, removed := loadMembers(t, s)
	if !reflect.DeepEqual(removed, []uint64{0x226a2d210848203a}) {
		t.Fatalf("removed %x", removed)
	}
	if len(ms) != 4 || !ms[0].IsLearner || ms[0].Name != "m4" || ms[3].Name != "m1" {
		t.Fatalf("members %+v", ms)
	}
	for _, m := range ms {
		if got := string(m.Marshal()); got != want[string(membership.Key(m.ID))] {
			t.Errorf("member %x: troupe writes %s, etcd stored %s", m.ID, got, want[string(membership.Key(m.ID))])
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
