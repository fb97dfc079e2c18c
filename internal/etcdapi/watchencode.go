package etcdapi

import (
	"fmt"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// sharedEvents is one hub batch's events encoded once for every watch, on
// any stream, that is sent all of them: the hub hands every such watch the
// same slice, and 100 watches of one key otherwise marshal the same events
// 100 times (a tenth of a member's CPU in the watch-latency workload, and
// most of its garbage).
type sharedEvents struct {
	rev int64
	// evs is the slice encoded: the same backing array and length are the
	// same events (nobody changes a delivered slice; a filtered pick is a
	// new array), and holding it keeps the address from being reused.
	evs []*mvccpb.Event
	// header and events are the WatchResponse fields 1 and 11 encoded,
	// tags included.
	header, events []byte
}

// maxSharedEventsBytes bounds what the encoder keeps between batches: a
// batch encoded larger is sent and not kept (the next watch encodes it
// again), so an idle member holds at most this much.
const maxSharedEventsBytes = 1 << 20

// eventsEncoder keeps the newest batch encoded; streams share it without a
// lock (two that miss at once both encode, and one of them is kept).
type eventsEncoder struct{ last atomic.Pointer[sharedEvents] }

// encodedWatchResponse is a WatchResponse with events, ready to be written
// by watchCodec: only a gRPC stream of a server built with the Services'
// ServerOptions can send it.
type encodedWatchResponse struct {
	s  *sharedEvents
	id int64
}

// response returns the response to watch id with evs at rev, the header
// from header(rev) when the batch is new.
func (e *eventsEncoder) response(id, rev int64, evs []*mvccpb.Event, header func(int64) *pb.ResponseHeader) (*encodedWatchResponse, error) {
	s := e.last.Load()
	if s == nil || s.rev != rev || &s.evs[0] != &evs[0] || len(s.evs) != len(evs) {
		hdr, err := proto.Marshal(&pb.WatchResponse{Header: header(rev)})
		if err != nil {
			return nil, fmt.Errorf("etcdapi: encode watch header at revision %d: %w", rev, err)
		}
		enc, err := proto.Marshal(&pb.WatchResponse{Events: evs})
		if err != nil {
			return nil, fmt.Errorf("etcdapi: encode watch events at revision %d: %w", rev, err)
		}
		s = &sharedEvents{rev: rev, evs: evs, header: hdr, events: enc}
		if len(enc) <= maxSharedEventsBytes {
			e.last.Store(s)
		}
	}
	return &encodedWatchResponse{s: s, id: id}, nil
}

// size is the length of the response's encoding.
func (r *encodedWatchResponse) size() int {
	n := len(r.s.header) + len(r.s.events)
	if r.id != 0 {
		n += protowire.SizeTag(2) + protowire.SizeVarint(uint64(r.id))
	}
	return n
}

// appendTo appends the response's encoding: the fields in field order, as
// protobuf marshals &pb.WatchResponse{Header, WatchId, Events}.
func (r *encodedWatchResponse) appendTo(b []byte) []byte {
	b = append(b, r.s.header...)
	if r.id != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(r.id))
	}
	return append(b, r.s.events...)
}

// watchCodec is gRPC's proto codec that also writes encodedWatchResponse,
// by gRPC's rule for its own messages: one of up to
// mem.BufferPoolingThreshold (1 KiB) into a slice of its size, a larger one
// into a pooled buffer gRPC frees once it wrote the frame. Pooling small
// ones costs memory where it matters: a pooled buffer comes in size
// classes (a 330-byte response takes 4 KiB), and a watch stream whose
// client stopped reading keeps 64 KiB of responses queued in gRPC, which
// became 800 KiB per stream (1,000 stalled watches: +1,325 MiB of RSS
// instead of +760).
type watchCodec struct{ encoding.CodecV2 }

func newWatchCodec() watchCodec {
	return watchCodec{encoding.GetCodecV2(grpcproto.Name)}
}

func (c watchCodec) Marshal(v any) (mem.BufferSlice, error) {
	r, ok := v.(*encodedWatchResponse)
	if !ok {
		return c.CodecV2.Marshal(v)
	}
	size := r.size()
	if mem.IsBelowBufferPoolingThreshold(size) {
		return mem.BufferSlice{mem.SliceBuffer(r.appendTo(make([]byte, 0, size)))}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	*buf = r.appendTo((*buf)[:0])
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// watchServerOption makes the server's codec watchCodec.
func watchServerOption() grpc.ServerOption {
	return grpc.ForceServerCodecV2(newWatchCodec())
}
