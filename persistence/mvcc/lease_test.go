package mvcc

import (
	"errors"
	"reflect"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func (ts *testStore) grant(id, ttl int64) {
	ts.t.Helper()
	ts.index++
	if _, err := ts.LeaseGrant(ts.index, &pb.LeaseGrantRequest{ID: id, TTL: ttl}); err != nil {
		ts.t.Fatalf("grant %d: %v", id, err)
	}
}

func (ts *testStore) leaseKeys(id int64) []string {
	ts.t.Helper()
	_, keys, ok := ts.Lease(id, true)
	if !ok {
		ts.t.Fatalf("lease %d not found", id)
	}
	out := []string{}
	for _, k := range keys {
		out = append(out, string(k))
	}
	return out
}

func TestLeaseRecordIsEtcdLeasepb(t *testing.T) {
	// bytes of leasepb.Lease{ID: 1, TTL: 2, RemainingTTL: 3} from etcd's
	// generated code; zero fields are left out.
	if got := marshalLease(Lease{ID: 1, TTL: 2, RemainingTTL: 3}); !reflect.DeepEqual(got, []byte{8, 1, 16, 2, 24, 3}) {
		t.Fatalf("marshal = %v", got)
	}
	if got := marshalLease(Lease{ID: 0x694d8b2e3a1c2f05, TTL: 10}); len(got) != 12 {
		t.Fatalf("marshal without remaining = %v", got)
	}
	for _, l := range []Lease{{1, 2, 3}, {-5, MaxLeaseTTL, 0}, {0x7fffffffffffffff, 1, 1}} {
		got, err := unmarshalLease(marshalLease(l))
		if err != nil || got != l {
			t.Fatalf("round trip %v = %v, %v", l, got, err)
		}
	}
	if _, err := unmarshalLease([]byte{8}); err == nil {
		t.Fatal("truncated record accepted")
	}
}

func TestLeaseGrantErrors(t *testing.T) {
	ts := openTest(t, Options{})
	ts.grant(7, 60)
	for _, c := range []struct {
		req  *pb.LeaseGrantRequest
		want error
	}{
		{&pb.LeaseGrantRequest{ID: 7, TTL: 5}, ErrLeaseExists},
		{&pb.LeaseGrantRequest{ID: 8, TTL: MaxLeaseTTL + 1}, ErrLeaseTTLTooLarge},
		{&pb.LeaseGrantRequest{ID: 0, TTL: 5}, ErrLeaseNotFound},
	} {
		ts.index++
		if _, err := ts.LeaseGrant(ts.index, c.req); !errors.Is(err, c.want) {
			t.Errorf("grant %v: %v, want %v", c.req, err, c.want)
		}
	}
	if _, err := ts.LeaseGrant(ts.index, &pb.LeaseGrantRequest{ID: 9, TTL: 5}); !errors.Is(err, ErrAlreadyApplied) {
		t.Fatalf("replayed grant: %v", err)
	}
	if got := ts.Leases(); !reflect.DeepEqual(got, []Lease{{ID: 7, TTL: 60}}) {
		t.Fatalf("leases = %v", got)
	}
}

func TestLeaseKeysAttachDetachAndRevoke(t *testing.T) {
	ts := openTest(t, Options{})
	ts.grant(1, 60)
	ts.grant(2, 60)
	for _, k := range []string{"a", "b", "c", "d"} {
		if _, err := ts.do(&pb.PutRequest{Key: []byte(k), Value: []byte("v"), Lease: 1}); err != nil {
			t.Fatal(err)
		}
	}
	ts.mustPut("b", "no lease")                                                        // detaches b
	ts.do(&pb.PutRequest{Key: []byte("c"), Value: []byte("v"), Lease: 2})              // moves c
	ts.do(del("d", ""))                                                                // detaches d
	ts.do(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("e", "x"), opDel("zz", "")}})  // no lease
	ts.do(&pb.PutRequest{Key: []byte("a"), Value: []byte("again"), IgnoreLease: true}) // keeps a
	ts.do(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("f"), Lease: 1}}}}})
	if got := ts.leaseKeys(1); !reflect.DeepEqual(got, []string{"a", "f"}) {
		t.Fatalf("lease 1 keys = %v", got)
	}
	if got := ts.leaseKeys(2); !reflect.DeepEqual(got, []string{"c"}) {
		t.Fatalf("lease 2 keys = %v", got)
	}
	ts.reopen(Options{})
	if got := ts.leaseKeys(1); !reflect.DeepEqual(got, []string{"a", "f"}) {
		t.Fatalf("lease 1 keys after reopen = %v", got)
	}
	rev := ts.Rev()
	ts.index++
	resp, err := ts.LeaseRevoke(ts.index, &pb.LeaseRevokeRequest{ID: 1})
	if err != nil || resp.Header.Revision != rev+1 {
		t.Fatalf("revoke: %v, %v; want revision %d", resp, err, rev+1)
	}
	if n := len(ts.mustRange(rng("a", "g")).Kvs); n != 3 { // b, c, e
		t.Fatalf("%d keys left after revoke, want 3", n)
	}
	for _, k := range []string{"a", "f"} {
		if kvs := ts.mustRange(&pb.RangeRequest{Key: []byte(k), Revision: rev + 1}).Kvs; len(kvs) != 0 {
			t.Fatalf("%s still there", k)
		}
	}
	ts.index++
	if _, err := ts.LeaseRevoke(ts.index, &pb.LeaseRevokeRequest{ID: 1}); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
	if _, err := ts.do(&pb.PutRequest{Key: []byte("a"), Lease: 1}); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("put with revoked lease: %v", err)
	}
	ts.reopen(Options{})
	if got := ts.Leases(); !reflect.DeepEqual(got, []Lease{{ID: 2, TTL: 60}}) {
		t.Fatalf("leases after revoke and reopen = %v", got)
	}
	// a revoke with no keys keeps the revision
	ts.index++
	if _, err := ts.LeaseRevoke(ts.index, &pb.LeaseRevokeRequest{ID: 2}); err != nil {
		t.Fatal(err)
	}
	rev = ts.Rev()
	ts.grant(3, 10)
	ts.index++
	if resp, err := ts.LeaseRevoke(ts.index, &pb.LeaseRevokeRequest{ID: 3}); err != nil || resp.Header.Revision != rev {
		t.Fatalf("empty revoke: %v %v, want revision %d", resp, err, rev)
	}
}

