package mvcc

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// view reads the store at curRev, the revision a request sees as current:
// the store revision for a read, and inside a write transaction the
// revision that includes the transaction's own earlier writes. The caller
// holds s.mu (shared for reads, exclusive for writes) when it creates a
// view and calls close at the end.
//
// A read view sets locked: its first rangeKeys releases the read lock as
// soon as it has looked up the revisions in the index, taken the values
// still in the pending or the committing batch and acquired a bbolt read
// transaction (shared, see readtx.go). That is safe: under the lock a
// revision in neither batch is in bbolt, because a batch is dropped
// (under the write lock) only after its bbolt transaction committed, and
// the transaction acquired began after that; so it sees the revision,
// and a later compaction cannot remove it from its snapshot.
// Decoding and bbolt reads then run without blocking the writer.
type view struct {
	s      *Store
	curRev int64
	locked bool          // holds s.mu shared, until release; false for writers
	tx     *sharedReadTx // acquired when a value is not in a batch
	cur    *bolt.Cursor  // on tx's "key" bucket, tx's to reuse after close
}

// rangeResult is the raw answer of a range in the index, before filters,
// sorting and the response shape.
type rangeResult struct {
	kvs   []*mvccpb.KeyValue
	count int
	rev   int64 // the current revision, for the response header
}

// release drops the read lock if the view still holds it.
func (v *view) release() {
	if v.locked {
		v.s.mu.RUnlock()
		v.locked = false
	}
}

func (v *view) close() {
	v.release()
	if v.tx != nil {
		v.tx.putCursor(v.cur)
		v.tx.release()
		v.tx, v.cur = nil, nil
	}
}

// rangeKeys returns the keys in [key, end) at revision atRev (the current
// revision when atRev <= 0), at most limit values when limit > 0, only the
// count when countOnly. end nil means key alone, empty means no end.
func (v *view) rangeKeys(key, end []byte, atRev int64, limit int64, countOnly bool) (rangeResult, error) {
	if atRev > v.curRev {
		return rangeResult{}, ErrFutureRev
	}
	if atRev <= 0 {
		atRev = v.curRev
	}
	if atRev < v.s.compactRev {
		return rangeResult{}, ErrCompacted
	}
	max := int(limit)
	if limit < 0 {
		max = 0 // no limit, as etcd
	}
	if countOnly {
		max = -1
	}
	var one [1]keyRev // a single key's revision stays on the stack
	var revs []keyRev
	var total int
	if end == nil {
		revs, total = v.s.index.revisionOf(one[:0], key, atRev, max)
	} else {
		revs, total = v.s.index.revisions(key, end, atRev, max)
	}
	res := rangeResult{count: total, rev: v.curRev}
	if countOnly {
		v.release()
		return res, nil
	}
	// under the lock: take what the batches hold, open bbolt for the rest
	var oneVal [1][]byte
	vals := oneVal[:]
	if len(revs) != 1 {
		vals = make([][]byte, len(revs))
	}
	for i, kr := range revs {
		if val, ok := v.s.inMemory(kr.rev); ok {
			vals[i] = val
		} else if v.tx == nil {
			t, err := v.s.acquireReadTx()
			if err != nil {
				return rangeResult{}, err
			}
			v.tx = t
			v.cur = t.cursor() // one cursor: its stack is reused
		}
	}
	v.release()
	size := 0
	for i, kr := range revs {
		if vals[i] == nil {
			var k [revBytesLen]byte
			putRevBytes(k[:], kr.rev)
			found, fv := v.cur.Seek(k[:])
			if string(found) != string(k[:]) {
				return rangeResult{}, fmt.Errorf("mvcc: %s: revision %d_%d in the index is missing from the key bucket", v.s.path, kr.rev.main, kr.rev.sub)
			}
			vals[i] = fv
		}
		size += len(vals[i])
	}
	// The response must not alias bbolt's map or a batch: one copy of
	// every entry, and KeyValues in one array that the entries alias, so
	// a range costs the same four allocations for one key or many (was
	// three per key).
	buf := make([]byte, size)
	kvs := make([]mvccpb.KeyValue, len(revs))
	res.kvs = make([]*mvccpb.KeyValue, len(revs))
	for i, kr := range revs {
		b := buf[:len(vals[i]):len(vals[i])]
		buf = buf[len(vals[i]):]
		copy(b, vals[i])
		if err := decodeKVAliased(&kvs[i], b); err != nil {
			return rangeResult{}, fmt.Errorf("mvcc: %s: revision %d_%d: %w", v.s.path, kr.rev.main, kr.rev.sub, err)
		}
		res.kvs[i] = &kvs[i]
	}
	return res, nil
}

// inMemory returns the value of rev from the pending batch or the
// committing one (looked up in this order; a revision is in at most one).
// The caller holds s.mu.
func (s *Store) inMemory(rev revision) ([]byte, bool) {
	if p, ok := s.pending.puts[rev]; ok {
		return p.value, true
	}
	if c := s.committing; c != nil {
		if p, ok := c.puts[rev]; ok {
			return p.value, true
		}
	}
	return nil, false
}

// get returns the key's current value in the view, or nil.
func (v *view) get(key []byte) (*mvccpb.KeyValue, error) {
	r, err := v.rangeKeys(key, nil, 0, 0, false)
	if err != nil || len(r.kvs) == 0 {
		return nil, err
	}
	return r.kvs[0], nil
}
