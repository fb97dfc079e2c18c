package applier

import (
	"errors"
	"testing"
	"testing/synctest"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/messages"
	"github.com/troupedb/troupe/persistence/alarm"
)

// TestApplyAlarms: an applied NOSPACE alarm refuses puts but not deletes,
// is published to the member view, is loaded again by a new applier
// (a restart), and a disarm lets puts apply again.
func TestApplyAlarms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openStore(t)
		sys := newSystem(t)
		client := newClient(sys, 1)
		f := start(t, sys, Config{Store: store, Client: client})
		activate := &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}
		res := f.applyAll(
			entry(t, 1, 11, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a")}}),
			entry(t, 2, 12, &pb.InternalRaftRequest{Alarm: activate}),
			entry(t, 3, 13, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("b")}}),
			entry(t, 4, 14, &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}),
		)
		if res[0].Err != nil || res[1].Err != nil || len(res[1].Resp.(*pb.AlarmResponse).Alarms) != 1 {
			t.Fatalf("put, activate: %+v %+v", res[0], res[1])
		}
		if !errors.Is(res[2].Err, alarm.ErrNoSpace) || res[3].Err != nil {
			t.Fatalf("put, delete under NOSPACE: %v, %v", res[2].Err, res[3].Err)
		}
		if !client.View().Alarms().Has(pb.AlarmType_NOSPACE) || store.ConsistentIndex() != 4 {
			t.Fatalf("view alarms %v, index %d", client.View().Alarms().Get(pb.AlarmType_NONE), store.ConsistentIndex())
		}
		if err := sys.Root.StopFuture(f.pid).Wait(); err != nil {
			t.Fatal(err)
		}
		// A new applier (a restart) of a new member view loads the alarm
		// from the backend.
		client2 := newClient(sys, 1)
		f2 := start(t, sys, Config{Store: store, Client: client2})
		disarm := &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}
		res = f2.applyAll(
			entry(t, 5, 15, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("c")}}),
			entry(t, 6, 16, &pb.InternalRaftRequest{Alarm: disarm}),
			entry(t, 7, 17, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("d")}}),
		)
		if !errors.Is(res[0].Err, alarm.ErrNoSpace) || res[1].Err != nil || res[2].Err != nil {
			t.Fatalf("after restart: %+v", res)
		}
		if client2.View().Alarms().Len() != 0 {
			t.Fatalf("alarms after disarm: %v", client2.View().Alarms().Get(pb.AlarmType_NONE))
		}
	})
}

// TestApplyPastQuota: a put whose cost takes the backend past the quota
// at apply time still applies (every member applies the same entries) but
// answers alarm.ErrNoSpace, and the member proposes its NOSPACE alarm once,
// as etcd's quota applier does.
func TestApplyPastQuota(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := openStore(t)
		sys := newSystem(t)
		client := newClient(sys, 7)
		size, _ := store.DBSize()
		f := start(t, sys, Config{Store: store, Client: client, QuotaBytes: size + 300})
		// The alarm goes to the published raft actor: the stand-in.
		client.SetCore(&raftclient.Core{Raft: f.raftPID, Store: store})
		res := f.applyAll(
			entry(t, 1, 11, &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}),
			entry(t, 2, 12, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("a"), Value: []byte("v")}}),
			entry(t, 3, 13, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("b"), Value: make([]byte, 100)}}),
			entry(t, 4, 14, &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("c"), Value: make([]byte, 100)}}),
		)
		if res[0].Err != nil || res[1].Err != nil {
			t.Fatalf("delete, small put: %v %v", res[0].Err, res[1].Err)
		}
		for i := 2; i < 4; i++ {
			if !errors.Is(res[i].Err, alarm.ErrNoSpace) {
				t.Fatalf("put %d past the quota: %v", i, res[i].Err)
			}
		}
		if store.Rev() != 4 {
			t.Fatalf("revision %d: the puts past the quota must still apply", store.Rev())
		}
		synctest.Wait()
		var props []*messages.Propose
		for len(f.props.C) > 0 {
			if p, ok := (<-f.props.C).(*messages.Propose); ok {
				props = append(props, p)
			}
		}
		if len(props) != 1 {
			t.Fatalf("%d proposals, want the NOSPACE alarm once", len(props))
		}
		var req pb.InternalRaftRequest
		if err := proto.Unmarshal(props[0].Data, &req); err != nil {
			t.Fatal(err)
		}
		if a := req.Alarm; a == nil || a.Action != pb.AlarmRequest_ACTIVATE || a.MemberID != 7 || a.Alarm != pb.AlarmType_NOSPACE {
			t.Fatalf("proposed %v, want this member's NOSPACE alarm", &req)
		}
	})
}
