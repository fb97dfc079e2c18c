package mvcc

import (
	"fmt"
	"math/rand/v2"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// A compare of one key's create or mod revision or version reads the key
// index, not the value (revisionsOf). Through seeded histories of puts,
// deletes, txns, compactions and reopens (with the index from the
// checkpoint and from the key bucket), the index must give, for every
// key, what reading the key gives.
func TestRevisionsOfMatchesRead(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 0))
			ts := openTest(t, Options{})
			ts.checkpointMinKeys = 1 // Close writes one however few the keys
			key := func() string { return fmt.Sprint("k", rnd.IntN(12)) }
			for step := range 400 {
				switch n := rnd.IntN(100); {
				case n < 55:
					ts.mustPut(key(), fmt.Sprint("v", step))
				case n < 65:
					if _, err := ts.do(del(key(), "")); err != nil {
						t.Fatal(err)
					}
				case n < 70:
					if _, err := ts.do(del("k3", "k7")); err != nil {
						t.Fatal(err)
					}
				case n < 85:
					k := key()
					txn := &pb.TxnRequest{Compare: []*pb.Compare{cmpVersion(k, pb.Compare_GREATER, 1)}, Success: []*pb.RequestOp{opPut(k, "t")}, Failure: []*pb.RequestOp{opDel(k, "")}}
					if _, err := ts.do(txn); err != nil {
						t.Fatal(err)
					}
				case n < 92:
					if rev := ts.Rev() - int64(rnd.IntN(20)); rev > ts.CompactRev() {
						if _, err := ts.do(&pb.CompactionRequest{Revision: rev}); err != nil {
							t.Fatal(err)
						}
					}
				case n < 96:
					ts.reopen(Options{}) // the index from its checkpoint
					ts.checkpointMinKeys = 1
				default:
					reopenWithoutCheckpoint(ts) // the index from the key bucket
					ts.checkpointMinKeys = 1
				}
				checkRevisionsOf(t, ts, step)
			}
		})
	}
}

func reopenWithoutCheckpoint(ts *testStore) {
	ts.t.Helper()
	if err := ts.CloseForReplace(); err != nil {
		ts.t.Fatal(err)
	}
	s, err := Open(ts.Path(), Options{NoSync: true})
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.Store = s
	ts.index = s.ConsistentIndex()
}

func checkRevisionsOf(t *testing.T, ts *testStore, step int) {
	t.Helper()
	s := ts.Store
	s.mu.RLock()
	defer s.mu.RUnlock()
	w := &writeTxn{view: view{s: s, curRev: s.currentRev}, beginRev: s.currentRev}
	defer w.close()
	for i := range 12 {
		key := []byte(fmt.Sprint("k", i))
		var got mvccpb.KeyValue
		if !w.revisionsOf(key, &got) {
			t.Fatalf("step %d: %s: revisionsOf at the current revision fell back to reading", step, key)
		}
		want, err := w.get(key)
		if err != nil {
			t.Fatal(err)
		}
		if want == nil {
			if got.CreateRevision != 0 || got.ModRevision != 0 || got.Version != 0 {
				t.Fatalf("step %d: %s is missing, index gives create %d mod %d version %d", step, key, got.CreateRevision, got.ModRevision, got.Version)
			}
			continue
		}
		if got.CreateRevision != want.CreateRevision || got.ModRevision != want.ModRevision || got.Version != want.Version {
			t.Fatalf("step %d: %s: index gives create %d mod %d version %d, the key %d %d %d", step, key,
				got.CreateRevision, got.ModRevision, got.Version, want.CreateRevision, want.ModRevision, want.Version)
		}
	}
}

// A key from Open written again keeps its history: its version and
// creation go on, and its older revisions stay readable (the key index
// from the checkpoint and from the key bucket).
func TestPutAfterReopenKeepsHistory(t *testing.T) {
	for _, checkpoint := range []bool{true, false} {
		t.Run(fmt.Sprint("checkpoint=", checkpoint), func(t *testing.T) {
			ts := openTest(t, Options{})
			ts.checkpointMinKeys = 1 // Close writes one however few the keys
			first := ts.mustPut("k", "v1").Header.Revision
			ts.mustPut("k", "v2")
			if checkpoint {
				ts.reopen(Options{})
			} else {
				reopenWithoutCheckpoint(ts)
			}
			ts.mustPut("k", "v3")
			kv := ts.mustRange(get("k")).Kvs[0]
			if string(kv.Value) != "v3" || kv.Version != 3 || kv.CreateRevision != first {
				t.Fatalf("after reopen and a put: %v, want v3 at version 3 created at %d", kv, first)
			}
			old := ts.mustRange(&pb.RangeRequest{Key: []byte("k"), Revision: first})
			if len(old.Kvs) != 1 || string(old.Kvs[0].Value) != "v1" {
				t.Fatalf("at revision %d: %v, want v1", first, old.Kvs)
			}
		})
	}
}
