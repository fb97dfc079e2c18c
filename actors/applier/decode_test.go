package applier

import (
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// decode, one entry after another into the same messages, must give what
// a fresh proto.Unmarshal gives: no field of one entry may show in the
// next, and an empty Put or Header on the wire is still present.
func TestDecodeMatchesUnmarshal(t *testing.T) {
	reqs := []*pb.InternalRaftRequest{
		{Header: &pb.RequestHeader{ID: 1, Username: "u"}, Put: &pb.PutRequest{Key: []byte("a"), Value: []byte("v"), Lease: 7, PrevKv: true}},
		{Header: &pb.RequestHeader{ID: 2}, Put: &pb.PutRequest{Key: []byte("b")}},
		{Header: &pb.RequestHeader{ID: 3}, DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}},
		{Put: &pb.PutRequest{}},
		{Header: &pb.RequestHeader{}},
		{},
		{Header: &pb.RequestHeader{ID: 4}, Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("t")}}}}}},
		{Header: &pb.RequestHeader{ID: 5}, Put: &pb.PutRequest{Key: []byte("c"), IgnoreValue: true}},
	}
	var a applier
	checkDecodeAll(t, &a, reqs)
}

// checkDecodeAll runs checkDecode on each of reqs, marshalled, in turn
// with the same applier (its reused messages carry over).
func checkDecodeAll(t *testing.T, a *applier, reqs []*pb.InternalRaftRequest) {
	t.Helper()
	for i, req := range reqs {
		data, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		checkDecode(t, a, fmt.Sprintf("request %d", i), data)
	}
}

// checkDecode decodes data with a and compares with proto.Unmarshal: the
// same message, the same sub-messages present, and on the same data the
// same error or none.
func checkDecode(t *testing.T, a *applier, name string, data []byte) {
	t.Helper()
	var want pb.InternalRaftRequest
	wantErr := proto.Unmarshal(data, &want)
	err := a.decode(data)
	defer a.doneWith()
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%s: decode error %v, proto.Unmarshal's %v", name, err, wantErr)
	}
	if err != nil {
		return
	}
	got := &a.req
	if !proto.Equal(got, &want) || (got.Put == nil) != (want.Put == nil) || (got.Header == nil) != (want.Header == nil) || (got.Txn == nil) != (want.Txn == nil) {
		t.Fatalf("%s: decoded %v, want %v", name, got, &want)
	}
	if got.Txn != nil && !sameOpPresence(got.Txn, want.Txn) {
		t.Fatalf("%s: decoded %v, want %v (an op's request differs in presence)", name, got, &want)
	}
}

// sameOpPresence reports whether the puts of two equal txns are present
// alike: proto.Equal takes an empty put for a missing one.
func sameOpPresence(a, b *pb.TxnRequest) bool {
	for _, pair := range [][2][]*pb.RequestOp{{a.Success, b.Success}, {a.Failure, b.Failure}} {
		for i := range pair[0] {
			if (pair[0][i].GetRequestPut() == nil) != (pair[1][i].GetRequestPut() == nil) {
				return false
			}
		}
	}
	return true
}

func putOpOf(key string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: []byte("v-" + key)}}}
}

