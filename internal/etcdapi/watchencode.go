package etcdapi

import (
	"fmt"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
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
	evs    []*mvccpb.Event
	header *pb.ResponseHeader
	// encoded holds the events as the events field (11) of a WatchResponse.
	encoded []byte
}

// maxSharedEventsBytes bounds what the encoder keeps between batches: a
// batch encoded larger is sent and not kept (the next watch encodes it
// again), so an idle member holds at most this much.
const maxSharedEventsBytes = 1 << 20

// eventsEncoder keeps the newest batch encoded; streams share it without a
// lock (two that miss at once both encode, and one of them is kept).
type eventsEncoder struct{ last atomic.Pointer[sharedEvents] }

// response returns the response to watch id with evs at rev: its header
// and watch id set as fields, its events as the encoded bytes in the
// message's unknown fields. Protobuf writes known fields in field order and
// unknown ones after them, so the wire bytes are those of
// &pb.WatchResponse{Header, WatchId, Events} marshalled as usual. Only a
// stream that marshals what it sends (a gRPC stream) may get it: read as a
// Go value it has no events.
func (e *eventsEncoder) response(id, rev int64, evs []*mvccpb.Event, header func(int64) *pb.ResponseHeader) (*pb.WatchResponse, error) {
	s := e.last.Load()
	if s == nil || s.rev != rev || &s.evs[0] != &evs[0] || len(s.evs) != len(evs) {
		enc, err := proto.Marshal(&pb.WatchResponse{Events: evs})
		if err != nil {
			return nil, fmt.Errorf("etcdapi: encode watch events at revision %d: %w", rev, err)
		}
		s = &sharedEvents{rev: rev, evs: evs, header: header(rev), encoded: enc}
		if len(enc) <= maxSharedEventsBytes {
			e.last.Store(s)
		}
	}
	r := &pb.WatchResponse{Header: s.header, WatchId: id}
	r.ProtoReflect().SetUnknown(s.encoded)
	return r, nil
}
