package mvcc

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// revsOf lists the revisions of committed bucket entries.
func revsOf(entries []bucketEntry) string {
	var revs []revision
	for _, e := range entries {
		revs = append(revs, e.rev)
	}
	return fmt.Sprint(revs)
}

func TestCommitAsyncReadsSeePendingCommittingAndBolt(t *testing.T) {
	ts := openTest(t, Options{})
	g := holdFirstCommit(ts)
	ts.mustPut("a", "1") // rev 2, index 1
	if err := ts.CommitAsync(); err != nil {
		t.Fatal(err)
	}
	<-g.entered          // the bbolt transaction of {a@2} is open and held
	ts.mustPut("b", "1") // rev 3, pending: the writer is not blocked
	resp, err := ts.do(&pb.PutRequest{Key: []byte("a"), Value: []byte("2"), PrevKv: true})
	if err != nil || string(resp.(*pb.PutResponse).PrevKv.GetValue()) != "1" {
		t.Fatalf("prev_kv from the committing batch: %v %v", resp, err)
	}
	if got := ts.mustRange(&pb.RangeRequest{Key: []byte("a"), Revision: 2}); len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "1" {
		t.Fatalf("read of the committing batch: %v", got)
	}
	if err := ts.CommitAsync(); err != nil { // one is running: no-op
		t.Fatal(err)
	}
	if ts.pending.size() != 2 || ts.committing.size() != 1 {
		t.Fatalf("second CommitAsync moved batches: pending %d committing %d", ts.pending.size(), ts.committing.size())
	}
	if entries, ci := committed(t, ts.Store); len(entries) != 0 || ci != 0 {
		t.Fatalf("committed before the transaction ended: %v, index %d", revsOf(entries), ci)
	}
	if ci := ts.CommittedIndex(); ci != 0 {
		t.Fatalf("CommittedIndex %d before the transaction ended, want 0", ci)
	}
	g.open()
	ts.waitBackground()
	if entries, ci := committed(t, ts.Store); revsOf(entries) != "[{2 0}]" || ci != 1 {
		t.Fatalf("after the background commit: %v, index %d; want [{2 0}], 1", revsOf(entries), ci)
	}
	if ci := ts.CommittedIndex(); ci != 1 || ts.ConsistentIndex() <= ci {
		t.Fatalf("CommittedIndex %d (applied %d) after the first batch, want 1 below applied", ci, ts.ConsistentIndex())
	}
	if err := ts.CommitAsync(); err != nil { // takes {b@3, a@4}
		t.Fatal(err)
	}
	for rev, want := range map[int64]string{2: "a=1", 3: "a=1 b=1", 4: "a=2 b=1"} {
		got := ts.mustRange(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c"), Revision: rev})
		var kvs []string
		for _, kv := range got.Kvs {
			kvs = append(kvs, string(kv.Key)+"="+string(kv.Value))
		}
		if strings.Join(kvs, " ") != want {
			t.Errorf("read at %d: %v, want %s", rev, kvs, want)
		}
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	if entries, ci := committed(t, ts.Store); revsOf(entries) != "[{2 0} {3 0} {4 0}]" || ci != 3 || ts.committing != nil {
		t.Fatalf("after Commit: %v, index %d, committing %v", revsOf(entries), ci, ts.committing)
	}
}

// TestCompactionDeletesCommitAfterTheirPuts compacts a revision that is
// being committed: its delete goes to the next batch, which commits after.
func TestCompactionDeletesCommitAfterTheirPuts(t *testing.T) {
	ts := openTest(t, Options{})
	g := holdFirstCommit(ts)
	ts.mustPut("a", "1") // 2
	ts.mustPut("a", "2") // 3
	if err := ts.CommitAsync(); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	if _, err := ts.do(&pb.CompactionRequest{Revision: 3}); err != nil { // a@2 goes
		t.Fatal(err)
	}
	if _, ok := ts.committing.puts[revision{main: 2}]; !ok || len(ts.pending.deletes) != 1 {
		t.Fatalf("compaction changed the committing batch or queued %d deletes", len(ts.pending.deletes))
	}
	if _, err := ts.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 2}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("read below the compaction: %v", err)
	}
	if got := ts.mustRange(get("a")); string(got.Kvs[0].Value) != "2" {
		t.Fatalf("read at the compaction: %v", got)
	}
	g.open()
	if err := ts.Commit(); err != nil { // waits for the first batch, then commits the delete
		t.Fatal(err)
	}
	if entries, _ := committed(t, ts.Store); revsOf(entries) != "[{3 0}]" {
		t.Fatalf("bucket after both batches: %v, want [{3 0}]", revsOf(entries))
	}
	ts.reopen(Options{})
	if ts.CompactRev() != 3 || ts.Rev() != 3 {
		t.Fatalf("after reopen: compact %d rev %d", ts.CompactRev(), ts.Rev())
	}
}

