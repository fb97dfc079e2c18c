package etcdapi

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// testKVs returns n KeyValues with values of size bytes, as a range of
// the store returns them.
func testKVs(n, size int) []*mvccpb.KeyValue {
	kvs := make([]*mvccpb.KeyValue, n)
	for i := range kvs {
		kvs[i] = &mvccpb.KeyValue{Key: fmt.Appendf(nil, "key-%04d", i), Value: bytes.Repeat([]byte{'v'}, size),
			CreateRevision: int64(i + 2), ModRevision: int64(i + 1000), Version: int64(i%5 + 1)}
	}
	return kvs
}

func testHeader() *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: 0xdeadbeef12345678, MemberId: 0x8e9e05c52164694d, Revision: 123456, RaftTerm: 7}
}

// withUnknown is m with an unknown field 99 (as a newer peer's message
// decoded here would carry).
func withUnknown[M proto.Message](m M) M {
	u := protowire.AppendTag(nil, 99, protowire.BytesType)
	u = protowire.AppendBytes(u, []byte("unknown"))
	m.ProtoReflect().SetUnknown(u)
	return m
}

// codecResponses are the responses the codec writes itself, in the shapes
// that decide their bytes: zero and nil fields, negative numbers, nil
// elements, unknown fields, and sizes on both sides of the pooling
// threshold.
func codecResponses() map[string]proto.Message {
	put := func(r *pb.PutResponse) *pb.ResponseOp {
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: r}}
	}
	rng := func(r *pb.RangeResponse) *pb.ResponseOp {
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: r}}
	}
	del := func(r *pb.DeleteRangeResponse) *pb.ResponseOp {
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: r}}
	}
	return map[string]proto.Message{
		"put empty":              &pb.PutResponse{},
		"put":                    &pb.PutResponse{Header: testHeader()},
		"put prev":               &pb.PutResponse{Header: testHeader(), PrevKv: testKVs(1, 256)[0]},
		"put prev empty":         &pb.PutResponse{Header: &pb.ResponseHeader{}, PrevKv: &mvccpb.KeyValue{}},
		"put negative":           &pb.PutResponse{Header: &pb.ResponseHeader{Revision: -1}, PrevKv: &mvccpb.KeyValue{Lease: -5, Version: -1}},
		"put unknown":            withUnknown(&pb.PutResponse{Header: withUnknown(testHeader()), PrevKv: withUnknown(testKVs(1, 3)[0])}),
		"range empty":            &pb.RangeResponse{},
		"range 0":                &pb.RangeResponse{Header: testHeader()},
		"range 1":                &pb.RangeResponse{Header: testHeader(), Kvs: testKVs(1, 256), Count: 1},
		"range 100":              &pb.RangeResponse{Header: testHeader(), Kvs: testKVs(100, 256), More: true, Count: 1000},
		"range count only":       &pb.RangeResponse{Header: testHeader(), Count: 1 << 40},
		"range nil kv":           &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{nil, testKVs(1, 1)[0], nil}},
		"range keys only":        &pb.RangeResponse{Header: testHeader(), Kvs: testKVs(3, 0), More: true},
		"range unknown":          withUnknown(&pb.RangeResponse{Kvs: []*mvccpb.KeyValue{withUnknown(testKVs(1, 3)[0])}}),
		"delete empty":           &pb.DeleteRangeResponse{},
		"delete":                 &pb.DeleteRangeResponse{Header: testHeader(), Deleted: 3},
		"delete prev":            &pb.DeleteRangeResponse{Header: testHeader(), Deleted: 2, PrevKvs: testKVs(2, 256)},
		"delete unknown":         withUnknown(&pb.DeleteRangeResponse{Deleted: -1, PrevKvs: []*mvccpb.KeyValue{nil}}),
		"txn empty":              &pb.TxnResponse{},
		"txn put":                &pb.TxnResponse{Header: testHeader(), Succeeded: true, Responses: []*pb.ResponseOp{put(&pb.PutResponse{Header: testHeader()})}},
		"txn failed range":       &pb.TxnResponse{Header: testHeader(), Responses: []*pb.ResponseOp{rng(&pb.RangeResponse{Header: testHeader(), Kvs: testKVs(10, 256), Count: 10})}},
		"txn mixed":              &pb.TxnResponse{Header: testHeader(), Succeeded: true, Responses: []*pb.ResponseOp{put(&pb.PutResponse{}), del(&pb.DeleteRangeResponse{Deleted: 1}), rng(&pb.RangeResponse{})}},
		"txn nil ops":            &pb.TxnResponse{Responses: []*pb.ResponseOp{nil, {}, put(nil), rng(nil), del(nil)}},
		"txn unknown":            withUnknown(&pb.TxnResponse{Responses: []*pb.ResponseOp{withUnknown(put(withUnknown(&pb.PutResponse{})))}}),
		"txn nested (protobuf)":  &pb.TxnResponse{Responses: []*pb.ResponseOp{{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: &pb.TxnResponse{Succeeded: true}}}}},
		"txn large":              &pb.TxnResponse{Header: testHeader(), Succeeded: true, Responses: []*pb.ResponseOp{put(&pb.PutResponse{PrevKv: testKVs(1, 2000)[0]})}},
		"other message (grpc's)": &pb.LeaseGrantResponse{Header: testHeader(), ID: 5, TTL: 10},
	}
}