// A txn entry is decoded into the applier's reused messages when it is
// plain; every other shape goes to proto.Unmarshal. Either way, entry
// after entry, the result must be proto.Unmarshal's.
func TestDecodeTxnMatchesUnmarshal(t *testing.T) {
	many := func(n int) []*pb.RequestOp {
		ops := make([]*pb.RequestOp, n)
		for i := range ops {
			ops[i] = putOpOf(fmt.Sprint("k", i))
		}
		return ops
	}
	cmp := func(key string, rev int64) *pb.Compare {
		return &pb.Compare{Key: []byte(key), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: rev}}
	}
	manyCmps := make([]*pb.Compare, reusedTxnCompares+3)
	for i := range manyCmps {
		manyCmps[i] = cmp(fmt.Sprint("c", i), int64(i))
	}
	hdr := func(id uint64) *pb.RequestHeader { return &pb.RequestHeader{ID: id, Username: "u", AuthRevision: 3} }
	reqs := []*pb.InternalRaftRequest{
		{Header: hdr(1), Txn: &pb.TxnRequest{Compare: []*pb.Compare{cmp("a", 4)}, Success: []*pb.RequestOp{putOpOf("a")}, Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a")}}}}}},
		{Header: hdr(2), Txn: &pb.TxnRequest{Success: many(reusedTxnPuts + 5)}},
		{Header: hdr(3), Txn: &pb.TxnRequest{Compare: manyCmps, Failure: many(3)}},
		{Txn: &pb.TxnRequest{}},
		{Header: hdr(4), Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{}}, {}, putOpOf("")}}},
		{Header: hdr(5), Txn: &pb.TxnRequest{Success: []*pb.RequestOp{putOpOf("x"), {Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Compare: []*pb.Compare{cmp("n", 1)}, Success: many(2)}}}, {Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("d")}}}}}},
		{Header: hdr(6), Put: &pb.PutRequest{Key: []byte("p")}, Txn: &pb.TxnRequest{Success: many(1)}},
		{Header: hdr(7), Txn: &pb.TxnRequest{Success: many(1)}},
		{Header: hdr(8), Put: &pb.PutRequest{Key: []byte("after")}},
	}
	var a applier
	checkDecodeAll(t, &a, reqs)

	// Shapes proto.Marshal does not make but a decoder must take: fields
	// repeated (they merge), unknown fields, unexpected wire types, and
	// data cut short.
	bytesField := func(b []byte, num protowire.Number, m proto.Message) []byte {
		enc, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), enc)
	}
	txnOf := func(ops ...*pb.RequestOp) *pb.TxnRequest { return &pb.TxnRequest{Success: ops} }
	twoTxns := bytesField(bytesField(nil, txnField, txnOf(putOpOf("1"))), txnField, &pb.TxnRequest{Compare: []*pb.Compare{cmp("2", 2)}, Failure: many(2)})
	twoHeaders := bytesField(bytesField(bytesField(nil, headerField, &pb.RequestHeader{ID: 9}), txnField, txnOf(putOpOf("h"))), headerField, &pb.RequestHeader{Username: "v"})
	unknownInTxn := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1)
	withUnknown := protowire.AppendBytes(protowire.AppendTag(nil, txnField, protowire.BytesType), append(bytesField(nil, txnSuccessField, putOpOf("u")), unknownInTxn...))
	unknownBytesInTxn := protowire.AppendBytes(protowire.AppendTag(nil, 98, protowire.BytesType), []byte("x"))
	withUnknownBytes := protowire.AppendBytes(protowire.AppendTag(nil, txnField, protowire.BytesType), append(bytesField(nil, txnSuccessField, putOpOf("u")), unknownBytesInTxn...))
	opTwice := protowire.AppendBytes(protowire.AppendTag(nil, txnSuccessField, protowire.BytesType),
		bytesField(bytesField(nil, opPutField, &pb.PutRequest{Key: []byte("first")}), opPutField, &pb.PutRequest{Value: []byte("second")}))
	opTwiceEntry := protowire.AppendBytes(protowire.AppendTag(nil, txnField, protowire.BytesType), opTwice)
	putAsVarint := protowire.AppendBytes(protowire.AppendTag(nil, txnField, protowire.BytesType),
		protowire.AppendBytes(protowire.AppendTag(nil, txnSuccessField, protowire.BytesType), protowire.AppendVarint(protowire.AppendTag(nil, opPutField, protowire.VarintType), 5)))
	txnAsVarint := protowire.AppendVarint(protowire.AppendTag(nil, txnField, protowire.VarintType), 1)
	good := bytesField(bytesField(nil, headerField, hdr(10)), txnField, txnOf(putOpOf("g"), putOpOf("h")))
	raw := map[string][]byte{
		"two txn fields":              twoTxns,
		"two header fields":           twoHeaders,
		"unknown field in the txn":    withUnknown,
		"unknown bytes in the txn":    withUnknownBytes,
		"an op's put twice":           opTwiceEntry,
		"an op's put as a varint":     putAsVarint,
		"txn as a varint":             txnAsVarint,
		"cut in the last op":          good[:len(good)-3],
		"cut in a put's length":       good[:len(good)-len(putOpOf("h").GetRequestPut().Value)-6],
		"plain after all those above": good,
	}
	for _, name := range []string{"two txn fields", "two header fields", "unknown field in the txn", "unknown bytes in the txn", "an op's put twice",
		"an op's put as a varint", "txn as a varint", "cut in the last op", "cut in a put's length", "plain after all those above"} {
		checkDecode(t, &a, name, raw[name])
	}
}