// TestCommittedIndexNeverAheadOfData: a background commit records the
// index of its own batch, not the store's index when it runs, so the
// writes applied meanwhile replay after a crash.
func TestCommittedIndexNeverAheadOfData(t *testing.T) {
	ts := openTest(t, Options{})
	g := holdFirstCommit(ts)
	ts.mustPut("a", "1") // index 1, rev 2
	ts.SetConsistentIndex(2)
	if err := ts.CommitAsync(); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	if _, err := ts.Put(3, put("b", "2")); err != nil { // rev 3
		t.Fatal(err)
	}
	ts.SetConsistentIndex(4)
	g.open()
	ts.waitBackground()
	if entries, ci := committed(t, ts.Store); revsOf(entries) != "[{2 0}]" || ci != 2 {
		t.Fatalf("committed %v with index %d, want [{2 0}] with 2", revsOf(entries), ci)
	}
	// crash: the pending batch is lost
	ts.pending = newBatch()
	ts.reopen(Options{})
	if ts.ConsistentIndex() != 2 || ts.Rev() != 2 {
		t.Fatalf("after crash: index %d rev %d, want 2, 2", ts.ConsistentIndex(), ts.Rev())
	}
	if _, err := ts.Put(2, put("x", "")); !errors.Is(err, ErrAlreadyApplied) {
		t.Fatalf("entry 2 again: %v", err)
	}
	if resp, err := ts.Put(3, put("b", "2")); err != nil || resp.Header.Revision != 3 {
		t.Fatalf("replay of entry 3: %v %v", resp, err)
	}
}

func TestCloseWaitsForBackgroundCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := openTest(t, Options{})
		g := holdFirstCommit(ts)
		ts.mustPut("a", "1")
		if err := ts.CommitAsync(); err != nil {
			t.Fatal(err)
		}
		<-g.entered
		ts.mustPut("b", "2") // pending: Close commits it after the running batch
		closed := make(chan error, 1)
		go func() { closed <- ts.Close() }()
		synctest.Wait()
		select {
		case err := <-closed:
			t.Fatalf("Close returned (%v) during the background commit", err)
		default:
		}
		g.open()
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		ts.reopen(Options{})
		if entries, ci := committed(t, ts.Store); revsOf(entries) != "[{2 0} {3 0}]" || ci != 2 {
			t.Fatalf("after Close: %v, index %d", revsOf(entries), ci)
		}
	})
}

func TestCommitErrorIsSticky(t *testing.T) {
	errDisk := errors.New("disk on fire")
	ts := openTest(t, Options{})
	ts.commitHook = func() error { return errDisk }
	ts.mustPut("a", "1")
	if err := ts.CommitAsync(); err != nil { // the error comes later
		t.Fatal(err)
	}
	ts.waitBackground()
	if _, err := ts.do(put("b", "2")); !errors.Is(err, errDisk) {
		t.Fatalf("write after a failed background commit: %v", err)
	}
	if got := ts.mustRange(get("a")); len(got.Kvs) != 1 {
		t.Fatalf("the batch that failed is no longer readable: %v", got)
	}
	if entries, _ := committed(t, ts.Store); len(entries) != 0 {
		t.Fatalf("failed commit wrote %v", revsOf(entries))
	}
	for _, c := range []struct {
		name string
		f    func() error
	}{
		{"put", func() error { _, err := ts.Put(10, put("c", "")); return err }},
		{"commit", ts.Commit},
		{"commitAsync", ts.CommitAsync},
		{"close", ts.Close},
	} {
		if err := c.f(); !errors.Is(err, errDisk) {
			t.Errorf("%s: %v, want the commit error", c.name, err)
		}
	}

	// a failed synchronous commit is sticky too
	ts = openTest(t, Options{})
	ts.commitHook = func() error { return errDisk }
	ts.mustPut("a", "1")
	if err := ts.Commit(); !errors.Is(err, errDisk) {
		t.Fatalf("commit: %v", err)
	}
	ts.commitHook = nil
	if _, err := ts.do(put("b", "2")); !errors.Is(err, errDisk) {
		t.Fatalf("write after a failed commit: %v", err)
	}
}

