package mvcc

import (
	"path/filepath"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// testStore is a Store in t.TempDir() with a raft index counter.
type testStore struct {
	*Store
	t     testing.TB
	index uint64
}

func openTest(t testing.TB, opts Options) *testStore {
	t.Helper()
	opts.NoSync = true
	s, err := Open(filepath.Join(t.TempDir(), "db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testStore{Store: s, t: t, index: s.ConsistentIndex()}
	t.Cleanup(func() { _ = ts.Close() })
	return ts
}

// waitBackground waits for the running background commit, if any, and
// leaves its result for the store's next call to find.
func (ts *testStore) waitBackground() {
	if ts.job != nil {
		<-ts.job.done
	}
}

// commitGate holds the first bbolt commit of a store inside its
// transaction: entered is closed once it got there, and it goes on at
// open. Later commits pass.
type commitGate struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	calls   int // bbolt serializes write transactions, so no lock
}

// holdFirstCommit installs a commitGate on ts. A test that fails while the
// gate is shut still ends: the gate opens before ts closes.
func holdFirstCommit(ts *testStore) *commitGate {
	g := &commitGate{entered: make(chan struct{}), release: make(chan struct{})}
	ts.commitHook = func() error {
		if g.calls++; g.calls == 1 {
			close(g.entered)
			<-g.release
		}
		return nil
	}
	ts.t.Cleanup(g.open)
	return g
}

func (g *commitGate) open() { g.once.Do(func() { close(g.release) }) }

// reopen closes the store and opens its file again.
func (ts *testStore) reopen(opts Options) {
	ts.t.Helper()
	if err := ts.Close(); err != nil {
		ts.t.Fatal(err)
	}
	opts.NoSync = true
	s, err := Open(ts.Path(), opts)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.Store = s
	ts.index = s.ConsistentIndex()
}

// do validates req as the gRPC layer would and applies it as the applier
// would, at the next raft index.
func (ts *testStore) do(req proto.Message) (proto.Message, error) {
	switch r := req.(type) {
	case *pb.RangeRequest:
		if err := ValidateRange(r); err != nil {
			return nil, err
		}
		return ts.Range(r)
	case *pb.PutRequest:
		if err := ValidatePut(r); err != nil {
			return nil, err
		}
		ts.index++
		return ts.Put(ts.index, r)
	case *pb.DeleteRangeRequest:
		if err := ValidateDeleteRange(r); err != nil {
			return nil, err
		}
		ts.index++
		return ts.DeleteRange(ts.index, r)
	case *pb.TxnRequest:
		if err := ValidateTxn(r, DefaultMaxTxnOps); err != nil {
			return nil, err
		}
		ts.index++
		return ts.Txn(ts.index, r)
	case *pb.CompactionRequest:
		if err := ValidateCompact(r); err != nil {
			return nil, err
		}
		ts.index++
		return ts.Compact(ts.index, r)
	}
	ts.t.Fatalf("unknown request %T", req)
	return nil, nil
}

func (ts *testStore) mustPut(key, value string) *pb.PutResponse {
	ts.t.Helper()
	resp, err := ts.do(&pb.PutRequest{Key: []byte(key), Value: []byte(value)})
	if err != nil {
		ts.t.Fatalf("put %q: %v", key, err)
	}
	return resp.(*pb.PutResponse)
}

func (ts *testStore) mustRange(req *pb.RangeRequest) *pb.RangeResponse {
	ts.t.Helper()
	resp, err := ts.Range(req)
	if err != nil {
		ts.t.Fatalf("range %v: %v", req, err)
	}
	return resp
}

// request builders, short to keep tables readable
func put(k, v string) *pb.PutRequest { return &pb.PutRequest{Key: []byte(k), Value: []byte(v)} }
func get(k string) *pb.RangeRequest  { return &pb.RangeRequest{Key: []byte(k)} }
func rng(k, end string) *pb.RangeRequest {
	return &pb.RangeRequest{Key: []byte(k), RangeEnd: []byte(end)}
}
func del(k, end string) *pb.DeleteRangeRequest {
	return &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: []byte(end)}
}
func opPut(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: put(k, v)}}
}
func opGet(r *pb.RangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
}
func opDel(k, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: del(k, end)}}
}
func opTxn(t *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: t}}
}
func cmpVersion(k string, r pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_VERSION, Result: r, TargetUnion: &pb.Compare_Version{Version: v}}
}
func cmpValue(k string, r pb.Compare_CompareResult, v string) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_VALUE, Result: r, TargetUnion: &pb.Compare_Value{Value: []byte(v)}}
}
func cmpMod(k string, r pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_MOD, Result: r, TargetUnion: &pb.Compare_ModRevision{ModRevision: v}}
}
func cmpCreate(k string, r pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_CREATE, Result: r, TargetUnion: &pb.Compare_CreateRevision{CreateRevision: v}}
}
func cmpLease(k string, r pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_LEASE, Result: r, TargetUnion: &pb.Compare_Lease{Lease: v}}
}
func withRange(c *pb.Compare, end string) *pb.Compare { c.RangeEnd = []byte(end); return c }

// wire round-trips m through its encoding, so that a response built here
// compares with one received over gRPC (nil and empty messages alike).
func wire(t testing.TB, m proto.Message) proto.Message {
	t.Helper()
	if m == nil {
		return nil
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out := m.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}
