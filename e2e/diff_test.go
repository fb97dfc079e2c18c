package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// step is one raw request of the differential script.
type step struct {
	name string
	do   func(context.Context, pb.KVClient) (proto.Message, error)
}

func rng(r *pb.RangeRequest) func(context.Context, pb.KVClient) (proto.Message, error) {
	return func(c context.Context, kv pb.KVClient) (proto.Message, error) { return kv.Range(c, r) }
}

func put(r *pb.PutRequest) func(context.Context, pb.KVClient) (proto.Message, error) {
	return func(c context.Context, kv pb.KVClient) (proto.Message, error) { return kv.Put(c, r) }
}

func del(r *pb.DeleteRangeRequest) func(context.Context, pb.KVClient) (proto.Message, error) {
	return func(c context.Context, kv pb.KVClient) (proto.Message, error) { return kv.DeleteRange(c, r) }
}

func txn(r *pb.TxnRequest) func(context.Context, pb.KVClient) (proto.Message, error) {
	return func(c context.Context, kv pb.KVClient) (proto.Message, error) { return kv.Txn(c, r) }
}

func compact(r *pb.CompactionRequest) func(context.Context, pb.KVClient) (proto.Message, error) {
	return func(c context.Context, kv pb.KVClient) (proto.Message, error) { return kv.Compact(c, r) }
}

func b(s string) []byte { return []byte(s) }

func opPut(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: b(k), Value: b(v)}}}
}

func opRange(r *pb.RangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
}

func opDel(r *pb.DeleteRangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}}
}

func cmpInt(key string, target pb.Compare_CompareTarget, res pb.Compare_CompareResult, v int64) *pb.Compare {
	c := &pb.Compare{Key: b(key), Target: target, Result: res}
	switch target {
	case pb.Compare_VERSION:
		c.TargetUnion = &pb.Compare_Version{Version: v}
	case pb.Compare_CREATE:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: v}
	case pb.Compare_MOD:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: v}
	case pb.Compare_LEASE:
		c.TargetUnion = &pb.Compare_Lease{Lease: v}
	}
	return c
}

func cmpValue(key string, res pb.Compare_CompareResult, v string) *pb.Compare {
	return &pb.Compare{Key: b(key), Target: pb.Compare_VALUE, Result: res, TargetUnion: &pb.Compare_Value{Value: b(v)}}
}

