package memberstate

import (
	"testing"
	"time"
)

// TestIDsMatchEtcd uses ids real etcd 3.4.23 chose for
// --initial-cluster default=http://127.0.0.1:23800 and the default token.
func TestIDsMatchEtcd(t *testing.T) {
	id := MemberID([]string{"http://127.0.0.1:23800"}, "etcd-cluster")
	if id != 3319814642761637952 {
		t.Fatalf("member id %d, etcd chose 3319814642761637952", id)
	}
	if cid := ClusterID([]uint64{id}); cid != 324952591200643719 {
		t.Fatalf("cluster id %d, etcd chose 324952591200643719", cid)
	}
}

func TestRequestIDsUnique(t *testing.T) {
	var g idGenerator
	g.init(7, time.Unix(1700000000, 0))
	seen := map[uint64]bool{}
	for i := 0; i < 10000; i++ {
		id := g.next()
		if seen[id] || id>>suffixLen != 7 {
			t.Fatalf("id %x repeated or without member prefix", id)
		}
		seen[id] = true
	}
}