// A txn of one put decodes into the applier's messages: decoding
// allocates only the put's key and value (was eight objects).
func TestDecodeTxnPutAllocations(t *testing.T) {
	data, err := proto.Marshal(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 1}, Txn: &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("k"), Target: pb.Compare_VERSION, TargetUnion: &pb.Compare_Version{Version: 0}}},
		Success: []*pb.RequestOp{putOpOf("k")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var a applier
	n := testing.AllocsPerRun(100, func() {
		if err := a.decode(data); err != nil {
			t.Fatal(err)
		}
		a.doneWith()
	})
	// the put's key and value, the compare's key and its target's oneof
	if n > 4 {
		t.Errorf("decoding a txn of one compare and one put allocates %v times, want at most 4", n)
	}
}

// The reused txn messages let go of the keys and values they held once
// the entry is done.
func TestDecodeTxnReleasesValues(t *testing.T) {
	data, err := proto.Marshal(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("c")}}, Success: []*pb.RequestOp{putOpOf("k")}}})
	if err != nil {
		t.Fatal(err)
	}
	var a applier
	if err := a.decode(data); err != nil {
		t.Fatal(err)
	}
	if a.txnMsgs.nPuts != 1 || a.txnMsgs.nCompares != 1 {
		t.Fatalf("decoded into %d reused puts and %d compares, want 1 and 1", a.txnMsgs.nPuts, a.txnMsgs.nCompares)
	}
	a.doneWith()
	if p, c := &a.txnMsgs.puts[0].put, &a.txnMsgs.compares[0]; p.Key != nil || p.Value != nil || c.Key != nil {
		t.Fatalf("after the entry the reused put holds %q=%q and the compare %q", p.Key, p.Value, c.Key)
	}
	if len(a.txnMsgs.txn.Success) != 0 || len(a.txnMsgs.txn.Compare) != 0 {
		t.Fatal("after the entry the reused txn still lists its ops")
	}
}

// The Key and Value the store keeps must not be overwritten by the next
// entry's.
func TestDecodeDoesNotReuseKeyBytes(t *testing.T) {
	var a applier
	data, _ := proto.Marshal(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("first"), Value: []byte("one")}})
	if err := a.decode(data); err != nil {
		t.Fatal(err)
	}
	key, val := a.req.Put.Key, a.req.Put.Value
	a.doneWith()
	data, _ = proto.Marshal(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("other"), Value: []byte("two")}})
	if err := a.decode(data); err != nil {
		t.Fatal(err)
	}
	if string(key) != "first" || string(val) != "one" {
		t.Fatalf("kept key/value changed to %q/%q", key, val)
	}
}

// The same for the puts of a txn, which decode into reused PutRequests.
func TestDecodeTxnDoesNotReuseKeyBytes(t *testing.T) {
	var a applier
	data, _ := proto.Marshal(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{putOpOf("first")}}})
	if err := a.decode(data); err != nil {
		t.Fatal(err)
	}
	put := a.req.Txn.Success[0].GetRequestPut()
	key, val := put.Key, put.Value
	a.doneWith()
	data, _ = proto.Marshal(&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{putOpOf("other")}}})
	if err := a.decode(data); err != nil {
		t.Fatal(err)
	}
	if a.req.Txn.Success[0].GetRequestPut() != put {
		t.Fatal("the second txn's put is not decoded into the reused PutRequest: this test checks nothing")
	}
	if string(key) != "first" || string(val) != "v-first" {
		t.Fatalf("kept key/value changed to %q/%q", key, val)
	}
}

func TestDecodeRefusesCorruptData(t *testing.T) {
	var a applier
	if err := a.decode([]byte{0x22, 0x05, 0x0a}); err == nil {
		t.Fatal("truncated put decoded without error")
	}
}

// BenchmarkDecode decodes a put entry and a txn-of-one-put entry as the
// put and txn-put benchmarks' entries are.
func BenchmarkDecode(b *testing.B) {
	value := make([]byte, 256)
	for name, req := range map[string]*pb.InternalRaftRequest{
		"put": {Header: &pb.RequestHeader{ID: 1}, Put: &pb.PutRequest{Key: []byte("key-0001"), Value: value}},
		"txn-put": {Header: &pb.RequestHeader{ID: 1}, Txn: &pb.TxnRequest{Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("key-0001"), Value: value}}},
		}}},
	} {
		data, err := proto.Marshal(req)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			var a applier
			b.ReportAllocs()
			for b.Loop() {
				if err := a.decode(data); err != nil {
					b.Fatal(err)
				}
				a.doneWith()
			}
		})
	}
}
