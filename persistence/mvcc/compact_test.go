package mvcc

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// indexString writes the index as "key: gen | gen ..." with each
// generation's revisions ('t' marks a tombstone) and, for the live one,
// its created revision and version: what a store rebuilt from its file
// must agree on. (A deleted generation's created and version are never
// read again, and a file no longer holds them once compacted.)
func indexString(s *Store) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var b strings.Builder
	b.WriteString(indexMismatch(s.index))
	s.index.tree.Ascend(func(ki *keyIndex) bool {
		fmt.Fprintf(&b, "%s:", ki.key)
		for i, g := range ki.gens {
			if i > 0 {
				b.WriteString(" |")
			}
			for j, r := range g.revs {
				fmt.Fprintf(&b, " %d_%d", r.main, r.sub)
				if j == len(g.revs)-1 && i != len(ki.gens)-1 {
					b.WriteString("t")
				}
			}
			if i == len(ki.gens)-1 && len(g.revs) > 0 {
				fmt.Fprintf(&b, " (created %d version %d)", g.created.main, g.ver)
			}
		}
		b.WriteString("\n")
		return true
	})
	return b.String()
}

// indexMismatch describes where the index's map breaks its invariant
// (every entry is the tree's keyIndex for its key), "" where it holds;
// the dumps the tests compare include it.
func indexMismatch(t *treeIndex) string {
	var b strings.Builder
	for k, ki := range t.byKey {
		if got := t.treeGet([]byte(k)); got != ki || ki.key != k {
			fmt.Fprintf(&b, "index: the map's keyIndex of %q is not the tree's\n", k)
		}
	}
	return b.String()
}

// bucketString lists the committed "key" bucket as "main_sub[t]:key".
func bucketString(t *testing.T, s *Store) string {
	t.Helper()
	entries, _ := committed(t, s)
	var out []string
	for _, e := range entries {
		mark := ""
		if e.tomb {
			mark = "t"
		}
		out = append(out, fmt.Sprintf("%d_%d%s:%s", e.rev.main, e.rev.sub, mark, e.kv.Key))
	}
	return strings.Join(out, " ")
}

func eventsString(t *testing.T, s *Store, from int64) string {
	t.Helper()
	evs, err := s.Events(from, 0, 0)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, e := range evs {
		if e.Type == mvccpb.DELETE {
			out = append(out, fmt.Sprintf("DELETE %s@%d", e.Kv.Key, e.Kv.ModRevision))
			continue
		}
		out = append(out, fmt.Sprintf("PUT %s=%s@%d/%d/%d", e.Kv.Key, e.Kv.Value, e.Kv.ModRevision, e.Kv.CreateRevision, e.Kv.Version))
	}
	return strings.Join(out, " ")
}

