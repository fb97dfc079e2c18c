package etcdapi

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protowire"
)

// The KV service's responses, written field by field instead of through
// protobuf-go's table-driven marshaller (gRPC's codec calls proto.Size and
// then marshals with the cached sizes: two passes over every field through
// a function pointer each). The bytes are protobuf-go's exactly: fields in
// number order, zero scalars and nil messages left out, a nil element of a
// repeated message field written empty, a message's unknown fields after
// its known ones (TestResponseEncodingMatchesProto holds the two
// together).

// Each response type is wrapped in a one-pointer struct, so that making
// it a wireMessage allocates nothing.
type (
	putResponseWire    struct{ r *pb.PutResponse }
	rangeResponseWire  struct{ r *pb.RangeResponse }
	txnResponseWire    struct{ r *pb.TxnResponse }
	deleteResponseWire struct {
		r *pb.DeleteRangeResponse
	}
)

func (w putResponseWire) size() int                { return sizePut(w.r) }
func (w putResponseWire) appendTo(b []byte) []byte { return appendPut(b, w.r) }

func (w rangeResponseWire) size() int                { return sizeRange(w.r) }
func (w rangeResponseWire) appendTo(b []byte) []byte { return appendRange(b, w.r) }

func (w txnResponseWire) size() int                { return sizeTxn(w.r) }
func (w txnResponseWire) appendTo(b []byte) []byte { return appendTxn(b, w.r) }

func (w deleteResponseWire) size() int                { return sizeDelete(w.r) }
func (w deleteResponseWire) appendTo(b []byte) []byte { return appendDelete(b, w.r) }

// Field tags, each a one-byte varint (field number < 16).
const (
	tagVarint1 = 1<<3 | byte(protowire.VarintType)
	tagVarint2 = 2<<3 | byte(protowire.VarintType)
	tagVarint3 = 3<<3 | byte(protowire.VarintType)
	tagVarint4 = 4<<3 | byte(protowire.VarintType)
	tagVarint6 = 6<<3 | byte(protowire.VarintType)
	tagBytes1  = 1<<3 | byte(protowire.BytesType)
	tagBytes2  = 2<<3 | byte(protowire.BytesType)
	tagBytes3  = 3<<3 | byte(protowire.BytesType)
	tagBytes5  = 5<<3 | byte(protowire.BytesType)
)