func TestLeaseCheckpoint(t *testing.T) {
	ts := openTest(t, Options{})
	ts.grant(1, 600)
	ts.grant(2, 600)
	ts.index++
	req := &pb.LeaseCheckpointRequest{Checkpoints: []*pb.LeaseCheckpoint{{ID: 1, Remaining_TTL: 400}, {ID: 99, Remaining_TTL: 5}}}
	if _, err := ts.LeaseCheckpoint(ts.index, req); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.LeaseCheckpoint(ts.index, req); !errors.Is(err, ErrAlreadyApplied) {
		t.Fatalf("replayed checkpoint: %v", err)
	}
	ts.reopen(Options{})
	want := []Lease{{ID: 1, TTL: 600, RemainingTTL: 400}, {ID: 2, TTL: 600}}
	if got := ts.Leases(); !reflect.DeepEqual(got, want) {
		t.Fatalf("leases = %v, want %v", got, want)
	}
}

// FuzzLeaseRecord: any bytes decode to a lease or an error, never a panic,
// and what decodes re-encodes to a record that decodes the same.
func FuzzLeaseRecord(f *testing.F) {
	f.Add(marshalLease(Lease{ID: 1, TTL: 2, RemainingTTL: 3}))
	f.Add([]byte{8})
	f.Add([]byte{0x22, 2, 'h', 'i', 8, 5}) // an unknown length-delimited field
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := unmarshalLease(b)
		if err != nil {
			return
		}
		again, err := unmarshalLease(marshalLease(l))
		if err != nil || again != l {
			t.Fatalf("%v re-decoded as %v, %v", l, again, err)
		}
	})
}