// TestCompactionKeepsTombstoneAtItsRevision: as etcd 3.6.8, a compaction
// at a tombstone keeps it, in the index and in the file, whether it was
// committed or still batched, so a watch from the compact revision gets
// the delete (etcd 3.6.8 answers `etcdctl watch b --rev=5` with it); the
// index rebuilt on open agrees; the key reads as deleted; a new put
// starts a new life; the next compaction removes the tombstone.
func TestCompactionKeepsTombstoneAtItsRevision(t *testing.T) {
	for _, commitFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("committed=%v", commitFirst), func(t *testing.T) {
			ts := openTest(t, Options{})
			ts.mustPut("a", "1")                           // 2
			ts.mustPut("b", "2")                           // 3
			ts.mustPut("a", "3")                           // 4
			if _, err := ts.do(del("b", "")); err != nil { // 5
				t.Fatal(err)
			}
			ts.mustPut("c", "4") // 6
			if commitFirst {
				if err := ts.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := ts.do(&pb.CompactionRequest{Revision: 5}); err != nil {
				t.Fatal(err)
			}
			if err := ts.Commit(); err != nil {
				t.Fatal(err)
			}
			check := func(what, got, want string) {
				t.Helper()
				if got != want {
					t.Fatalf("%s:\n got %s\nwant %s", what, got, want)
				}
			}
			wantIndex := "a: 4_0 (created 2 version 2)\nb: 5_0t |\nc: 6_0 (created 6 version 1)\n"
			for _, reopened := range []bool{false, true} {
				if reopened {
					ts.reopen(Options{})
				}
				check(fmt.Sprintf("bucket (reopened %v)", reopened), bucketString(t, ts.Store), "4_0:a 5_0t:b 6_0:c")
				check(fmt.Sprintf("index (reopened %v)", reopened), indexString(ts.Store), wantIndex)
				check(fmt.Sprintf("watch from 5 (reopened %v)", reopened), eventsString(t, ts.Store, 5), "DELETE b@5 PUT c=4@6/6/1")
				check("watch from 4", eventsString(t, ts.Store, 4), ErrCompacted.Error())
				if r := ts.mustRange(&pb.RangeRequest{Key: []byte("b"), Revision: 5}); len(r.Kvs) != 0 || r.Count != 0 {
					t.Fatalf("b at 5 reads %v", r)
				}
				if r := ts.mustRange(&pb.RangeRequest{Key: []byte("\x00"), RangeEnd: []byte("\x00"), Revision: 5, CountOnly: true}); r.Count != 1 {
					t.Fatalf("count at 5: %d, want 1", r.Count)
				}
				if r, _ := ts.do(del("b", "")); r.(*pb.DeleteRangeResponse).Deleted != 0 {
					t.Fatalf("deleting the deleted b: %v", r)
				}
			}
			// b lives again after its kept tombstone
			ts.mustPut("b", "5") // 7
			if kv := ts.mustRange(get("b")).Kvs[0]; kv.CreateRevision != 7 || kv.Version != 1 {
				t.Fatalf("b put after its kept tombstone: %v", kv)
			}
			if _, err := ts.do(&pb.CompactionRequest{Revision: 7}); err != nil {
				t.Fatal(err)
			}
			if err := ts.Commit(); err != nil {
				t.Fatal(err)
			}
			wantIndex = "a: 4_0 (created 2 version 2)\nb: 7_0 (created 7 version 1)\nc: 6_0 (created 6 version 1)\n"
			for _, reopened := range []bool{false, true} {
				if reopened {
					ts.reopen(Options{})
				}
				check(fmt.Sprintf("bucket after the next compaction (reopened %v)", reopened), bucketString(t, ts.Store), "4_0:a 6_0:c 7_0:b")
				check(fmt.Sprintf("index after the next compaction (reopened %v)", reopened), indexString(ts.Store), wantIndex)
				check("watch from 7", eventsString(t, ts.Store, 7), "PUT b=5@7/7/1")
			}
		})
	}
}

