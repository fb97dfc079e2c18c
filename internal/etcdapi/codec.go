package etcdapi

import (
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// wireMessage is a response this package writes itself: the watch events
// encoded once for many watches (watchencode.go) and the KV service's
// responses (respencode.go).
type wireMessage interface {
	size() int
	appendTo(b []byte) []byte
}

// serverCodec is gRPC's proto codec for the client endpoint, except that
// it writes the wireMessages itself; everything else (other services'
// messages, every request) goes through gRPC's. It follows gRPC's rule for
// the buffer: a message of up to mem.BufferPoolingThreshold (1 KiB) into a
// slice of its size, a larger one into a pooled buffer gRPC frees once it
// wrote the frame. Pooling small ones costs memory where it matters: a
// pooled buffer comes in size classes (a 330-byte response takes 4 KiB),
// and a watch stream whose client stopped reading keeps 64 KiB of
// responses queued in gRPC, which became 800 KiB per stream (1,000
// stalled watches: +1,325 MiB of RSS instead of +760).
type serverCodec struct{ encoding.CodecV2 }

func newServerCodec() serverCodec {
	return serverCodec{encoding.GetCodecV2(grpcproto.Name)}
}

func (c serverCodec) Marshal(v any) (mem.BufferSlice, error) {
	var w wireMessage
	switch m := v.(type) {
	case *encodedWatchResponse:
		w = m
	case *pb.PutResponse:
		w = putResponseWire{m}
	case *pb.RangeResponse:
		w = rangeResponseWire{m}
	case *pb.DeleteRangeResponse:
		w = deleteResponseWire{m}
	case *pb.TxnResponse:
		if m == nil || !flatTxn(m) {
			return c.CodecV2.Marshal(v)
		}
		w = txnResponseWire{m}
	default:
		return c.CodecV2.Marshal(v)
	}
	size := w.size()
	if mem.IsBelowBufferPoolingThreshold(size) {
		b := w.appendTo(make([]byte, 0, size))
		if len(b) != size {
			return nil, fmt.Errorf("etcdapi: %T encoded in %d bytes, sized %d", v, len(b), size)
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	*buf = w.appendTo((*buf)[:0])
	if len(*buf) != size {
		n := len(*buf)
		pool.Put(buf)
		return nil, fmt.Errorf("etcdapi: %T encoded in %d bytes, sized %d", v, n, size)
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// serverCodecOption makes the server's codec serverCodec.
func serverCodecOption() grpc.ServerOption {
	return grpc.ForceServerCodecV2(newServerCodec())
}
