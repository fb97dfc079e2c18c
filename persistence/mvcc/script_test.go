package mvcc

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// scriptStep is one request of the etcd comparison script. A nil req is a
// store-side action (reopen or commit) that etcd does not see.
type scriptStep struct {
	name   string
	req    proto.Message
	reopen bool
	commit bool
}

const (
	eq = pb.Compare_EQUAL
	ne = pb.Compare_NOT_EQUAL
	gt = pb.Compare_GREATER
	lt = pb.Compare_LESS
)

// etcdScript drives an empty store and an empty etcd 3.4 the same way; the
// responses etcd gave are in testdata/etcd36.golden (see TestEtcdScript).
func etcdScript() []scriptStep {
	s := []scriptStep{
		{name: "range empty store", req: get("a")},
		{name: "put a", req: put("a", "1")},
		{name: "put b", req: put("b", "2")},
		{name: "put c", req: put("c", "3")},
		{name: "put a again prev_kv", req: &pb.PutRequest{Key: []byte("a"), Value: []byte("10"), PrevKv: true}},
		{name: "put new key prev_kv", req: &pb.PutRequest{Key: []byte("d"), Value: []byte("4"), PrevKv: true}},
		{name: "put foo/1", req: put("foo/1", "z")},
		{name: "put foo/2", req: put("foo/2", "y")},
		{name: "put foo/3", req: put("foo/3", "x")},
		{name: "put foo/2 again", req: put("foo/2", "yy")},
		{name: "put ignore_value missing", req: &pb.PutRequest{Key: []byte("zz"), IgnoreValue: true}},
		{name: "put ignore_lease missing", req: &pb.PutRequest{Key: []byte("zz"), Value: []byte("v"), IgnoreLease: true}},
		{name: "put ignore_value", req: &pb.PutRequest{Key: []byte("b"), IgnoreValue: true, PrevKv: true}},
		{name: "put ignore_lease", req: &pb.PutRequest{Key: []byte("b"), Value: []byte("22"), IgnoreLease: true}},
		{name: "put unknown lease", req: &pb.PutRequest{Key: []byte("b"), Value: []byte("1"), Lease: 12345}},
		{name: "put value with ignore_value", req: &pb.PutRequest{Key: []byte("b"), Value: []byte("1"), IgnoreValue: true}},
		{name: "put lease with ignore_lease", req: &pb.PutRequest{Key: []byte("b"), Lease: 1, IgnoreLease: true}},
		{name: "put empty key", req: put("", "1")},
		{name: "put empty value", req: put("e", "")},
		{name: "get single", req: get("a")},
		{name: "get missing", req: get("nope")},
		{name: "range [a,c)", req: rng("a", "c")},
		{name: "range from b to end", req: rng("b", "\x00")},
		{name: "range all", req: rng("\x00", "\x00")},
		{name: "range prefix", req: rng("foo/", "foo0")},
		{name: "range end before key", req: rng("c", "a")},
		{name: "range empty key", req: get("")},
		{name: "limit 2", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), Limit: 2}},
		{name: "limit exact", req: &pb.RangeRequest{Key: []byte("foo/"), RangeEnd: []byte("foo0"), Limit: 3}},
		{name: "negative limit", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), Limit: -1}},
		{name: "keys_only sorted limit", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), KeysOnly: true, Limit: 2, SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_DESCEND}},
		{name: "count_only historical", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), CountOnly: true, Revision: 4}},
		{name: "count_only", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), CountOnly: true}},
		{name: "count_only limit", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), CountOnly: true, Limit: 1}},
		{name: "keys_only", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c"), KeysOnly: true}},
		{name: "serializable", req: &pb.RangeRequest{Key: []byte("a"), Serializable: true}},
	}
	for _, target := range []pb.RangeRequest_SortTarget{pb.RangeRequest_KEY, pb.RangeRequest_VERSION, pb.RangeRequest_CREATE, pb.RangeRequest_MOD, pb.RangeRequest_VALUE} {
		for _, order := range []pb.RangeRequest_SortOrder{pb.RangeRequest_NONE, pb.RangeRequest_ASCEND, pb.RangeRequest_DESCEND} {
			s = append(s, scriptStep{
				name: "sort " + target.String() + " " + order.String() + " limit 3",
				req:  &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), SortTarget: target, SortOrder: order, Limit: 3},
			})
		}
	}
	s = append(s, []scriptStep{
		{name: "sort invalid order", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), SortOrder: 7}},
		{name: "historical rev 2", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), Revision: 2}},
		{name: "historical rev 5", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), Revision: 5}},
		{name: "future rev", req: &pb.RangeRequest{Key: []byte("a"), Revision: 100}},
		{name: "negative rev", req: &pb.RangeRequest{Key: []byte("a"), Revision: -3}},
		{name: "min mod rev limit", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), MinModRevision: 5, Limit: 2}},
		{name: "max mod rev", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), MaxModRevision: 5}},
		{name: "min create rev", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), MinCreateRevision: 7}},
		{name: "max create rev limit", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), MaxCreateRevision: 7, Limit: 1}},
		{name: "commit", commit: true},
		{name: "reopen", reopen: true},
		{name: "get all after reopen", req: rng("\x00", "\x00")},
		{name: "historical after reopen", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), Revision: 6}},
		{name: "delete missing", req: del("nope", "")},
		{name: "delete single prev_kv", req: &pb.DeleteRangeRequest{Key: []byte("d"), PrevKv: true}},
		{name: "delete range prev_kv", req: &pb.DeleteRangeRequest{Key: []byte("foo/"), RangeEnd: []byte("foo/3"), PrevKv: true}},
		{name: "delete empty key", req: del("", "")},
		{name: "get deleted", req: rng("d", "\x00")},
		{name: "history sees deleted", req: &pb.RangeRequest{Key: []byte("d"), RangeEnd: []byte("\x00"), Revision: 10}},
		{name: "recreate d", req: put("d", "new")},
		{name: "get recreated", req: get("d")},
		{name: "gen put g", req: put("g", "1")},
		{name: "gen delete g", req: del("g", "")},
		{name: "gen put g again", req: put("g", "2")},
		{name: "gen put g third", req: put("g", "3")},
		{name: "gen g at 16 (before)", req: &pb.RangeRequest{Key: []byte("g"), Revision: 16}},
		{name: "gen g at 17 (first life)", req: &pb.RangeRequest{Key: []byte("g"), Revision: 17}},
		{name: "gen g at 18 (deleted)", req: &pb.RangeRequest{Key: []byte("g"), Revision: 18}},
		{name: "gen g at 19 (second life)", req: &pb.RangeRequest{Key: []byte("g"), Revision: 19}},
		{name: "gen g at 21 (future)", req: &pb.RangeRequest{Key: []byte("g"), Revision: 21}},
		{name: "delete nothing prev_kv", req: &pb.DeleteRangeRequest{Key: []byte("q"), RangeEnd: []byte("r"), PrevKv: true}},
		{name: "put lease 0 prev_kv ignore_lease", req: &pb.PutRequest{Key: []byte("g"), Value: []byte("4"), IgnoreLease: true, PrevKv: true}},
		// txns
		{name: "txn lease missing key", req: &pb.TxnRequest{Compare: []*pb.Compare{cmpLease("missing", eq, 0)}, Success: []*pb.RequestOp{opGet(get("g"))}}},
		{name: "txn value range to end", req: &pb.TxnRequest{Compare: []*pb.Compare{withRange(cmpValue("foo/", gt, ""), "\x00")}, Success: []*pb.RequestOp{opGet(get("g"))}}},
		{name: "txn failure nested", req: &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("g", eq, 1)}, Success: []*pb.RequestOp{opPut("s", "x")}, Failure: []*pb.RequestOp{opTxn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("g", gt, 1)}, Success: []*pb.RequestOp{opPut("fn", "1"), opDel("g", "")}, Failure: []*pb.RequestOp{opPut("fn", "2")}}), opGet(rng("f", "h"))}}},
		{name: "txn read only", req: &pb.TxnRequest{Success: []*pb.RequestOp{opGet(get("a")), opGet(rng("a", "c"))}}},
		{name: "txn empty", req: &pb.TxnRequest{}},
		{name: "txn version eq", req: &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("a", eq, 2)}, Success: []*pb.RequestOp{opPut("x", "1"), opGet(get("x"))}, Failure: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn version ne", req: &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("a", ne, 2)}, Success: []*pb.RequestOp{opPut("x", "2")}, Failure: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn missing version 0", req: &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("missing", eq, 0)}, Success: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn missing create 0", req: &pb.TxnRequest{Compare: []*pb.Compare{cmpCreate("missing", eq, 0)}, Success: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn missing value empty", req: &pb.TxnRequest{Compare: []*pb.Compare{cmpValue("missing", eq, "")}, Success: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn empty value eq", req: &pb.TxnRequest{Compare: []*pb.Compare{cmpValue("e", eq, "")}, Success: []*pb.RequestOp{opGet(get("e"))}}},
		{name: "txn value gt", req: &pb.TxnRequest{Compare: []*pb.Compare{cmpValue("a", gt, "1")}, Success: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn value lt", req: &pb.TxnRequest{Compare: []*pb.Compare{cmpValue("a", lt, "1")}, Success: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn mod lt", req: &pb.TxnRequest{Compare: []*pb.Compare{cmpMod("a", lt, 6)}, Success: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn create gt", req: &pb.TxnRequest{Compare: []*pb.Compare{cmpCreate("a", gt, 1)}, Success: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn lease eq 0", req: &pb.TxnRequest{Compare: []*pb.Compare{cmpLease("a", eq, 0)}, Success: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn union mismatch", req: &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_MOD, Result: gt, TargetUnion: &pb.Compare_Value{Value: []byte("9")}}}, Success: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn range compare all", req: &pb.TxnRequest{Compare: []*pb.Compare{withRange(cmpVersion("a", gt, 0), "c")}, Success: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn range compare one fails", req: &pb.TxnRequest{Compare: []*pb.Compare{withRange(cmpVersion("a", gt, 1), "c")}, Success: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn range compare empty range", req: &pb.TxnRequest{Compare: []*pb.Compare{withRange(cmpVersion("q", eq, 0), "r")}, Success: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn range compare value empty range", req: &pb.TxnRequest{Compare: []*pb.Compare{withRange(cmpValue("q", ne, "x"), "r")}, Success: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn range compare to end", req: &pb.TxnRequest{Compare: []*pb.Compare{withRange(cmpMod("a", gt, 0), "\x00")}, Success: []*pb.RequestOp{opGet(get("a"))}}},
		{name: "txn multi compare", req: &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("a", eq, 2), cmpValue("b", eq, "nope")}, Success: []*pb.RequestOp{opPut("x", "3")}, Failure: []*pb.RequestOp{opPut("y", "3"), opGet(rng("x", "z"))}}},
		{name: "txn writes and reads own", req: &pb.TxnRequest{Success: []*pb.RequestOp{opGet(get("p1")), opPut("p1", "a"), opPut("p2", "b"), opGet(rng("p", "q")), opDel("x", ""), opGet(rng("x", "z")), opDel("nothing", "")}}},
		{name: "txn delete nothing only", req: &pb.TxnRequest{Success: []*pb.RequestOp{opDel("nothing", ""), opGet(get("a"))}}},
		{name: "txn put twice dup", req: &pb.TxnRequest{Success: []*pb.RequestOp{opPut("k", "1"), opPut("k", "2")}}},
		{name: "txn put in deleted range dup", req: &pb.TxnRequest{Success: []*pb.RequestOp{opDel("a", "c"), opPut("b", "2")}}},
		{name: "txn put after delete single dup", req: &pb.TxnRequest{Success: []*pb.RequestOp{opPut("b", "2"), opDel("b", "")}}},
		{name: "txn delete twice ok", req: &pb.TxnRequest{Success: []*pb.RequestOp{opDel("p1", ""), opDel("p1", "p3")}}},
		{name: "txn put in delete-to-end range", req: &pb.TxnRequest{Success: []*pb.RequestOp{opDel("p", "\x00"), opPut("p2", "again"), opGet(rng("p", "q"))}}},
		{name: "txn dup across branches ok", req: &pb.TxnRequest{Success: []*pb.RequestOp{opPut("k", "1")}, Failure: []*pb.RequestOp{opPut("k", "2")}}},
		{name: "txn nested put dup with parent", req: &pb.TxnRequest{Success: []*pb.RequestOp{opPut("k", "1"), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("k", "2")}})}}},
		{name: "txn nested then/else same key ok", req: &pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("a", eq, 2)}, Success: []*pb.RequestOp{opPut("k", "then")}, Failure: []*pb.RequestOp{opPut("k", "else")}}), opGet(get("k"))}}},
		{name: "txn nested put in parent delete dup", req: &pb.TxnRequest{Success: []*pb.RequestOp{opDel("k", ""), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("k", "2")}})}}},
		{name: "txn nested delete parent put dup", req: &pb.TxnRequest{Success: []*pb.RequestOp{opPut("k", "1"), opTxn(&pb.TxnRequest{Failure: []*pb.RequestOp{opDel("j", "l")}})}}},
		{name: "txn two nested same put dup", req: &pb.TxnRequest{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("k", "1")}}), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("k", "2")}})}}},
		{name: "txn nested compares see pre-txn state", req: &pb.TxnRequest{Success: []*pb.RequestOp{
			opPut("n1", "1"),
			opTxn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("n1", eq, 0)}, Success: []*pb.RequestOp{opPut("n2", "saw-missing"), opGet(get("n1"))}, Failure: []*pb.RequestOp{opPut("n2", "saw-n1")}}),
			opTxn(&pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("a", eq, 99)}, Success: []*pb.RequestOp{opPut("n3", "x")}, Failure: []*pb.RequestOp{opGet(rng("n", "o")), opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("n9", "")}})}}),
			opGet(rng("n", "o")),
		}}},
		{name: "txn ignore_value missing", req: &pb.TxnRequest{Success: []*pb.RequestOp{opPut("ok", "1"), {Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("zz"), IgnoreValue: true}}}}}},
		{name: "txn ignore_value in untaken branch", req: &pb.TxnRequest{Success: []*pb.RequestOp{opPut("ok", "1")}, Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("zz"), IgnoreValue: true}}}}}},
		{name: "txn unknown lease", req: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("l"), Lease: 77}}}}}},
		{name: "txn ignore_value and prev_kv", req: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a"), IgnoreValue: true, PrevKv: true}}}}}},
		{name: "txn range future rev", req: &pb.TxnRequest{Success: []*pb.RequestOp{opPut("f", "1"), opGet(&pb.RangeRequest{Key: []byte("a"), Revision: 1000})}}},
		{name: "txn range negative rev", req: &pb.TxnRequest{Success: []*pb.RequestOp{opGet(&pb.RangeRequest{Key: []byte("a"), Revision: -1})}}},
		{name: "txn range historical", req: &pb.TxnRequest{Success: []*pb.RequestOp{opGet(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), Revision: 3})}}},
		{name: "txn empty op", req: &pb.TxnRequest{Success: []*pb.RequestOp{{}}}},
		{name: "txn empty compare key", req: &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion("", eq, 0)}}},
		{name: "txn empty put key", req: &pb.TxnRequest{Success: []*pb.RequestOp{opPut("", "1")}}},
		{name: "txn value provided", req: &pb.TxnRequest{Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a"), Value: []byte("v"), IgnoreValue: true}}}}}},
		{name: "txn too many ops", req: &pb.TxnRequest{Success: manyPuts(129)}},
		{name: "txn max ops", req: &pb.TxnRequest{Success: manyPuts(128)}},
		{name: "txn nested too many ops", req: &pb.TxnRequest{Success: append(manyPuts(100), opTxn(&pb.TxnRequest{Success: manyGets(29)}))}},
		{name: "txn nested within ops", req: &pb.TxnRequest{Success: append(manyGets(100), opTxn(&pb.TxnRequest{Success: manyGets(28)}))}},
		{name: "get after txns", req: rng("\x00", "\x00")},
		{name: "commit 2", commit: true},
		// compaction
		{name: "compact future", req: &pb.CompactionRequest{Revision: 1000}},
		{name: "compact 5", req: &pb.CompactionRequest{Revision: 5}},
		{name: "compact 5 again", req: &pb.CompactionRequest{Revision: 5}},
		{name: "compact 3 below", req: &pb.CompactionRequest{Revision: 3}},
		{name: "range at compacted 4", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), Revision: 4}},
		{name: "range at compact rev 5", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), Revision: 5}},
		{name: "txn range compacted", req: &pb.TxnRequest{Success: []*pb.RequestOp{opGet(&pb.RangeRequest{Key: []byte("a"), Revision: 4})}}},
		{name: "txn range negative rev after compact", req: &pb.TxnRequest{Success: []*pb.RequestOp{opGet(&pb.RangeRequest{Key: []byte("a"), Revision: -1})}}},
		{name: "compact 12", req: &pb.CompactionRequest{Revision: 12}},
		{name: "range at 12 sees deleted d gone", req: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("\x00"), Revision: 12}},
		{name: "reopen after compact", reopen: true},
		{name: "range at 11 after reopen", req: &pb.RangeRequest{Key: []byte("a"), Revision: 11}},
		{name: "range at 12 after reopen", req: &pb.RangeRequest{Key: []byte("\x00"), RangeEnd: []byte("\x00"), Revision: 12}},
		{name: "compact 12 after reopen", req: &pb.CompactionRequest{Revision: 12}},
		{name: "all after reopen", req: rng("\x00", "\x00")},
		{name: "delete all", req: &pb.DeleteRangeRequest{Key: []byte("\x00"), RangeEnd: []byte("\x00")}},
		{name: "rev after delete all", req: get("a")},
		{name: "put after delete all", req: put("a", "fresh")},
		{name: "compact to head", req: &pb.CompactionRequest{Revision: 0}},
	}...)
	return s
}

func manyPuts(n int) []*pb.RequestOp {
	ops := make([]*pb.RequestOp, n)
	for i := range ops {
		ops[i] = opPut(string(rune('A'+i/26))+string(rune('a'+i%26)), "v")
	}
	return ops
}

func manyGets(n int) []*pb.RequestOp {
	ops := make([]*pb.RequestOp, n)
	for i := range ops {
		ops[i] = opGet(get("a"))
	}
	return ops
}
