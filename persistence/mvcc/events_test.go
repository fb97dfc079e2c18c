package mvcc

import (
	"errors"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// evString is an event as "PUT k=v@mod/create/ver" or "DELETE k@mod".
func evString(e *mvccpb.Event) string {
	kv := e.Kv
	if e.Type == mvccpb.DELETE {
		return fmt.Sprintf("DELETE %s@%d", kv.Key, kv.ModRevision)
	}
	return fmt.Sprintf("PUT %s=%s@%d/%d/%d", kv.Key, kv.Value, kv.ModRevision, kv.CreateRevision, kv.Version)
}

func evStrings(evs []*mvccpb.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = evString(e)
	}
	return out
}

func sameStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// eventScript writes puts, a delete range, a txn and a no-op and returns
// the events every revision should have.
func eventScript(ts *testStore) []string {
	ts.mustPut("a", "1")                            // rev 2
	ts.mustPut("b", "1")                            // rev 3
	ts.mustPut("a", "2")                            // rev 4
	if _, err := ts.do(del("a", "c")); err != nil { // rev 5: a, b
		ts.t.Fatal(err)
	}
	if _, err := ts.do(del("zz", "")); err != nil { // nothing: no revision
		ts.t.Fatal(err)
	}
	txn := &pb.TxnRequest{Success: []*pb.RequestOp{opPut("c", "1"), opPut("d", "1"), opDel("e", "")}}
	ts.mustPut("e", "0")                  // rev 6
	if _, err := ts.do(txn); err != nil { // rev 7: c, d, e deleted
		ts.t.Fatal(err)
	}
	return []string{
		"PUT a=1@2/2/1", "PUT b=1@3/3/1", "PUT a=2@4/2/2",
		"DELETE a@5", "DELETE b@5",
		"PUT e=0@6/6/1", "PUT c=1@7/7/1", "PUT d=1@7/7/1", "DELETE e@7",
	}
}

func TestChangedHookYieldsEventsPerWriteTxn(t *testing.T) {
	var got []string
	var revs []int64
	ts := openTest(t, Options{Changed: func(rev int64, evs []*mvccpb.Event) {
		revs = append(revs, rev)
		for _, e := range evs {
			if e.Kv.ModRevision != rev {
				t.Errorf("event %s in revision %d", evString(e), rev)
			}
		}
		got = append(got, evStrings(evs)...)
	}})
	want := eventScript(ts)
	sameStrings(t, "events", got, want)
	if fmt.Sprint(revs) != "[2 3 4 5 6 7]" {
		t.Fatalf("hook revisions %v, want one call per changing txn", revs)
	}
	// A failed put and a compaction change nothing a watcher sees.
	if _, err := ts.do(&pb.PutRequest{Key: []byte("x"), IgnoreValue: true}); err == nil {
		t.Fatal("ignore_value on a missing key succeeded")
	}
	if _, err := ts.do(&pb.CompactionRequest{Revision: 3}); err != nil {
		t.Fatal(err)
	}
	sameStrings(t, "events after no-ops", got, want)
}

// TestEventsReadsHistory reads the same history from the pending batch,
// from bbolt, and from both, with limits that never split a revision.
func TestEventsReadsHistory(t *testing.T) {
	ts := openTest(t, Options{})
	want := eventScript(ts)
	check := func(where string) {
		t.Helper()
		evs, err := ts.Events(1, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		sameStrings(t, where, evStrings(evs), want)
		evs, err = ts.Events(4, 5, 0)
		if err != nil {
			t.Fatal(err)
		}
		sameStrings(t, where+" 4..5", evStrings(evs), want[2:5])
		// limit 4 ends inside revision 5: the whole revision comes
		evs, err = ts.Events(2, 0, 4)
		if err != nil {
			t.Fatal(err)
		}
		sameStrings(t, where+" limit 4", evStrings(evs), want[:5])
		evs, err = ts.Events(ts.Rev()+1, 0, 0)
		if err != nil || len(evs) != 0 {
			t.Fatalf("%s: future events %v, %v", where, evs, err)
		}
	}
	check("pending")
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	check("bbolt")
	// a split history: 2..7 in bbolt, 8 in the pending batch
	ts.mustPut("e", "1")
	want = append(want, "PUT e=1@8/8/1")
	check("bbolt and pending")
	// while a commit is in flight the committing batch serves it
	g := holdFirstCommit(ts) // the first commit from now on
	ts.mustPut("f", "1")
	want = append(want, "PUT f=1@9/9/1")
	if err := ts.CommitAsync(); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	ts.mustPut("g", "1")
	want = append(want, "PUT g=1@10/10/1")
	check("committing")
	g.open()
	ts.reopen(Options{})
	check("reopened")
}

func TestEventsCompacted(t *testing.T) {
	ts := openTest(t, Options{})
	want := eventScript(ts)
	if _, err := ts.do(&pb.CompactionRequest{Revision: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Events(3, 0, 0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("events from 3 after compacting at 4: %v, want ErrCompacted", err)
	}
	for _, commit := range []bool{false, true} {
		if commit {
			if err := ts.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		evs, err := ts.Events(5, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		sameStrings(t, fmt.Sprint("after compaction, committed ", commit), evStrings(evs), want[3:])
	}
}

// TestEventsMatchHook: what Events reads back is what the hook gave,
// field for field.
func TestEventsMatchHook(t *testing.T) {
	var hooked []*mvccpb.Event
	ts := openTest(t, Options{Changed: func(_ int64, evs []*mvccpb.Event) { hooked = append(hooked, evs...) }})
	eventScript(ts)
	if _, err := ts.do(&pb.PutRequest{Key: []byte("d"), Value: []byte("2"), Lease: 0}); err != nil {
		t.Fatal(err)
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	evs, err := ts.Events(1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(hooked) {
		t.Fatalf("%d events read, %d hooked", len(evs), len(hooked))
	}
	for i := range evs {
		if !proto.Equal(evs[i], hooked[i]) {
			t.Fatalf("event %d: read %v, hooked %v", i, evs[i], hooked[i])
		}
	}
}
