package mvcc

import (
	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// view reads the store at curRev, the revision a request sees as current:
// the store revision for a read, and inside a write transaction the
// revision that includes the transaction's own earlier writes. The caller
// holds s.mu (shared for reads, exclusive for writes) while it uses a view
// and calls close at the end.
type view struct {
	s      *Store
	curRev int64
	tx     *bolt.Tx     // opened on the first read that misses the batch
	cur    *bolt.Cursor // on tx's "key" bucket
}

// rangeResult is the raw answer of a range in the index, before filters,
// sorting and the response shape.
type rangeResult struct {
	kvs   []*mvccpb.KeyValue
	count int
	rev   int64 // the current revision, for the response header
}

func (v *view) close() {
	if v.tx != nil {
		_ = v.tx.Rollback()
		v.tx, v.cur = nil, nil
	}
}

// rangeKeys returns the keys in [key, end) at revision atRev (the current
// revision when atRev <= 0), at most limit values when limit > 0, only the
// count when countOnly. end nil means key alone, empty means no end.
func (v *view) rangeKeys(key, end []byte, atRev int64, limit int64, countOnly bool) (rangeResult, error) {
	if atRev > v.curRev {
		return rangeResult{}, rpctypes.ErrGRPCFutureRev
	}
	if atRev <= 0 {
		atRev = v.curRev
	}
	if atRev < v.s.compactRev {
		return rangeResult{}, rpctypes.ErrGRPCCompacted
	}
	max := int(limit)
	if countOnly {
		max = -1
	}
	revs, total := v.s.index.revisions(key, end, atRev, max)
	res := rangeResult{count: total, rev: v.curRev}
	if countOnly {
		return res, nil
	}
	res.kvs = make([]*mvccpb.KeyValue, 0, len(revs))
	for _, kr := range revs {
		kv, err := v.s.readValue(v, kr.rev)
		if err != nil {
			return rangeResult{}, err
		}
		res.kvs = append(res.kvs, kv)
	}
	return res, nil
}

// get returns the key's current value in the view, or nil.
func (v *view) get(key []byte) (*mvccpb.KeyValue, error) {
	r, err := v.rangeKeys(key, nil, 0, 0, false)
	if err != nil || len(r.kvs) == 0 {
		return nil, err
	}
	return r.kvs[0], nil
}
