package mvcc

import (
	"bytes"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Txn applies the raft entry at index carrying req. Writer goroutine only.
//
// As etcd 3.4: every compare (nested ones too) is evaluated against the
// store before the transaction; the chosen branches are checked before
// anything is written (ErrKeyNotFound for ignore_value/ignore_lease on
// a missing key, ErrLeaseNotFound, ErrFutureRev/ErrCompacted
// for a range revision), so a failed check writes nothing. All writes share
// one new revision with sub-revisions 0, 1, 2...; a transaction that
// changes nothing keeps the revision. Reads inside see earlier writes.
// Call ValidateTxn before proposing.
func (s *Store) Txn(index uint64, req *pb.TxnRequest) (*pb.TxnResponse, error) {
	w, err := s.beginWrite(index)
	if err != nil {
		return nil, err
	}
	resp, err := w.applyTxnRequest(req)
	if cerr := w.end(); cerr != nil {
		return nil, cerr
	}
	return resp, err
}

func (w *writeTxn) applyTxnRequest(req *pb.TxnRequest) (*pb.TxnResponse, error) {
	// The path of a txn without nested txns is one bool: it stays on the
	// stack (was an allocation per txn).
	var pathBuf [4]bool
	path, err := w.compareToPath(pathBuf[:0], req)
	if err != nil {
		return nil, err
	}
	if !txnReadOnly(req) {
		if _, err := checkRequests(req, path, w.checkPuts); err != nil {
			return nil, err
		}
	}
	if _, err := checkRequests(req, path, w.checkRanges); err != nil {
		return nil, err
	}
	resp, _ := newTxnResp(req, path)
	if _, err := w.applyTxn(req, path, resp); err != nil {
		// the checks above rule this out; a half-applied txn cannot be undone
		panic(fmt.Sprintf("mvcc: unexpected error inside txn: %v", err))
	}
	resp.Header.Revision = w.beginRev
	if w.changes > 0 {
		resp.Header.Revision++
	}
	return resp, nil
}

// branch returns the ops of the branch path chose.
func branch(req *pb.TxnRequest, succeeded bool) []*pb.RequestOp {
	if succeeded {
		return req.Success
	}
	return req.Failure
}

// compareToPath evaluates the compares of req and of the nested txns of
// the chosen branches, depth first, all before any write, and appends
// their outcomes to path.
func (w *writeTxn) compareToPath(path []bool, req *pb.TxnRequest) ([]bool, error) {
	ok, err := w.applyCompares(req.Compare)
	if err != nil {
		return nil, err
	}
	path = append(path, ok)
	for _, op := range branch(req, ok) {
		if t, isTxn := op.GetRequest().(*pb.RequestOp_RequestTxn); isTxn && t.RequestTxn != nil {
			if path, err = w.compareToPath(path, t.RequestTxn); err != nil {
				return nil, err
			}
		}
	}
	return path, nil
}

func (w *writeTxn) applyCompares(cmps []*pb.Compare) (bool, error) {
	for _, c := range cmps {
		ok, err := w.applyCompare(c)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// applyCompare holds when every key in the compare's range satisfies it. A
// missing key compares as a zero KeyValue, except that a VALUE compare on
// no key at all fails.
func (w *writeTxn) applyCompare(c *pb.Compare) (bool, error) {
	end := rangeEnd(c.RangeEnd)
	if end == nil && c.Target != pb.Compare_VALUE && c.Target != pb.Compare_LEASE {
		var kv mvccpb.KeyValue
		if w.revisionsOf(c.Key, &kv) {
			return compareKV(c, &kv), nil
		}
	}
	rr, err := w.rangeKeys(c.Key, end, 0, 0, false)
	if err != nil {
		return false, err
	}
	if len(rr.kvs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false, nil
		}
		return compareKV(c, &mvccpb.KeyValue{}), nil
	}
	for _, kv := range rr.kvs {
		if !compareKV(c, kv) {
			return false, nil
		}
	}
	return true, nil
}

// revisionsOf sets kv's create and mod revisions and version to the
// key's at the view's revision from the index alone, without reading its
// value: the compare of the common txn (a key's mod revision, then a
// put) read the value from the batch or bbolt and allocated its copy,
// only to look at these. A missing key leaves kv zero, as the range
// would. It returns false, kv untouched, when that revision is not the
// newest of the key's live generation (the index keeps a generation's
// creation and version at its newest revision only): the caller then
// reads the range.
func (w *writeTxn) revisionsOf(key []byte, kv *mvccpb.KeyValue) bool {
	ki := w.s.index.lookup(key)
	if ki == nil {
		return true
	}
	rev, found := ki.get(w.curRev)
	if !found {
		return true
	}
	g := ki.live()
	if g == nil || g.revs[len(g.revs)-1] != rev {
		return false
	}
	kv.CreateRevision, kv.ModRevision, kv.Version = g.created.main, rev.main, g.ver
	return true
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var result int
	switch c.Target {
	case pb.Compare_VALUE:
		v := []byte{}
		if t, _ := c.TargetUnion.(*pb.Compare_Value); t != nil {
			v = t.Value
		}
		result = bytes.Compare(kv.Value, v)
	case pb.Compare_CREATE:
		result = cmpInt64(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = cmpInt64(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		result = cmpInt64(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		result = cmpInt64(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true
}

// txnReadOnly reports whether req has no put or delete in any branch.
func txnReadOnly(req *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{req.Success, req.Failure} {
		for _, op := range ops {
			switch t := op.GetRequest().(type) {
			case *pb.RequestOp_RequestPut, *pb.RequestOp_RequestDeleteRange:
				return false
			case *pb.RequestOp_RequestTxn:
				if t.RequestTxn != nil && !txnReadOnly(t.RequestTxn) {
					return false
				}
			}
		}
	}
	return true
}

// checkRequests runs check on the ops of every chosen branch, depth first,
// and returns how many nested txns it walked.
func checkRequests(req *pb.TxnRequest, path []bool, check func([]*pb.RequestOp) error) (int, error) {
	ops := branch(req, path[0])
	if err := check(ops); err != nil {
		return 0, err
	}
	txns := 0
	for _, op := range ops {
		if t, ok := op.GetRequest().(*pb.RequestOp_RequestTxn); ok && t.RequestTxn != nil {
			n, err := checkRequests(t.RequestTxn, path[1:], check)
			if err != nil {
				return 0, err
			}
			txns += n + 1
			path = path[n+1:]
		}
	}
	return txns, nil
}

// checkPuts fails puts that would fail when applied, against the store
// before the txn.
func (w *writeTxn) checkPuts(ops []*pb.RequestOp) error {
	for _, op := range ops {
		t, ok := op.GetRequest().(*pb.RequestOp_RequestPut)
		if !ok || t.RequestPut == nil {
			continue
		}
		p := t.RequestPut
		if p.IgnoreValue || p.IgnoreLease {
			prev, err := w.get(p.Key)
			if err != nil {
				return err
			}
			if prev == nil {
				return ErrKeyNotFound
			}
		}
		if p.Lease != 0 && !w.s.leaseExists(p.Lease) {
			return ErrLeaseNotFound
		}
	}
	return nil
}

// checkRanges fails ranges at a future or compacted revision.
func (w *writeTxn) checkRanges(ops []*pb.RequestOp) error {
	for _, op := range ops {
		t, ok := op.GetRequest().(*pb.RequestOp_RequestRange)
		if !ok || t.RequestRange == nil || t.RequestRange.Revision == 0 {
			continue
		}
		switch rev := t.RequestRange.Revision; {
		case rev > w.beginRev:
			return ErrFutureRev
		case rev < w.s.compactRev:
			return ErrCompacted
		}
	}
	return nil
}

// newTxnResp builds the response skeleton of the chosen branches.
func newTxnResp(req *pb.TxnRequest, path []bool) (*pb.TxnResponse, int) {
	ops := branch(req, path[0])
	if len(ops) == 1 && ops[0].GetRequestPut() != nil {
		resp := newOnePutTxnResponse()
		resp.Succeeded = path[0]
		return resp, 0
	}
	resp := newTxnResponse()
	resp.Succeeded, resp.Responses = path[0], make([]*pb.ResponseOp, len(ops))
	txns := 0
	for i, op := range ops {
		if _, isPut := op.GetRequest().(*pb.RequestOp_RequestPut); isPut {
			resp.Responses[i] = newTxnPutResponse()
			continue
		}
		r := &pb.ResponseOp{}
		switch t := op.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			r.Response = &pb.ResponseOp_ResponseRange{}
		case *pb.RequestOp_RequestDeleteRange:
			r.Response = &pb.ResponseOp_ResponseDeleteRange{}
		case *pb.RequestOp_RequestTxn:
			if t.RequestTxn != nil {
				sub, n := newTxnResp(t.RequestTxn, path[1:])
				r.Response = &pb.ResponseOp_ResponseTxn{ResponseTxn: sub}
				txns += n + 1
				path = path[n+1:]
			}
		}
		resp.Responses[i] = r
	}
	return resp, txns
}

// newTxnPutResponse is the answer to a put inside a txn, its oneof
// wrapper, its PutResponse and that one's header in one allocation (were
// four, a put's answer being the common op of a txn).
func newTxnPutResponse() *pb.ResponseOp {
	x := new(struct {
		op  pb.ResponseOp
		w   pb.ResponseOp_ResponsePut
		put pb.PutResponse
		hdr pb.ResponseHeader
	})
	x.put.Header = &x.hdr
	x.w.ResponsePut = &x.put
	x.op.Response = &x.w
	return &x.op
}

// newOnePutTxnResponse is the answer to a txn whose branch is one put
// (the common txn: compare, then put), in one allocation: the response,
// its header, its one-element list and newTxnPutResponse's objects (were
// three allocations).
func newOnePutTxnResponse() *pb.TxnResponse {
	x := new(struct {
		resp pb.TxnResponse
		hdr  pb.ResponseHeader
		ops  [1]*pb.ResponseOp
		op   pb.ResponseOp
		w    pb.ResponseOp_ResponsePut
		put  pb.PutResponse
		phdr pb.ResponseHeader
	})
	x.put.Header = &x.phdr
	x.w.ResponsePut = &x.put
	x.op.Response = &x.w
	x.ops[0] = &x.op
	x.resp.Header = &x.hdr
	x.resp.Responses = x.ops[:]
	return &x.resp
}

// applyTxn runs the chosen branches in order and fills resp.
func (w *writeTxn) applyTxn(req *pb.TxnRequest, path []bool, resp *pb.TxnResponse) (int, error) {
	txns := 0
	for i, op := range branch(req, path[0]) {
		r := resp.Responses[i]
		switch t := op.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			rr, err := rangeIn(&w.view, t.RequestRange)
			if err != nil {
				return 0, err
			}
			r.Response = &pb.ResponseOp_ResponseRange{ResponseRange: rr}
		case *pb.RequestOp_RequestPut:
			rp := r.Response.(*pb.ResponseOp_ResponsePut) // newTxnPutResponse's
			if _, err := w.applyPutTo(t.RequestPut, rp.ResponsePut); err != nil {
				return 0, err
			}
		case *pb.RequestOp_RequestDeleteRange:
			dr, err := w.applyDeleteRange(t.RequestDeleteRange)
			if err != nil {
				return 0, err
			}
			r.Response = &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: dr}
		case *pb.RequestOp_RequestTxn:
			if t.RequestTxn == nil {
				continue
			}
			sub := r.Response.(*pb.ResponseOp_ResponseTxn).ResponseTxn
			n, err := w.applyTxn(t.RequestTxn, path[1:], sub)
			if err != nil {
				return 0, err
			}
			txns += n + 1
			path = path[n+1:]
		}
	}
	return txns, nil
}

// ReadTxn runs a transaction that only reads (TxnReadOnly) at the current
// revision, as etcd 3.4 serves those: from the backend, not through raft.
// Any goroutine. The read lock is held for the whole transaction, so its
// compares and ranges see one revision.
func (s *Store) ReadTxn(req *pb.TxnRequest) (*pb.TxnResponse, error) {
	if !txnReadOnly(req) {
		return nil, fmt.Errorf("mvcc: ReadTxn given a txn that writes")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, fmt.Errorf("mvcc: %s is closed", s.path)
	}
	// A writeTxn that never writes: its view reads, and no write method is
	// reached for a read-only request.
	w := &writeTxn{view: view{s: s, curRev: s.currentRev}, beginRev: s.currentRev}
	defer w.close()
	return w.applyTxnRequest(req)
}

// TxnReadOnly reports whether req (nested txns included) has no put and no
// delete, so it can be served without raft.
func TxnReadOnly(req *pb.TxnRequest) bool { return txnReadOnly(req) }