// diffScript is a fixed sequence of mixed requests whose every response
// (or error) must be the same on troupe and etcd.
func diffScript() []step {
	all := func(r *pb.RangeRequest) *pb.RangeRequest { r.Key, r.RangeEnd = b("\x00"), b("\x00"); return r }
	many := make([]*pb.RequestOp, 129)
	for i := range many {
		many[i] = opPut(fmt.Sprintf("m%03d", i), "v")
	}
	return []step{
		{"put a", put(&pb.PutRequest{Key: b("a"), Value: b("1")})},
		{"put b prev_kv", put(&pb.PutRequest{Key: b("b"), Value: b("2"), PrevKv: true})},
		{"put a prev_kv", put(&pb.PutRequest{Key: b("a"), Value: b("11"), PrevKv: true})},
		{"range a", rng(&pb.RangeRequest{Key: b("a")})},
		{"range empty key", rng(&pb.RangeRequest{})},
		{"put c", put(&pb.PutRequest{Key: b("c"), Value: b("3")})},
		{"put ab", put(&pb.PutRequest{Key: b("ab"), Value: b("x")})},
		{"put c again", put(&pb.PutRequest{Key: b("c"), Value: b("33")})},
		{"range a..b", rng(&pb.RangeRequest{Key: b("a"), RangeEnd: b("b")})},
		{"range all", rng(all(&pb.RangeRequest{}))},
		{"range from b", rng(&pb.RangeRequest{Key: b("b"), RangeEnd: b("\x00")})},
		{"range all limit 2", rng(all(&pb.RangeRequest{Limit: 2}))},
		{"range sort value desc", rng(all(&pb.RangeRequest{SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_VALUE}))},
		{"range sort version desc", rng(all(&pb.RangeRequest{SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_VERSION}))},
		{"range sort version asc", rng(all(&pb.RangeRequest{SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_VERSION}))},
		{"range sort create asc", rng(all(&pb.RangeRequest{SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_CREATE}))},
		{"range sort mod desc limit 2", rng(all(&pb.RangeRequest{SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_MOD, Limit: 2}))},
		{"range sort key asc", rng(all(&pb.RangeRequest{SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_KEY}))},
		{"range sort target without order", rng(all(&pb.RangeRequest{SortTarget: pb.RangeRequest_MOD}))},
		{"range invalid sort order", rng(all(&pb.RangeRequest{SortOrder: 7}))},
		{"range count only", rng(all(&pb.RangeRequest{CountOnly: true}))},
		{"range keys only", rng(all(&pb.RangeRequest{KeysOnly: true}))},
		{"range revision 2", rng(all(&pb.RangeRequest{Revision: 2}))},
		{"range serializable", rng(all(&pb.RangeRequest{Serializable: true}))},
		{"range min mod 4", rng(all(&pb.RangeRequest{MinModRevision: 4}))},
		{"range max create 3 limit 1", rng(all(&pb.RangeRequest{MaxCreateRevision: 3, Limit: 1}))},
		{"put ignore value", put(&pb.PutRequest{Key: b("a"), IgnoreValue: true, PrevKv: true})},
		{"put ignore value missing", put(&pb.PutRequest{Key: b("zz"), IgnoreValue: true})},
		{"put lease not found", put(&pb.PutRequest{Key: b("a"), Value: b("l"), Lease: int64(missingLease)})},
		{"delete missing", del(&pb.DeleteRangeRequest{Key: b("zz"), PrevKv: true})},
		{"delete b prev_kv", del(&pb.DeleteRangeRequest{Key: b("b"), PrevKv: true})},
		{"range b at 3", rng(&pb.RangeRequest{Key: b("b"), Revision: 3})},
		{"txn success", txn(&pb.TxnRequest{
			Compare: []*pb.Compare{cmpInt("a", pb.Compare_VERSION, pb.Compare_EQUAL, 3)},
			Success: []*pb.RequestOp{opPut("d", "4"), opRange(&pb.RangeRequest{Key: b("d")}), opDel(&pb.DeleteRangeRequest{Key: b("ab"), PrevKv: true})},
			Failure: []*pb.RequestOp{opPut("e", "5")},
		})},
		{"txn failure", txn(&pb.TxnRequest{
			Compare: []*pb.Compare{cmpValue("a", pb.Compare_EQUAL, "zz")},
			Success: []*pb.RequestOp{opPut("f", "6")},
			Failure: []*pb.RequestOp{opRange(&pb.RangeRequest{Key: b("a")})},
		})},
		{"txn nested", txn(&pb.TxnRequest{
			Success: []*pb.RequestOp{opPut("n0", "0"), {Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
				Compare: []*pb.Compare{cmpInt("n0", pb.Compare_MOD, pb.Compare_GREATER, 0)},
				Success: []*pb.RequestOp{opPut("n1", "1"), opRange(&pb.RangeRequest{Key: b("n"), RangeEnd: b("o")})},
			}}}},
		})},
		{"txn range compares", txn(&pb.TxnRequest{
			Compare: []*pb.Compare{
				func() *pb.Compare {
					c := cmpInt("n", pb.Compare_CREATE, pb.Compare_LESS, 100)
					c.RangeEnd = b("o")
					return c
				}(),
				func() *pb.Compare { c := cmpValue("n", pb.Compare_NOT_EQUAL, "9"); c.RangeEnd = b("o"); return c }(),
				cmpInt("a", pb.Compare_LEASE, pb.Compare_EQUAL, 0),
			},
			Success: []*pb.RequestOp{opRange(&pb.RangeRequest{Key: b("n"), RangeEnd: b("o"), CountOnly: true})},
		})},
		{"txn read only", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opRange(&pb.RangeRequest{Key: b("a")})}})},
		{"txn duplicate", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("x", "1"), opPut("x", "2")}})},
		{"txn too many ops", txn(&pb.TxnRequest{Success: many})},
		{"txn put in deleted range", txn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel(&pb.DeleteRangeRequest{Key: b("n"), RangeEnd: b("o")}), opPut("n5", "5")}})},
		{"put too large", put(&pb.PutRequest{Key: b("big"), Value: make([]byte, 1600<<10)})},
		{"range future revision", rng(&pb.RangeRequest{Key: b("a"), Revision: 1000})},
		{"compact 4 physical", compact(&pb.CompactionRequest{Revision: 4, Physical: true})},
		{"range at 3 compacted", rng(&pb.RangeRequest{Key: b("a"), Revision: 3})},
		{"range at 4", rng(all(&pb.RangeRequest{Revision: 4}))},
		{"compact 2 compacted", compact(&pb.CompactionRequest{Revision: 2})},
		{"compact future", compact(&pb.CompactionRequest{Revision: 1000})},
		{"delete from c prev_kv", del(&pb.DeleteRangeRequest{Key: b("c"), RangeEnd: b("\x00"), PrevKv: true})},
		{"put c recreated", put(&pb.PutRequest{Key: b("c"), Value: b("new")})},
		{"txn compares on c", txn(&pb.TxnRequest{
			Compare: []*pb.Compare{cmpInt("c", pb.Compare_CREATE, pb.Compare_GREATER, 4), cmpInt("c", pb.Compare_VERSION, pb.Compare_EQUAL, 1), cmpInt("c", pb.Compare_MOD, pb.Compare_NOT_EQUAL, 1)},
			Success: []*pb.RequestOp{opPut("c", "newer"), opRange(&pb.RangeRequest{Key: b("c")})},
		})},
		{"range key desc limit 2", rng(all(&pb.RangeRequest{SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_KEY, Limit: 2}))},
		{"put ignore lease", put(&pb.PutRequest{Key: b("c"), Value: b("il"), IgnoreLease: true, PrevKv: true})},
		{"delete all", del(&pb.DeleteRangeRequest{Key: b("\x00"), RangeEnd: b("\x00")})},
		{"range all after delete", rng(all(&pb.RangeRequest{}))},
		{"range history", rng(all(&pb.RangeRequest{Revision: 10}))},
	}
}