// TestCompactionKeepsOnlyTombstonesAcrossReopen: a compaction where only
// tombstones are left (several at one revision) keeps them all; a store
// reopened on that file rebuilds each key from its lone tombstone, and its
// next compaction removes them from the file.
func TestCompactionKeepsOnlyTombstonesAcrossReopen(t *testing.T) {
	ts := openTest(t, Options{})
	ts.mustPut("a", "1")                                  // 2
	ts.mustPut("b", "2")                                  // 3
	if _, err := ts.do(del("\x00", "\x00")); err != nil { // 4
		t.Fatal(err)
	}
	if _, err := ts.do(&pb.CompactionRequest{Revision: 4}); err != nil {
		t.Fatal(err)
	}
	ts.reopen(Options{})
	if got := bucketString(t, ts.Store); got != "4_0t:a 4_1t:b" {
		t.Fatalf("bucket %s", got)
	}
	if got := indexString(ts.Store); got != "a: 4_0t |\nb: 4_1t |\n" {
		t.Fatalf("index rebuilt from lone tombstones:\n%s", got)
	}
	if got := eventsString(t, ts.Store, 4); got != "DELETE a@4 DELETE b@4" {
		t.Fatalf("watch from 4: %s", got)
	}
	if ts.Rev() != 4 {
		t.Fatalf("rev %d after reopen, want 4", ts.Rev())
	}
	ts.mustPut("c", "3") // 5
	if _, err := ts.do(&pb.CompactionRequest{Revision: 5}); err != nil {
		t.Fatal(err)
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := bucketString(t, ts.Store); got != "5_0:c" {
		t.Fatalf("bucket after the next compaction: %s", got)
	}
	if got := indexString(ts.Store); got != "c: 5_0 (created 5 version 1)\n" {
		t.Fatalf("index after the next compaction:\n%s", got)
	}
}

// TestCompactionRandomHistories applies random histories (puts, deletes
// of one key or a range, two-key transactions) with compactions at random
// revisions, reopening the store at random, and after every compaction
// checks the file against etcd 3.6.8's rule: the revisions above the
// compaction, and of each key its newest revision at or below it unless
// that is a tombstone older than the compaction. A reopened store must
// rebuild the same index.
func TestCompactionRandomHistories(t *testing.T) {
	keys := []string{"a", "b", "c", "d"}
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		type entry struct {
			rev  revision
			key  string
			tomb bool
		}
		// history is every revision written, from the hook (as a watch
		// sees them): the model the file is checked against.
		var history []entry
		opts := Options{BatchLimit: 1 + rng.IntN(8), Changed: func(rev int64, evs []*mvccpb.Event) {
			for i, e := range evs {
				history = append(history, entry{revision{main: rev, sub: int64(i)}, string(e.Kv.Key), e.Type == mvccpb.DELETE})
			}
		}}
		ts := openTest(t, opts)
		for step := 0; step < 120; step++ {
			k := keys[rng.IntN(len(keys))]
			var err error
			switch n := rng.IntN(10); {
			case n < 5:
				_, err = ts.do(put(k, fmt.Sprint(step)))
			case n < 7:
				_, err = ts.do(del(k, ""))
			case n < 8:
				_, err = ts.do(del(k, "\x00"))
			default:
				k2 := keys[rng.IntN(len(keys))]
				if k2 == k {
					continue
				}
				_, err = ts.do(&pb.TxnRequest{Success: []*pb.RequestOp{opPut(k, "t"), opPut(k2, "t")}})
			}
			if err != nil {
				t.Fatal(err)
			}
			lo := max(ts.CompactRev()+1, 1)
			if rng.IntN(8) != 0 || ts.Rev() < lo || len(history) == 0 {
				continue
			}
			at := lo + rng.Int64N(ts.Rev()-lo+1)
			if last := history[len(history)-1]; last.tomb && last.rev.main >= lo && rng.IntN(2) == 0 {
				at = last.rev.main // right at a tombstone
			}
			if _, err := ts.do(&pb.CompactionRequest{Revision: at}); err != nil {
				t.Fatalf("seed %d: compact %d: %v", seed, at, err)
			}
			if err := ts.Commit(); err != nil {
				t.Fatal(err)
			}
			newest := map[string]entry{}
			var want []string
			for _, e := range history {
				if e.rev.main <= at {
					newest[e.key] = e
				}
			}
			for _, e := range history {
				if e.rev.main > at || (newest[e.key] == e && (!e.tomb || e.rev.main == at)) {
					mark := ""
					if e.tomb {
						mark = "t"
					}
					want = append(want, fmt.Sprintf("%d_%d%s:%s", e.rev.main, e.rev.sub, mark, e.key))
				}
			}
			if got := bucketString(t, ts.Store); got != strings.Join(want, " ") {
				t.Fatalf("seed %d: after compaction at %d the file holds\n%s\nwant\n%s", seed, at, got, strings.Join(want, " "))
			}
			if rng.IntN(2) == 0 {
				live := indexString(ts.Store)
				ts.reopen(opts)
				if got := indexString(ts.Store); got != live {
					t.Fatalf("seed %d: index rebuilt after compaction at %d:\n%s\nlive one:\n%s", seed, at, got, live)
				}
			}
		}
	}
}
