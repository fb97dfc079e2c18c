package mvcc

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/troupedb/troupe/persistence/membership"
)

// TestReplaceMembers restores the etcd 3.4 file of TestMembersEtcdFormat
// (4 members, one removed id), with a key put, as a new 2-member cluster:
// the members are exactly the new ones, no id is removed, the consistent
// index is the one given, and the key is still there.
func TestReplaceMembers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	copyFile(t, "testdata/etcd34-members.db", path)
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	putResp, err := s.Put(s.ConsistentIndex()+1, put("k", "v"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	members := []membership.Member{
		{ID: 0xa1, Name: "a", PeerURLs: []string{"http://10.0.0.1:2380"}},
		{ID: 0xb2, Name: "b", PeerURLs: []string{"http://10.0.0.2:2380"}},
	}
	if err := ReplaceMembers(path, members, 2); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms, removed := loadMembers(t, s)
	if !reflect.DeepEqual(ms, members) || len(removed) != 0 {
		t.Fatalf("members %+v removed %x, want %+v and none removed", ms, removed, members)
	}
	if ci := s.ConsistentIndex(); ci != 2 {
		t.Fatalf("consistent index %d, want 2", ci)
	}
	r, err := s.Range(rng("k", ""))
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" || r.Header.Revision != putResp.Header.Revision {
		t.Fatalf("range k after restore: %v, %v; want v at revision %d", r, err, putResp.Header.Revision)
	}
}

func TestReplaceMembersMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-dir", "db")
	err := ReplaceMembers(path, nil, 1)
	if err == nil || !strings.HasPrefix(err.Error(), "open "+path+": ") {
		t.Fatalf("ReplaceMembers of a missing dir: %v, want open %s: ...", err, path)
	}
}
