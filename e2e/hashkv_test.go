package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// hashStep is one step of the HashKV script: a request (do) or, with
// restart, a restart of the server on its data dir, which forgets the
// hashes kept at compactions.
type hashStep struct {
	name    string
	restart bool
	do      func(context.Context, *grpc.ClientConn) (proto.Message, error)
}

func hashAt(rev int64) hashStep {
	return hashStep{name: fmt.Sprintf("hashkv %d", rev), do: func(c context.Context, cc *grpc.ClientConn) (proto.Message, error) {
		return pb.NewMaintenanceClient(cc).HashKV(c, &pb.HashKVRequest{Revision: rev})
	}}
}

func kvStep(name string, do func(context.Context, pb.KVClient) (proto.Message, error)) hashStep {
	return hashStep{name: name, do: func(c context.Context, cc *grpc.ClientConn) (proto.Message, error) {
		return do(c, pb.NewKVClient(cc))
	}}
}

func hashAll(revs ...int64) []hashStep {
	var out []hashStep
	for _, r := range revs {
		out = append(out, hashAt(r))
	}
	return out
}

// hashScript is a history with deletes, a compaction at a tombstone, one
// at a put and one at a revision where only tombstones are left, and
// HashKV at the current revision (0), at and below each compaction, at
// kept compaction hashes, at negative and future revisions, before and
// after restarts. Revisions in comments.
func hashScript() []hashStep {
	physical := func(rev int64) hashStep {
		return kvStep(fmt.Sprintf("compact %d", rev), compact(&pb.CompactionRequest{Revision: rev, Physical: true}))
	}
	restart := hashStep{name: "restart", restart: true}
	s := []hashStep{
		kvStep("put a", put(&pb.PutRequest{Key: b("a"), Value: b("1")})), // 2
		kvStep("put b", put(&pb.PutRequest{Key: b("b"), Value: b("2")})), // 3
		kvStep("put a", put(&pb.PutRequest{Key: b("a"), Value: b("3")})), // 4
		kvStep("del b", del(&pb.DeleteRangeRequest{Key: b("b")})),        // 5
		kvStep("put c", put(&pb.PutRequest{Key: b("c"), Value: b("4")})), // 6
		kvStep("put b", put(&pb.PutRequest{Key: b("b"), Value: b("5")})), // 7
		kvStep("del a", del(&pb.DeleteRangeRequest{Key: b("a")})),        // 8
		kvStep("put d", put(&pb.PutRequest{Key: b("d"), Value: b("6")})), // 9
		kvStep("put c", put(&pb.PutRequest{Key: b("c"), Value: b("7")})), // 10
	}
	s = append(s, hashAll(0, -1, 1, 5, 8, 10, 11)...)
	s = append(s, physical(5)) // at the tombstone of b
	s = append(s, hashAll(0, 4, 5, 6, -3, 11)...)
	s = append(s, physical(7)) // at a put
	s = append(s, hashAll(0, 5, 6, 7, 8, 10)...)
	s = append(s,
		kvStep("put e", put(&pb.PutRequest{Key: b("e"), Value: b("8")})),                    // 11
		kvStep("del all", del(&pb.DeleteRangeRequest{Key: b("\x00"), RangeEnd: b("\x00")})), // 12
		physical(12), // only tombstones are left at 12
	)
	s = append(s, hashAll(12, 0, 11, 7, 13)...)
	s = append(s, restart)
	s = append(s, hashAll(5, 7, 11, 12, 0, -1, 13)...)
	s = append(s,
		kvStep("put f", put(&pb.PutRequest{Key: b("f"), Value: b("9")})),  // 13
		kvStep("put b", put(&pb.PutRequest{Key: b("b"), Value: b("10")})), // 14
		physical(13),
	)
	s = append(s, hashAll(13, 12, 0, 14, 15)...)
	s = append(s, restart)
	s = append(s, hashAll(13, 12, 0)...)
	return s
}

func runHashScript(t *testing.T, s *e2etest.Server) []string {
	cc := s.Client(t).ActiveConnection()
	var out []string
	for _, st := range hashScript() {
		if st.restart {
			s.Restart()
			cc = s.Client(t).ActiveConnection()
			out = append(out, "restarted")
			continue
		}
		resp, err := st.do(ctx(t), cc)
		out = append(out, answerString(t, resp, err))
	}
	return out
}

// TestHashKVDifferential runs hashScript against etcd and against the
// server under test and requires the same answers: hash, hash_revision,
// compact_revision and header revision, or the same error. With
// -e2e.server=etcd it compares etcd with itself, which checks the
// script; against etcd 3.6.8 (the etcd kind) it pins 3.6's
// HashKV, which differs from 3.4's.
func TestHashKVDifferential(t *testing.T) {
	ref := startEtcd36(t, "HashKV")
	sut := e2etest.Start(t, e2etest.Config{})
	want := runHashScript(t, ref)
	got := runHashScript(t, sut)
	script := hashScript()
	bad := 0
	for i := range want {
		if got[i] != want[i] {
			bad++
			t.Errorf("step %d %q differs:\n--- etcd\n%s\n--- %s\n%s", i, script[i].name, want[i], sut.Kind(), got[i])
		}
	}
	if bad > 0 || testing.Verbose() {
		for i := range want {
			t.Logf("step %d %q: %s", i, script[i].name, strings.Join(strings.Fields(want[i]), " "))
		}
	}
}
