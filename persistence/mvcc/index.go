package mvcc

import (
	"sync"
	"unsafe"

	"github.com/google/btree"
)

// generation is one life of a key: from its creation to its tombstone
// (the last revision of every generation but the newest).
type generation struct {
	created revision   // revision that created the key in this life
	ver     int64      // version of the key at revs[len(revs)-1]
	revs    []revision // ascending
}

// keyIndex holds every revision of one key that compaction has kept.
// Invariant: the last generation is the only one that may be empty or open
// (without a tombstone); every other one ends with its tombstone.
type keyIndex struct {
	key  string
	gens []generation
}

func lessKeyIndex(a, b *keyIndex) bool { return a.key < b.key }

// put records a new revision of the key. created and ver are only used
// when the put starts a generation (rebuilding from disk, where a
// compacted generation no longer starts at its creation).
func (ki *keyIndex) put(rev, created revision, ver int64) {
	if len(ki.gens) == 0 {
		ki.gens = append(ki.gens, generation{})
	}
	g := &ki.gens[len(ki.gens)-1]
	if len(g.revs) == 0 {
		g.created = created
		g.ver = ver - 1
	}
	g.revs = append(g.revs, rev)
	g.ver++
}

// tombstone ends the live generation at rev.
func (ki *keyIndex) tombstone(rev revision) {
	ki.put(rev, rev, 1)
	ki.gens = append(ki.gens, generation{})
}

// live returns the generation the key is in now, or nil if it is deleted.
func (ki *keyIndex) live() *generation {
	if len(ki.gens) == 0 {
		return nil
	}
	g := &ki.gens[len(ki.gens)-1]
	if len(g.revs) == 0 {
		return nil
	}
	return g
}

// get returns the revision holding the key's value at atRev, if the key
// existed then.
func (ki *keyIndex) get(atRev int64) (revision, bool) {
	last := len(ki.gens) - 1
	for i := last; i >= 0; i-- {
		g := &ki.gens[i]
		if len(g.revs) == 0 {
			continue
		}
		if i != last && g.revs[len(g.revs)-1].main <= atRev {
			return revision{}, false // deleted at or before atRev
		}
		if g.revs[0].main > atRev {
			continue
		}
		for j := len(g.revs) - 1; j >= 0; j-- {
			if g.revs[j].main <= atRev {
				return g.revs[j], true
			}
		}
	}
	return revision{}, false
}

// removedRev is a revision compaction dropped, to delete from the bucket.
type removedRev struct {
	rev  revision
	tomb bool
}

// compact drops every revision not needed to read the key at atRev or
// later, as etcd 3.6 (see compactPoint): the generations deleted before
// atRev and, of the first one left, the revisions older than the one it
// keeps. A tombstone at atRev itself is kept, so a watch from atRev still
// sees the delete; the next compaction drops it (etcd before 3.5.16
// dropped it at once). It appends the dropped revisions to removed and
// reports whether the key is now gone.
func (ki *keyIndex) compact(atRev int64, removed []removedRev) ([]removedRev, bool) {
	gi, keep := ki.compactPoint(atRev)
	for _, g := range ki.gens[:gi] {
		for j, r := range g.revs {
			removed = append(removed, removedRev{rev: r, tomb: j == len(g.revs)-1})
		}
	}
	g := &ki.gens[gi]
	if keep > 0 {
		// never the tombstone: keep is at most the generation's last
		for _, r := range g.revs[:keep] {
			removed = append(removed, removedRev{rev: r})
		}
		g.revs = append([]revision(nil), g.revs[keep:]...)
	}
	ki.gens = ki.gens[gi:]
	empty := len(ki.gens) == 1 && len(ki.gens[0].revs) == 0
	return removed, empty
}

// compactPoint is where a compaction at atRev cuts the key, as etcd
// 3.6's doCompact: gi is the first generation not deleted before atRev
// (the live one if all others were), keep the index in it of its newest
// revision <= atRev, -1 if it has none. The key has a generation.
func (ki *keyIndex) compactPoint(atRev int64) (gi, keep int) {
	for gi < len(ki.gens)-1 {
		g := &ki.gens[gi]
		if g.revs[len(g.revs)-1].main >= atRev {
			break
		}
		gi++
	}
	g := &ki.gens[gi]
	keep = len(g.revs) - 1
	for keep >= 0 && g.revs[keep].main > atRev {
		keep--
	}
	return gi, keep
}

// compactKeep returns the revision of the key etcd 3.6's compaction at
// atRev keeps, and whether it is a generation's tombstone (at atRev).
func (ki *keyIndex) compactKeep(atRev int64) (r revision, tomb, ok bool) {
	if len(ki.gens) == 0 {
		return revision{}, false, false
	}
	gi, keep := ki.compactPoint(atRev)
	if keep < 0 {
		return revision{}, false, false
	}
	g := &ki.gens[gi]
	return g.revs[keep], keep == len(g.revs)-1 && gi != len(ki.gens)-1, true
}

// keepAt returns the revision of the key that counts at atRev below the
// compact revision of a hash, as etcd's keyIndex.keep: what compactKeep
// returns, unless that is a tombstone.
func (ki *keyIndex) keepAt(atRev int64) (revision, bool) {
	r, tomb, ok := ki.compactKeep(atRev)
	return r, ok && !tomb
}

