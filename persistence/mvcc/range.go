package mvcc

import (
	"bytes"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Range answers a RangeRequest at the current revision, or at
// req.Revision when set. Any goroutine. Header.Revision is the current
// store revision (also for a historical read, as etcd). Errors:
// ErrFutureRev, ErrCompacted (a revision below the last compaction;
// the compaction revision itself is readable). Call ValidateRange first.
func (s *Store) Range(req *pb.RangeRequest) (*pb.RangeResponse, error) {
	s.mu.RLock()
	v := view{s: s, curRev: s.currentRev, locked: true}
	defer v.close()
	return rangeIn(&v, req)
}

// rangeEnd turns a request's range_end into the index's form: nil for a
// single key, empty for "no end" ("\x00" on the wire).
func rangeEnd(end []byte) []byte {
	if len(end) == 0 {
		return nil
	}
	if len(end) == 1 && end[0] == 0 {
		return []byte{}
	}
	return end
}

// rangeIn answers req in v with etcd's rules: filters and non-key sorts see
// every matching key and the limit is applied after them; count is the
// number of keys in the range before filters; more says the limit cut.
func rangeIn(v *view, req *pb.RangeRequest) (*pb.RangeResponse, error) {
	limit := req.Limit
	if req.SortOrder != pb.RangeRequest_NONE ||
		req.MinModRevision != 0 || req.MaxModRevision != 0 ||
		req.MinCreateRevision != 0 || req.MaxCreateRevision != 0 {
		limit = 0 // fetch all; sort, filter and cut below
	}
	if limit > 0 {
		limit++ // one more tells whether there are more
	}
	rr, err := v.rangeKeys(req.Key, rangeEnd(req.RangeEnd), req.Revision, limit, req.CountOnly)
	if err != nil {
		return nil, err
	}
	kvs := rr.kvs
	if req.MaxModRevision != 0 {
		kvs = pruneKVs(kvs, func(kv *mvccpb.KeyValue) bool { return kv.ModRevision > req.MaxModRevision })
	}
	if req.MinModRevision != 0 {
		kvs = pruneKVs(kvs, func(kv *mvccpb.KeyValue) bool { return kv.ModRevision < req.MinModRevision })
	}
	if req.MaxCreateRevision != 0 {
		kvs = pruneKVs(kvs, func(kv *mvccpb.KeyValue) bool { return kv.CreateRevision > req.MaxCreateRevision })
	}
	if req.MinCreateRevision != 0 {
		kvs = pruneKVs(kvs, func(kv *mvccpb.KeyValue) bool { return kv.CreateRevision < req.MinCreateRevision })
	}
	sortKVs(kvs, req.SortOrder, req.SortTarget)
	resp := newRangeResponse()
	resp.Header.Revision, resp.Count = rr.rev, int64(rr.count)
	if req.Limit > 0 && len(kvs) > int(req.Limit) {
		kvs = kvs[:req.Limit]
		resp.More = true
	}
	if req.KeysOnly {
		for _, kv := range kvs {
			kv.Value = nil
		}
	}
	resp.Kvs = kvs
	return resp, nil
}

func pruneKVs(kvs []*mvccpb.KeyValue, drop func(*mvccpb.KeyValue) bool) []*mvccpb.KeyValue {
	out := kvs[:0]
	for _, kv := range kvs {
		if !drop(kv) {
			out = append(out, kv)
		}
	}
	return out
}

// sortKVs sorts as etcd: a target other than KEY with order NONE sorts
// ascending; KEY with NONE keeps the index's ascending key order. Ties keep
// key order (a stable sort).
func sortKVs(kvs []*mvccpb.KeyValue, order pb.RangeRequest_SortOrder, target pb.RangeRequest_SortTarget) {
	if target != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	}
	if order != pb.RangeRequest_ASCEND && order != pb.RangeRequest_DESCEND {
		return
	}
	var cmp func(a, b *mvccpb.KeyValue) int
	switch target {
	case pb.RangeRequest_KEY:
		cmp = func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Key, b.Key) }
	case pb.RangeRequest_VERSION:
		cmp = func(a, b *mvccpb.KeyValue) int { return cmpInt64(a.Version, b.Version) }
	case pb.RangeRequest_CREATE:
		cmp = func(a, b *mvccpb.KeyValue) int { return cmpInt64(a.CreateRevision, b.CreateRevision) }
	case pb.RangeRequest_MOD:
		cmp = func(a, b *mvccpb.KeyValue) int { return cmpInt64(a.ModRevision, b.ModRevision) }
	case pb.RangeRequest_VALUE:
		cmp = func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Value, b.Value) }
	default:
		return
	}
	if order == pb.RangeRequest_DESCEND {
		sort.SliceStable(kvs, func(i, j int) bool { return cmp(kvs[i], kvs[j]) > 0 })
		return
	}
	sort.SliceStable(kvs, func(i, j int) bool { return cmp(kvs[i], kvs[j]) < 0 })
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
