package alarm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestKeyEtcdFormat: the bucket key is the marshalled AlarmMember as etcd
// (gogoproto) writes it; want is the key etcd 3.4.23 wrote for member
// 3990370604368066554's NOSPACE alarm (read from its bbolt file).
func TestKeyEtcdFormat(t *testing.T) {
	a := Alarm{MemberID: 3990370604368066554, Type: pb.AlarmType_NOSPACE}
	want, _ := hex.DecodeString("08faef93dcc39da9b0371001")
	if got := Key(a); !bytes.Equal(got, want) {
		t.Fatalf("key %x, want %x", got, want)
	}
	back, err := ParseKey(want)
	if err != nil || back != a {
		t.Fatalf("parse: %v %v", back, err)
	}
	if _, err := ParseKey([]byte{0xff}); err == nil {
		t.Fatal("garbage key parsed")
	}
	if s := a.String(); s != "memberID:3990370604368066554 alarm:NOSPACE " {
		t.Fatalf("String %q", s)
	}
}

func TestApply(t *testing.T) {
	var s Set
	nospace := &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 2, Alarm: pb.AlarmType_NOSPACE}
	r := Apply(s, nospace)
	if !r.Changed || r.Activated == nil || len(r.Resp.Alarms) != 1 || r.Set.Len() != 1 {
		t.Fatalf("activate: %+v", r)
	}
	s = r.Set
	// Again: answered, nothing changes.
	if r := Apply(s, nospace); r.Changed || len(r.Resp.Alarms) != 1 {
		t.Fatalf("activate again: %+v", r)
	}
	s = Apply(s, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_CORRUPT}).Set
	s = Apply(s, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}).Set
	all := Apply(s, &pb.AlarmRequest{Action: pb.AlarmRequest_GET, MemberID: 7}).Resp.Alarms
	if len(all) != 3 || all[0].MemberID != 1 || all[0].Alarm != pb.AlarmType_NOSPACE || all[2].Alarm != pb.AlarmType_CORRUPT {
		t.Fatalf("GET all: %v", all)
	}
	if got := Apply(s, &pb.AlarmRequest{Action: pb.AlarmRequest_GET, Alarm: pb.AlarmType_NOSPACE}).Resp.Alarms; len(got) != 2 {
		t.Fatalf("GET NOSPACE: %v", got)
	}
	// Deactivating an alarm that is not active answers nothing.
	if r := Apply(s, &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 3, Alarm: pb.AlarmType_NOSPACE}); r.Changed || len(r.Resp.Alarms) != 0 {
		t.Fatalf("deactivate absent: %+v", r)
	}
	r = Apply(s, &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE, MemberID: 2, Alarm: pb.AlarmType_NOSPACE})
	if !r.Changed || r.Deactivated == nil || r.Set.Len() != 2 || s.Len() != 3 {
		t.Fatalf("deactivate: %+v (the old set must not change: %d)", r, s.Len())
	}
}

func TestCheck(t *testing.T) {
	put := &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte("k")}}
	del := &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("k")}}
	compact := &pb.InternalRaftRequest{Compaction: &pb.CompactionRequest{Revision: 1}}
	txnDel := &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: del.DeleteRange}}}}}
	nested := &pb.InternalRaftRequest{Txn: &pb.TxnRequest{Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: put.Put}}},
	}}}}}}
	grant := &pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{TTL: 10}}
	revoke := &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 1}}
	disarm := &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_DEACTIVATE}}
	nospace := NewSet([]Alarm{{1, pb.AlarmType_NOSPACE}})
	corrupt := NewSet([]Alarm{{1, pb.AlarmType_CORRUPT}, {2, pb.AlarmType_NOSPACE}})
	for _, tc := range []struct {
		name string
		set  Set
		req  *pb.InternalRaftRequest
		want error
	}{
		{"no alarm put", Set{}, put, nil},
		{"nospace put", nospace, put, ErrNoSpace},
		{"nospace nested txn put", nospace, nested, ErrNoSpace},
		{"nospace lease grant", nospace, grant, ErrNoSpace},
		{"nospace delete", nospace, del, nil},
		{"nospace txn of deletes", nospace, txnDel, nil},
		{"nospace compact", nospace, compact, nil},
		{"nospace revoke", nospace, revoke, nil},
		{"nospace disarm", nospace, disarm, nil},
		{"corrupt put", corrupt, put, ErrCorrupt},
		{"corrupt delete", corrupt, del, ErrCorrupt},
		{"corrupt compact", corrupt, compact, ErrCorrupt},
		{"corrupt revoke", corrupt, revoke, ErrCorrupt},
		{"corrupt disarm", corrupt, disarm, nil},
	} {
		if got := Check(tc.set, tc.req); !errors.Is(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
