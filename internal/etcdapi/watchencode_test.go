package etcdapi

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// The codec must put on the wire exactly what marshalling the whole
// response does, for any watch id (0 is not written at all).
func TestSharedEventsWireBytes(t *testing.T) {
	hdr := func(rev int64) *pb.ResponseHeader {
		return &pb.ResponseHeader{ClusterId: 7, MemberId: 9, RaftTerm: 3, Revision: rev}
	}
	put := &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 256), CreateRevision: 2, ModRevision: 5, Version: 4, Lease: 8}}
	del := &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("k2"), ModRevision: 5}}
	var enc eventsEncoder
	codec := newWatchCodec()
	for _, tc := range []struct {
		id  int64
		rev int64
		evs []*mvccpb.Event
	}{
		{0, 5, []*mvccpb.Event{put}},
		{1, 5, []*mvccpb.Event{put}},
		{-1, 5, []*mvccpb.Event{put, del}},
		{1 << 40, 6, []*mvccpb.Event{del}},
		{2, 7, []*mvccpb.Event{put, put, put, put, put, del}}, // over the pooling threshold
	} {
		r, err := enc.response(tc.id, tc.rev, tc.evs, hdr)
		if err != nil {
			t.Fatal(err)
		}
		data, err := codec.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got := data.Materialize()
		data.Free()
		want, err := proto.Marshal(&pb.WatchResponse{Header: hdr(tc.rev), WatchId: tc.id, Events: tc.evs})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) || r.size() != len(want) {
			t.Fatalf("id %d rev %d: wire bytes (size %d)\n%x\nwant\n%x", tc.id, tc.rev, r.size(), got, want)
		}
	}
	// every other message goes through gRPC's proto codec
	data, err := codec.Marshal(&pb.PutResponse{Header: hdr(3)})
	if err != nil {
		t.Fatal(err)
	}
	var back pb.PutResponse
	if err := codec.Unmarshal(data, &back); err != nil || back.Header.Revision != 3 {
		t.Fatalf("a PutResponse through the codec: %v, %v", &back, err)
	}
}

// A batch is encoded once however many watches are sent it; a new batch
// (another slice, or the same events at another revision) again.
func TestSharedEventsEncodedOnce(t *testing.T) {
	n := 0
	hdr := func(rev int64) *pb.ResponseHeader { n++; return &pb.ResponseHeader{Revision: rev} }
	evs := []*mvccpb.Event{{Kv: &mvccpb.KeyValue{Key: []byte("k"), ModRevision: 3}}}
	var enc eventsEncoder
	for id := range int64(100) {
		if _, err := enc.response(id, 3, evs, hdr); err != nil {
			t.Fatal(err)
		}
	}
	if n != 1 {
		t.Fatalf("encoded %d times for one batch, want 1", n)
	}
	if _, err := enc.response(0, 4, evs, hdr); err != nil || n != 2 {
		t.Fatalf("another revision: encoded %d times, %v", n, err)
	}
	if _, err := enc.response(0, 4, append([]*mvccpb.Event(nil), evs...), hdr); err != nil || n != 3 {
		t.Fatalf("another slice: encoded %d times, %v", n, err)
	}
	// a batch too large to keep is encoded for each watch
	huge := []*mvccpb.Event{{Kv: &mvccpb.KeyValue{Key: []byte("h"), Value: make([]byte, maxSharedEventsBytes), ModRevision: 6}}}
	for id := range int64(2) {
		if _, err := enc.response(id, 6, huge, hdr); err != nil {
			t.Fatal(err)
		}
	}
	if n != 5 {
		t.Fatalf("a batch over the bound: %d encodings in all, want 5", n)
	}
	// two picks of one batch that start alike are different events
	batch := []*mvccpb.Event{evs[0], {Kv: &mvccpb.KeyValue{Key: []byte("a"), ModRevision: 5}}, {Kv: &mvccpb.KeyValue{Key: []byte("b"), ModRevision: 5}}}
	a, _ := enc.response(1, 5, []*mvccpb.Event{batch[0], batch[1]}, hdr)
	b, _ := enc.response(2, 5, []*mvccpb.Event{batch[0], batch[2]}, hdr)
	if bytes.Equal(a.s.events, b.s.events) {
		t.Fatal("two different picks of one batch share one encoding")
	}
}

// A small response gets a buffer of its own size, a large one a pooled
// buffer: pooled buffers come in size classes (4 KiB for a 330-byte
// response), and a stream whose client stopped reading keeps 64 KiB of
// responses queued in gRPC, which would then hold twelve times that.
func TestWatchCodecPoolsOnlyLargeResponses(t *testing.T) {
	hdr := func(rev int64) *pb.ResponseHeader { return &pb.ResponseHeader{Revision: rev} }
	put := &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 256), ModRevision: 5}}
	var enc eventsEncoder
	codec := newWatchCodec()
	for _, tc := range []struct {
		evs    []*mvccpb.Event
		pooled bool
	}{
		{[]*mvccpb.Event{put}, false},
		{[]*mvccpb.Event{put, put, put, put, put, put}, true},
	} {
		r, err := enc.response(1, 5, tc.evs, hdr)
		if err != nil {
			t.Fatal(err)
		}
		data, err := codec.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		_, own := data[0].(mem.SliceBuffer)
		if len(data) != 1 || own == tc.pooled {
			t.Errorf("%d events (%d bytes): buffer %T, want pooled=%v", len(tc.evs), r.size(), data[0], tc.pooled)
		}
		data.Free()
	}
}