// TestBatchLimitBackPressure: while a background commit runs, the pending
// batch grows up to backPressureFactor*BatchLimit; the write that reaches
// it waits for the commit.
func TestBatchLimitBackPressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit = 2
		ts := openTest(t, Options{BatchLimit: limit})
		g := holdFirstCommit(ts)
		ts.mustPut("k0", "v")
		ts.mustPut("k1", "v") // at the limit: a background commit starts
		<-g.entered
		var done atomic.Int64
		finished := make(chan error, 1)
		go func() {
			for i := range backPressureFactor * limit {
				if _, err := ts.do(put(fmt.Sprint("p", i), "v")); err != nil {
					finished <- err
					return
				}
				done.Add(1)
			}
			finished <- nil
		}()
		synctest.Wait()
		ts.mu.RLock()
		pending := ts.pending.size()
		ts.mu.RUnlock()
		if done.Load() != backPressureFactor*limit-1 || pending != backPressureFactor*limit {
			t.Fatalf("writer blocked after %d puts with %d pending, want %d, %d", done.Load(), pending, backPressureFactor*limit-1, backPressureFactor*limit)
		}
		g.open()
		if err := <-finished; err != nil {
			t.Fatal(err)
		}
		if ts.pending.size() != 0 || ts.job == nil {
			t.Fatalf("after the wait: %d pending, job %v; want the batch committing", ts.pending.size(), ts.job)
		}
		if err := ts.Commit(); err != nil {
			t.Fatal(err)
		}
		if entries, _ := committed(t, ts.Store); len(entries) != 2+backPressureFactor*limit {
			t.Fatalf("committed %d entries", len(entries))
		}
	})
}

// TestCompactionBatchLimit: with etcd's --compaction-batch-limit a
// compaction's deletes reach the file in transactions of that many ahead
// of the batch's own; if the batch's transaction then fails, the file
// holds the compaction as scheduled and Open finishes it, as etcd's.
func TestCompactionBatchLimit(t *testing.T) {
	errDisk := errors.New("disk on fire")
	ts := openTest(t, Options{CompactionBatchLimit: 10})
	for i := range 100 {
		ts.mustPut("k", fmt.Sprint(i))
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	compactAt := ts.Rev() - 5
	if _, err := ts.do(&pb.CompactionRequest{Revision: compactAt}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	ts.commitHook = func() error { calls++; return errDisk } // only the batch's own transaction runs it
	if err := ts.Commit(); !errors.Is(err, errDisk) {
		t.Fatalf("commit: %v, want the hook's error", err)
	}
	entries, _ := committed(t, ts.Store)
	// 94 revisions compacted away (2 to 95): 90 in 9 transactions of 10
	// before the failed one, 4 left with it.
	if calls != 1 || len(entries) != 100-90 {
		t.Fatalf("%d hook calls, %d revisions left in the file; want 1 and 10", calls, len(entries))
	}
	path := ts.Path()
	if err := ts.db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.CompactRev() != compactAt {
		t.Fatalf("compact revision %d after reopen, want %d (the interrupted compaction finished)", s.CompactRev(), compactAt)
	}
	if entries, _ := committed(t, s); len(entries) != 6 {
		t.Fatalf("%d revisions in the file, want the 6 from %d on", len(entries), compactAt)
	}
}