// treeIndex maps keys to their keyIndex: a B-tree in key order, and a
// hash map that finds the keys written since Open without walking the
// tree.
//
// Why the map: on a member holding 100,000 keys a tree lookup walks about
// twenty keyIndexes spread over the heap, one cache miss each, and was 5 %
// of a txn-put member's CPU (google/btree Get, about 5 µs under load); the
// map finds one with a hash and one or two misses, for about 30-60 bytes
// per key. Why only the keys written since Open: filling it with every
// key at Open doubled Open's time for 1M keys (BenchmarkOpen 0.7-0.95 ->
// 1.5-2.4 s) and added 56 MB.
//
// Invariant: every keyIndex in the map is the tree's for its key. Only
// the writer (the store's exclusive lock, or Open) changes either;
// readers, under the shared lock, only look.
type treeIndex struct {
	tree  *btree.BTreeG[*keyIndex]
	byKey map[string]*keyIndex // the map's keys are the keyIndexes' own
}

func newTreeIndex() *treeIndex {
	return &treeIndex{tree: btree.NewG(32, lessKeyIndex), byKey: make(map[string]*keyIndex)}
}

// lookupPivots are the search keys of treeGet. A lookup runs on readers
// at once; a new pivot each time cost two allocations (the keyIndex and
// the key's copy).
var lookupPivots = sync.Pool{New: func() any { return new(keyIndex) }}

// lookup returns the keyIndex of key, nil if the index has none.
func (t *treeIndex) lookup(key []byte) *keyIndex {
	if ki, ok := t.byKey[string(key)]; ok { // the conversion does not allocate
		return ki
	}
	return t.treeGet(key)
}

func (t *treeIndex) treeGet(key []byte) *keyIndex {
	p := lookupPivots.Get().(*keyIndex)
	// The pivot's key aliases key only while the tree compares with it;
	// nothing keeps the pivot.
	p.key = unsafe.String(unsafe.SliceData(key), len(key))
	ki, _ := t.tree.Get(p)
	p.key = ""
	lookupPivots.Put(p)
	return ki
}

// getOrCreate returns the keyIndex of key, adding an empty one if
// missing, and puts it in the map. Writer only.
//
// A key not in the map is inserted into the tree at once, in one walk: a
// lookup first, then an insert, walked the tree twice for every new key
// (the common case of a key not in the map). A key the tree already held
// (from Open) is replaced by the new keyIndex, which takes over its
// history: nothing else holds a keyIndex while the writer runs (readers
// copy what they need under the lock), and this happens once per key.
func (t *treeIndex) getOrCreate(key []byte) *keyIndex {
	if ki, ok := t.byKey[string(key)]; ok {
		return ki
	}
	ki := &keyIndex{key: string(key)}
	if old, found := t.tree.ReplaceOrInsert(ki); found {
		ki.gens = old.gens
		old.gens = nil
	}
	t.byKey[ki.key] = ki
	return ki
}

// insert adds ki to the tree, replacing the keyIndex of the same key if
// any (Open, from the checkpoint, which holds each key once). Writer only.
func (t *treeIndex) insert(ki *keyIndex) {
	if old, ok := t.tree.ReplaceOrInsert(ki); ok {
		delete(t.byKey, old.key)
	}
}

// remove drops ki. Writer only.
func (t *treeIndex) remove(ki *keyIndex) {
	t.tree.Delete(ki)
	delete(t.byKey, ki.key)
}

// visit calls f for every key in [key, end) in key order until f returns
// false. end nil means key alone; an empty non-nil end means no upper
// bound.
func (t *treeIndex) visit(key, end []byte, f func(ki *keyIndex) bool) {
	if end == nil {
		if ki := t.lookup(key); ki != nil {
			f(ki)
		}
		return
	}
	pivot := &keyIndex{key: string(key)}
	if len(end) == 0 {
		t.tree.AscendGreaterOrEqual(pivot, f)
		return
	}
	if string(end) <= string(key) {
		return
	}
	t.tree.AscendRange(pivot, &keyIndex{key: string(end)}, f)
}

// keyRev is one key's revision found by a range.
type keyRev struct {
	key string
	rev revision
}

// revisionOf is revisions of key alone, appended to dst: without the
// closure of visit, a caller's array for it stays on the caller's stack.
func (t *treeIndex) revisionOf(dst []keyRev, key []byte, atRev int64, limit int) ([]keyRev, int) {
	ki := t.lookup(key)
	if ki == nil {
		return dst, 0
	}
	rev, ok := ki.get(atRev)
	if !ok {
		return dst, 0
	}
	if limit >= 0 {
		dst = append(dst, keyRev{key: ki.key, rev: rev})
	}
	return dst, 1
}

// revisions returns the revision of every key in [key, end) alive at
// atRev, in key order, at most limit of them when limit > 0 and none when
// limit < 0, and how many there are in all.
func (t *treeIndex) revisions(key, end []byte, atRev int64, limit int) ([]keyRev, int) {
	var out []keyRev
	total := 0
	t.visit(key, end, func(ki *keyIndex) bool {
		if rev, ok := ki.get(atRev); ok {
			if limit == 0 || len(out) < limit {
				out = append(out, keyRev{key: ki.key, rev: rev})
			}
			total++
		}
		return true
	})
	return out, total
}
