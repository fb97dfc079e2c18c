package mvcc

import (
	"path/filepath"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// TestReadTxnMatchesTxn: a read-only txn answers the same through ReadTxn
// as through the raft path, and does not move the revision or the index.
func TestReadTxnMatchesTxn(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"c", "3"}} {
		if _, err := s.Put(uint64(i+1), &pb.PutRequest{Key: []byte(kv[0]), Value: []byte(kv[1])}); err != nil {
			t.Fatal(err)
		}
	}
	req := &pb.TxnRequest{
		Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL,
			TargetUnion: &pb.Compare_Value{Value: []byte("1")}}},
		Success: []*pb.RequestOp{
			{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c")}}},
			{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
				Compare: []*pb.Compare{{Key: []byte("b"), Target: pb.Compare_VERSION, Result: pb.Compare_GREATER,
					TargetUnion: &pb.Compare_Version{Version: 5}}},
				Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("c")}}}},
			}}},
		},
	}
	if !TxnReadOnly(req) {
		t.Fatal("read-only txn not recognised")
	}
	got, err := s.ReadTxn(req)
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.Txn(4, req)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("ReadTxn %v\nTxn     %v", got, want)
	}
	if s.Rev() != 4 {
		t.Fatalf("revision %d after read-only txns, want 4", s.Rev())
	}
	write := &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("x")}}}}}
	if TxnReadOnly(write) {
		t.Fatal("txn with a put called read-only")
	}
	if _, err := s.ReadTxn(write); err == nil {
		t.Fatal("ReadTxn accepted a write")
	}
	// A future revision inside is refused as in the raft path.
	bad := &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), Revision: 99}}}}}
	if _, err := s.ReadTxn(bad); err == nil {
		t.Fatal("future revision accepted")
	}
}