// sizeVarintField is a varint field's size with its one-byte tag; 0 for
// a zero value, which proto3 does not write.
func sizeVarintField(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

func appendVarintField(b []byte, tag byte, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(append(b, tag), v)
}

// sizeBytesField is a bytes field's size with its one-byte tag; 0 when
// empty.
func sizeBytesField(v []byte) int {
	if len(v) == 0 {
		return 0
	}
	return 1 + protowire.SizeBytes(len(v))
}

func appendBytesField(b []byte, tag byte, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return append(protowire.AppendVarint(append(b, tag), uint64(len(v))), v...)
}

// sizeMessageField is the size of a message field of n bytes with its
// one-byte tag.
func sizeMessageField(n int) int { return 1 + protowire.SizeBytes(n) }

func appendMessageHead(b []byte, tag byte, n int) []byte {
	return protowire.AppendVarint(append(b, tag), uint64(n))
}

func boolVarint(v bool) uint64 { return protowire.EncodeBool(v) }

func sizeHeader(h *pb.ResponseHeader) int {
	if h == nil {
		return 0
	}
	return sizeVarintField(h.ClusterId) + sizeVarintField(h.MemberId) +
		sizeVarintField(uint64(h.Revision)) + sizeVarintField(h.RaftTerm) +
		len(h.ProtoReflect().GetUnknown())
}

func appendHeader(b []byte, h *pb.ResponseHeader) []byte {
	if h == nil {
		return b
	}
	b = appendVarintField(b, tagVarint1, h.ClusterId)
	b = appendVarintField(b, tagVarint2, h.MemberId)
	b = appendVarintField(b, tagVarint3, uint64(h.Revision))
	b = appendVarintField(b, tagVarint4, h.RaftTerm)
	return append(b, h.ProtoReflect().GetUnknown()...)
}

// sizeHeaderField and appendHeaderField write field 1, the header, as
// every response here has it.
func sizeHeaderField(h *pb.ResponseHeader) int {
	if h == nil {
		return 0
	}
	return sizeMessageField(sizeHeader(h))
}

func appendHeaderField(b []byte, h *pb.ResponseHeader) []byte {
	if h == nil {
		return b
	}
	return appendHeader(appendMessageHead(b, tagBytes1, sizeHeader(h)), h)
}

func sizeKV(kv *mvccpb.KeyValue) int {
	if kv == nil {
		return 0
	}
	return sizeBytesField(kv.Key) + sizeVarintField(uint64(kv.CreateRevision)) +
		sizeVarintField(uint64(kv.ModRevision)) + sizeVarintField(uint64(kv.Version)) +
		sizeBytesField(kv.Value) + sizeVarintField(uint64(kv.Lease)) +
		len(kv.ProtoReflect().GetUnknown())
}

func appendKV(b []byte, kv *mvccpb.KeyValue) []byte {
	if kv == nil {
		return b
	}
	b = appendBytesField(b, tagBytes1, kv.Key)
	b = appendVarintField(b, tagVarint2, uint64(kv.CreateRevision))
	b = appendVarintField(b, tagVarint3, uint64(kv.ModRevision))
	b = appendVarintField(b, tagVarint4, uint64(kv.Version))
	b = appendBytesField(b, tagBytes5, kv.Value)
	b = appendVarintField(b, tagVarint6, uint64(kv.Lease))
	return append(b, kv.ProtoReflect().GetUnknown()...)
}

// sizeKVs and appendKVs write a repeated KeyValue field.
func sizeKVs(kvs []*mvccpb.KeyValue) int {
	n := 0
	for _, kv := range kvs {
		n += sizeMessageField(sizeKV(kv))
	}
	return n
}

func appendKVs(b []byte, tag byte, kvs []*mvccpb.KeyValue) []byte {
	for _, kv := range kvs {
		b = appendKV(appendMessageHead(b, tag, sizeKV(kv)), kv)
	}
	return b
}

func sizePut(r *pb.PutResponse) int {
	if r == nil {
		return 0
	}
	n := sizeHeaderField(r.Header) + len(r.ProtoReflect().GetUnknown())
	if r.PrevKv != nil {
		n += sizeMessageField(sizeKV(r.PrevKv))
	}
	return n
}

func appendPut(b []byte, r *pb.PutResponse) []byte {
	if r == nil {
		return b
	}
	b = appendHeaderField(b, r.Header)
	if r.PrevKv != nil {
		b = appendKV(appendMessageHead(b, tagBytes2, sizeKV(r.PrevKv)), r.PrevKv)
	}
	return append(b, r.ProtoReflect().GetUnknown()...)
}

func sizeRange(r *pb.RangeResponse) int {
	if r == nil {
		return 0
	}
	return sizeHeaderField(r.Header) + sizeKVs(r.Kvs) + sizeVarintField(boolVarint(r.More)) +
		sizeVarintField(uint64(r.Count)) + len(r.ProtoReflect().GetUnknown())
}

func appendRange(b []byte, r *pb.RangeResponse) []byte {
	if r == nil {
		return b
	}
	b = appendHeaderField(b, r.Header)
	b = appendKVs(b, tagBytes2, r.Kvs)
	b = appendVarintField(b, tagVarint3, boolVarint(r.More))
	b = appendVarintField(b, tagVarint4, uint64(r.Count))
	return append(b, r.ProtoReflect().GetUnknown()...)
}

func sizeDelete(r *pb.DeleteRangeResponse) int {
	if r == nil {
		return 0
	}
	return sizeHeaderField(r.Header) + sizeVarintField(uint64(r.Deleted)) + sizeKVs(r.PrevKvs) +
		len(r.ProtoReflect().GetUnknown())
}

func appendDelete(b []byte, r *pb.DeleteRangeResponse) []byte {
	if r == nil {
		return b
	}
	b = appendHeaderField(b, r.Header)
	b = appendVarintField(b, tagVarint2, uint64(r.Deleted))
	b = appendKVs(b, tagBytes3, r.PrevKvs)
	return append(b, r.ProtoReflect().GetUnknown()...)
}

// flatTxn reports whether r has no txn nested in it: only such a one is
// written here, as a nested one would be sized again at every level
// (a nested txn is rare; protobuf-go marshals it).
func flatTxn(r *pb.TxnResponse) bool {
	for _, op := range r.Responses {
		if _, nested := op.GetResponse().(*pb.ResponseOp_ResponseTxn); nested {
			return false
		}
	}
	return true
}

func sizeTxn(r *pb.TxnResponse) int {
	if r == nil {
		return 0
	}
	n := sizeHeaderField(r.Header) + sizeVarintField(boolVarint(r.Succeeded)) + len(r.ProtoReflect().GetUnknown())
	for _, op := range r.Responses {
		n += sizeMessageField(sizeResponseOp(op))
	}
	return n
}

func appendTxn(b []byte, r *pb.TxnResponse) []byte {
	if r == nil {
		return b
	}
	b = appendHeaderField(b, r.Header)
	b = appendVarintField(b, tagVarint2, boolVarint(r.Succeeded))
	for _, op := range r.Responses {
		b = appendResponseOp(appendMessageHead(b, tagBytes3, sizeResponseOp(op)), op)
	}
	return append(b, r.ProtoReflect().GetUnknown()...)
}

// sizeResponseOp is a ResponseOp's size: its one oneof field (never a
// txn: flatTxn), written even when the message in it is nil (as an empty
// message, as protobuf-go does).
func sizeResponseOp(op *pb.ResponseOp) int {
	if op == nil {
		return 0
	}
	n := len(op.ProtoReflect().GetUnknown())
	switch r := op.Response.(type) {
	case *pb.ResponseOp_ResponseRange:
		n += sizeMessageField(sizeRange(r.ResponseRange))
	case *pb.ResponseOp_ResponsePut:
		n += sizeMessageField(sizePut(r.ResponsePut))
	case *pb.ResponseOp_ResponseDeleteRange:
		n += sizeMessageField(sizeDelete(r.ResponseDeleteRange))
	}
	return n
}

func appendResponseOp(b []byte, op *pb.ResponseOp) []byte {
	if op == nil {
		return b
	}
	switch r := op.Response.(type) {
	case *pb.ResponseOp_ResponseRange:
		b = appendRange(appendMessageHead(b, tagBytes1, sizeRange(r.ResponseRange)), r.ResponseRange)
	case *pb.ResponseOp_ResponsePut:
		b = appendPut(appendMessageHead(b, tagBytes2, sizePut(r.ResponsePut)), r.ResponsePut)
	case *pb.ResponseOp_ResponseDeleteRange:
		b = appendDelete(appendMessageHead(b, tagBytes3, sizeDelete(r.ResponseDeleteRange)), r.ResponseDeleteRange)
	}
	return append(b, op.ProtoReflect().GetUnknown()...)
}
