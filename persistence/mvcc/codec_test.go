package mvcc

import (
	"bytes"
	"math"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func TestCodecMatchesProto(t *testing.T) {
	for _, kv := range []*mvccpb.KeyValue{
		{},
		{Key: []byte("a")},
		{Key: []byte("k"), Value: []byte("v"), CreateRevision: 2, ModRevision: 300, Version: 1 << 40, Lease: -1},
		{Key: bytes.Repeat([]byte("x"), 300), Value: bytes.Repeat([]byte("y"), 70000), CreateRevision: math.MaxInt64, ModRevision: math.MinInt64},
		{Key: []byte("e"), Value: []byte{}, Lease: 7},
	} {
		want, err := proto.Marshal(kv)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeKV(kv); !bytes.Equal(got, want) {
			t.Errorf("encodeKV(%v) = %x, proto %x", kv, got, want)
		}
		got, err := decodeKV(want)
		if err != nil || !proto.Equal(got, kv) {
			t.Errorf("decodeKV(%x) = %v %v, want %v", want, got, err, kv)
		}
		var aliased mvccpb.KeyValue
		if err := decodeKVAliased(&aliased, want); err != nil || !proto.Equal(&aliased, kv) {
			t.Errorf("decodeKVAliased(%x) = %v %v, want %v", want, &aliased, err, kv)
		}
	}
	// unknown fields take the generic path
	b := protowire.AppendTag(encodeKV(&mvccpb.KeyValue{Key: []byte("k")}), 99, protowire.VarintType)
	b = protowire.AppendVarint(b, 5)
	if kv, err := decodeKV(b); err != nil || string(kv.Key) != "k" {
		t.Errorf("unknown field: %v %v", kv, err)
	}
	// the aliasing decoder's generic path starts from a clean KeyValue
	var kv mvccpb.KeyValue
	if err := decodeKVAliased(&kv, b); err != nil || string(kv.Key) != "k" || len(kv.ProtoReflect().GetUnknown()) == 0 {
		t.Errorf("unknown field, aliased: %v %v", &kv, err)
	}
	if _, err := decodeKV([]byte{0x0a, 0x05, 'a'}); err == nil {
		t.Error("truncated KeyValue decoded")
	}
}

func FuzzDecodeKV(f *testing.F) {
	f.Add(encodeKV(&mvccpb.KeyValue{Key: []byte("k"), Value: []byte("v"), CreateRevision: 2, ModRevision: 3, Version: 1, Lease: 9}))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeKV(b)
		want := &mvccpb.KeyValue{}
		werr := proto.Unmarshal(b, want)
		if (err == nil) != (werr == nil) {
			t.Fatalf("decodeKV err %v, proto err %v", err, werr)
		}
		if err == nil && !proto.Equal(got, want) {
			t.Fatalf("decodeKV %v, proto %v", got, want)
		}
	})
}