// normalize clears the fields of every ResponseHeader in msg that differ
// between two clusters: cluster_id, member_id and raft_term.
// answerString is a response without the member's ids and term, or the
// error's code and message.
func answerString(t *testing.T, resp proto.Message, err error) string {
	t.Helper()
	if err != nil {
		st := status.Convert(err)
		return fmt.Sprintf("error code=%v message=%q", st.Code(), st.Message())
	}
	normalize(resp.ProtoReflect())
	j, err := protojson.MarshalOptions{Multiline: true}.Marshal(resp)
	must(t, err)
	return string(j)
}

func normalize(m protoreflect.Message) {
	if m.Descriptor().FullName() == "etcdserverpb.ResponseHeader" {
		for _, f := range []protoreflect.Name{"cluster_id", "member_id", "raft_term"} {
			m.Clear(m.Descriptor().Fields().ByName(f))
		}
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				normalize(v.List().Get(i).Message())
			}
		case fd.Message() != nil && !fd.IsMap():
			normalize(v.Message())
		}
		return true
	})
}

func runScript(t *testing.T, s *e2etest.Server) []string {
	cli := s.Client(t)
	kv := pb.NewKVClient(cli.ActiveConnection())
	var out []string
	for _, st := range diffScript() {
		resp, err := st.do(ctx(t), kv)
		out = append(out, answerString(t, resp, err))
	}
	return out
}

// startEtcd36 starts the reference etcd and fails the test unless it is
// 3.6, whose answers to what the test pins differ from 3.4's.
func startEtcd36(t *testing.T, pins string) *e2etest.Server {
	t.Helper()
	ref := e2etest.Start(t, e2etest.Config{Kind: e2etest.Etcd})
	st, err := ref.Client(t).Status(ctx(t), ref.Endpoint())
	must(t, err)
	if !strings.HasPrefix(st.Version, "3.6.") {
		t.Fatalf("the reference etcd is %s; this test pins etcd 3.6's %s: build it with scripts/etcd36.sh and set $%s (scripts/test.sh does both)", st.Version, pins, e2etest.EnvEtcd36)
	}
	return ref
}

// TestDifferential runs one scripted sequence of raw gRPC requests against
// real etcd and against the server under test and requires identical
// responses. With -e2e.server=etcd it compares etcd with itself, which
// checks the script and the normalization.
func TestDifferential(t *testing.T) {
	ref := e2etest.Start(t, e2etest.Config{Kind: e2etest.Etcd})
	sut := e2etest.Start(t, e2etest.Config{})
	want := runScript(t, ref)
	got := runScript(t, sut)
	script := diffScript()
	bad := 0
	for i := range want {
		if got[i] != want[i] {
			bad++
			t.Errorf("step %d %q differs:\n--- etcd\n%s\n--- %s\n%s", i, script[i].name, want[i], sut.Kind(), got[i])
			if bad >= 5 {
				t.Fatalf("stopping after %d differences", bad)
			}
		}
	}
	if os.Getenv("E2E_DIFF_DUMP") != "" {
		for i := range want {
			t.Logf("step %d %q:\n%s", i, script[i].name, strings.TrimSpace(want[i]))
		}
	}
}