// The codec puts on the wire exactly what gRPC's proto codec puts there.
func TestResponseEncodingMatchesProto(t *testing.T) {
	codec := newServerCodec()
	for name, m := range codecResponses() {
		t.Run(name, func(t *testing.T) { checkSameBytes(t, codec, m) })
	}
}

func checkSameBytes(t *testing.T, codec serverCodec, m proto.Message) {
	t.Helper()
	data, err := codec.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	got := data.Materialize()
	data.Free()
	want, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%T %v: codec wrote\n%x\nprotobuf-go\n%x", m, m, got, want)
	}
}

// Whatever a response decodes from (so also unknown fields anywhere, and
// fields repeated), the codec writes protobuf-go's bytes for it.
func FuzzResponseEncoding(f *testing.F) {
	for _, m := range codecResponses() {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	codec := newServerCodec()
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []proto.Message{&pb.PutResponse{}, &pb.RangeResponse{}, &pb.DeleteRangeResponse{}, &pb.TxnResponse{}} {
			if proto.Unmarshal(b, m) == nil {
				checkSameBytes(t, codec, m)
			}
		}
	})
}

// codecBenchMessages are a request and its response as the KV service
// sees them; the range has 256-byte values.
var codecBenchMessages = []struct {
	name      string
	req, resp proto.Message
}{
	{"put", &pb.PutRequest{Key: []byte("key-0001"), Value: bytes.Repeat([]byte{'v'}, 256)}, &pb.PutResponse{Header: testHeader()}},
	{"range-1", &pb.RangeRequest{Key: []byte("key-0001")}, &pb.RangeResponse{Header: testHeader(), Kvs: testKVs(1, 256), Count: 1}},
	{"range-100", &pb.RangeRequest{Key: []byte("key-0000"), RangeEnd: []byte("key-0100")}, &pb.RangeResponse{Header: testHeader(), Kvs: testKVs(100, 256), Count: 100}},
	{"txn-put", &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("key-0001"), Value: bytes.Repeat([]byte{'v'}, 256)}}}}},
		&pb.TxnResponse{Header: testHeader(), Succeeded: true, Responses: []*pb.ResponseOp{{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: testHeader()}}}}}},
}

// BenchmarkCodec compares gRPC's proto codec with serverCodec on the KV
// service's messages: a response marshalled (and its buffer freed, as
// gRPC does once it wrote the frame), a request unmarshalled.
func BenchmarkCodec(b *testing.B) {
	codecs := []struct {
		name  string
		codec encoding.CodecV2
	}{{"grpc", encoding.GetCodecV2(grpcproto.Name)}, {"server", newServerCodec()}}
	for _, m := range codecBenchMessages {
		for _, c := range codecs {
			b.Run(m.name+"/marshal/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					data, err := c.codec.Marshal(m.resp)
					if err != nil {
						b.Fatal(err)
					}
					data.Free()
				}
			})
		}
		enc, err := proto.Marshal(m.req)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range codecs {
			b.Run(m.name+"/unmarshal/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					req := m.req.ProtoReflect().New().Interface()
					if err := c.codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(enc)}, req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// The encoders name every field of the messages they write: a field that
// a newer api module adds fails here, instead of going missing from the
// wire.
func TestResponseEncodersKnowEveryField(t *testing.T) {
	for _, tc := range []struct {
		m      proto.Message
		fields []protowire.Number
	}{
		{&pb.ResponseHeader{}, []protowire.Number{1, 2, 3, 4}},
		{&mvccpb.KeyValue{}, []protowire.Number{1, 2, 3, 4, 5, 6}},
		{&pb.PutResponse{}, []protowire.Number{1, 2}},
		{&pb.RangeResponse{}, []protowire.Number{1, 2, 3, 4}},
		{&pb.DeleteRangeResponse{}, []protowire.Number{1, 2, 3}},
		{&pb.TxnResponse{}, []protowire.Number{1, 2, 3}},
		{&pb.ResponseOp{}, []protowire.Number{1, 2, 3, 4}},
	} {
		fds := tc.m.ProtoReflect().Descriptor().Fields()
		var got []protowire.Number
		for i := range fds.Len() {
			got = append(got, fds.Get(i).Number())
		}
		if !slices.Equal(got, tc.fields) {
			t.Errorf("%T has fields %v, the encoder writes %v", tc.m, got, tc.fields)
		}
	}
}
