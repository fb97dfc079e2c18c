package etcdapi

import (
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

func TestSendFragments(t *testing.T) {
	big := []byte(strings.Repeat("x", 400))
	var evs []*mvccpb.Event
	for i := 0; i < 10; i++ {
		evs = append(evs, &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte{byte('a' + i)}, Value: big, ModRevision: int64(i + 2)}})
	}
	wr := &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: 11}, WatchId: 3, Events: evs}
	var got []*pb.WatchResponse
	send := func(r *pb.WatchResponse) error { got = append(got, r); return nil }
	if err := sendFragments(wr, 1000, send); err != nil {
		t.Fatal(err)
	}
	var n int
	for i, r := range got {
		n += len(r.Events)
		if last := i == len(got)-1; r.Fragment == last {
			t.Fatalf("fragment %d of %d: Fragment=%v", i, len(got), r.Fragment)
		}
		if len(r.Events) > 1 && proto.Size(r) >= 1000 {
			t.Fatalf("fragment %d is %d bytes", i, proto.Size(r))
		}
		if r.WatchId != 3 || r.Header.Revision != 11 {
			t.Fatalf("fragment %d lost its id or header: %v", i, r)
		}
	}
	if n != len(evs) || len(got) < 2 {
		t.Fatalf("%d fragments with %d events", len(got), n)
	}
	// small enough, or a single event: one response as it is
	got = nil
	if err := sendFragments(&pb.WatchResponse{Events: evs[:1]}, 10, send); err != nil || len(got) != 1 || got[0].Fragment {
		t.Fatalf("single event: %v %v", got, err)
	}
}
