package applier

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
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
	for i, req := range reqs {
		data, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var want pb.InternalRaftRequest
		if err := proto.Unmarshal(data, &want); err != nil {
			t.Fatal(err)
		}
		if err := a.decode(data); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if !proto.Equal(&a.req, &want) || (a.req.Put == nil) != (want.Put == nil) || (a.req.Header == nil) != (want.Header == nil) {
			t.Fatalf("request %d: decoded %v, want %v", i, &a.req, &want)
		}
		a.req.Reset()
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
	a.req.Reset()
	data, _ = proto.Marshal(&pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("other"), Value: []byte("two")}})
	if err := a.decode(data); err != nil {
		t.Fatal(err)
	}
	if string(key) != "first" || string(val) != "one" {
		t.Fatalf("kept key/value changed to %q/%q", key, val)
	}
}

func TestDecodeRefusesCorruptData(t *testing.T) {
	var a applier
	if err := a.decode([]byte{0x22, 0x05, 0x0a}); err == nil {
		t.Fatal("truncated put decoded without error")
	}
}
