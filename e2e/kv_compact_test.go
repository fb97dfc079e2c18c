package e2e

import (
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestCompact(t *testing.T) {
	_, cli := startServer(t)
	m := newModel()
	for i := 2; i <= 11; i++ {
		applyPuts(t, cli, m, "k", fmt.Sprintf("v%d", i))
	}
	applyPuts(t, cli, m, "other", "o") // rev 12

	t.Run("physical compaction", func(t *testing.T) {
		resp, err := cli.Compact(ctx(t), 6, clientv3.WithCompactPhysical())
		must(t, err)
		if resp.Header.Revision != m.rev {
			t.Fatalf("compact header revision %d, want %d", resp.Header.Revision, m.rev)
		}
		requireRevision(t, cli, m.rev) // compaction is not a write
	})
	t.Run("read at compacted revision", func(t *testing.T) {
		_, err := cli.Get(ctx(t), "k", clientv3.WithRev(5))
		requireErr(t, err, rpctypes.ErrGRPCCompacted)
		_, err = cli.Get(ctx(t), "k", clientv3.WithRev(1))
		requireErr(t, err, rpctypes.ErrGRPCCompacted)
	})
	t.Run("read at the compaction revision", func(t *testing.T) {
		r, err := cli.Get(ctx(t), "k", clientv3.WithRev(6))
		must(t, err)
		requireKVs(t, r.Kvs, m.at(6, "k"))
		r, err = cli.Get(ctx(t), "\x00", clientv3.WithFromKey(), clientv3.WithRev(7))
		must(t, err)
		requireKVs(t, r.Kvs, m.at(7, "k"))
	})
	t.Run("current read", func(t *testing.T) {
		r, err := cli.Get(ctx(t), "\x00", clientv3.WithFromKey())
		must(t, err)
		requireKVs(t, r.Kvs, m.now("k", "other"))
	})
	t.Run("future revision", func(t *testing.T) {
		_, err := cli.Get(ctx(t), "k", clientv3.WithRev(m.rev+1))
		requireErr(t, err, rpctypes.ErrGRPCFutureRev)
	})
	t.Run("compact again at or below", func(t *testing.T) {
		_, err := cli.Compact(ctx(t), 6)
		requireErr(t, err, rpctypes.ErrGRPCCompacted)
		_, err = cli.Compact(ctx(t), 3)
		requireErr(t, err, rpctypes.ErrGRPCCompacted)
	})
	t.Run("compact a future revision", func(t *testing.T) {
		_, err := cli.Compact(ctx(t), m.rev+10)
		requireErr(t, err, rpctypes.ErrGRPCFutureRev)
	})
	t.Run("compacted read inside a txn", func(t *testing.T) {
		_, err := cli.Txn(ctx(t)).Then(clientv3.OpGet("k", clientv3.WithRev(4))).Commit()
		requireErr(t, err, rpctypes.ErrGRPCCompacted)
	})
	t.Run("non-physical compaction at the current revision", func(t *testing.T) {
		_, err := cli.Compact(ctx(t), m.rev)
		must(t, err)
		_, err = cli.Get(ctx(t), "k", clientv3.WithRev(m.rev-1))
		requireErr(t, err, rpctypes.ErrGRPCCompacted)
		r, err := cli.Get(ctx(t), "k", clientv3.WithRev(m.rev))
		must(t, err)
		requireKVs(t, r.Kvs, m.now("k"))
	})
	t.Run("writes continue after compaction", func(t *testing.T) {
		applyPuts(t, cli, m, "k", "after")
		requireKVs(t, mustGet(t, cli, "k"), m.now("k"))
	})
}

func TestStatusAndMembers(t *testing.T) {
	s, cli := startServer(t)
	_, err := cli.Put(ctx(t), "x", "y")
	must(t, err)
	st, err := cli.Status(ctx(t), s.Endpoint())
	must(t, err)
	if st.Version == "" || st.DbSize <= 0 || st.RaftIndex == 0 || st.RaftTerm == 0 {
		t.Fatalf("status: version=%q dbSize=%d raftIndex=%d raftTerm=%d", st.Version, st.DbSize, st.RaftIndex, st.RaftTerm)
	}
	if st.Header == nil || st.Header.MemberId == 0 || st.Leader != st.Header.MemberId {
		t.Fatalf("status: leader %x, header %v", st.Leader, st.Header)
	}
	if st.Header.Revision != 2 {
		t.Fatalf("status header revision %d, want 2", st.Header.Revision)
	}

	ml, err := cli.MemberList(ctx(t))
	must(t, err)
	if len(ml.Members) != 1 {
		t.Fatalf("%d members, want 1", len(ml.Members))
	}
	mem := ml.Members[0]
	if mem.ID != st.Header.MemberId || mem.Name != s.Name() || mem.IsLearner {
		t.Fatalf("member id=%x name=%q learner=%v, want id=%x name=%q", mem.ID, mem.Name, mem.IsLearner, st.Header.MemberId, s.Name())
	}
	if fmt.Sprint(mem.PeerURLs) != fmt.Sprint([]string{s.PeerURL()}) || fmt.Sprint(mem.ClientURLs) != fmt.Sprint([]string{s.Endpoint()}) {
		t.Fatalf("member urls peer=%v client=%v, want %s %s", mem.PeerURLs, mem.ClientURLs, s.PeerURL(), s.Endpoint())
	}
	if ml.Header.MemberId != mem.ID || ml.Header.ClusterId != st.Header.ClusterId {
		t.Fatalf("member list header %v", ml.Header)
	}
}
