//go:build !race

// Several remotes in one process: not under -race (see remote_test.go).

package peers

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/troupedb/troupe/persistence/mvcc"
)

// TestRemoteFetchHashKVs asks the other members for their hash over the
// peer remote: an answer, etcd's compacted and future-revision errors, an
// unreachable member, and a member of another cluster.
func TestRemoteFetchHashKVs(t *testing.T) {
	hash := func(rev int64) (uint32, int64, int64, error) {
		switch {
		case rev == 0:
			rev = 7
			fallthrough
		case rev > 2 && rev <= 7:
			return 0xabc0 + uint32(rev), 7, 2, nil
		case rev <= 2:
			return 0, 7, 2, mvcc.ErrCompacted
		}
		return 0, 7, 2, mvcc.ErrFutureRev
	}
	m1 := startRemoteMember(t, 1, "127.0.0.1:0", Config{})
	m2 := startRemoteMember(t, 2, "127.0.0.1:0", Config{Member: &testMember{hash: hash}})
	m4 := startRemoteMember(t, 4, "127.0.0.1:0", Config{ClusterID: 0xbad, Member: &testMember{hash: hash}})
	peers := map[uint64][]string{
		1: {peerURL(m1)},
		2: {"http://" + freeAddress(t), peerURL(m2)}, // the first URL is dead: the second answers
		3: {"http://" + freeAddress(t)},
		4: {peerURL(m4)},
	}
	fetch := func(rev int64) []PeerHash {
		return FetchHashKVs(context.Background(), m1.system, nil, testCluster, 1, peers, rev, 2*time.Second)
	}

	start := time.Now()
	got := fetch(5)
	if d := time.Since(start); d > time.Second {
		t.Errorf("fetch took %s; members are asked at once, and nothing listens at the dead URLs", d)
	}
	if len(got) != 3 || got[0].ID != 2 || got[1].ID != 3 || got[2].ID != 4 {
		t.Fatalf("answers %+v, want members 2, 3, 4 in order", got)
	}
	r := got[0].Resp
	if got[0].Err != nil || r == nil {
		t.Fatalf("member 2: %+v", got[0])
	}
	if r.GetHash() != 0xabc5 || r.GetHashRevision() != 5 || r.GetRevision() != 7 || r.GetCompactRevision() != 2 || r.GetMemberId() != 2 || r.GetClusterId() != testCluster {
		t.Fatalf("member 2 answered %v", r)
	}
	if got[1].Resp != nil || got[1].Err == nil {
		t.Fatalf("unreachable member 3: %+v", got[1])
	}
	if got[2].Resp != nil || !errors.Is(got[2].Err, ErrClusterIDMismatch) {
		t.Fatalf("member 4 of another cluster: %+v", got[2])
	}

	if got := fetch(0)[0]; got.Resp.GetHash() != 0xabc7 || got.Resp.GetHashRevision() != 7 {
		t.Fatalf("rev 0 hashes the current revision: %+v", got)
	}
	if got := fetch(1)[0]; !errors.Is(got.Err, mvcc.ErrCompacted) {
		t.Fatalf("compacted: %+v", got)
	}
	if got := fetch(8)[0]; !errors.Is(got.Err, mvcc.ErrFutureRev) {
		t.Fatalf("future revision: %+v", got)
	}

	// A canceled fetch does not wait for a member that listens but does
	// not answer.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	cctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	got = FetchHashKVs(cctx, m1.system, nil, testCluster, 1, map[uint64][]string{5: {"http://" + mute.Addr().String()}}, 5, 10*time.Second)
	if d := time.Since(start); d > 5*time.Second || !errors.Is(got[0].Err, context.DeadlineExceeded) {
		t.Fatalf("canceled after 200ms: returned after %s with %+v", d, got[0])
	}
}
