package mvcc

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// DefaultMaxTxnOps is etcd's default limit on the operations of a txn
// (--max-txn-ops).
const DefaultMaxTxnOps = 128

// ValidateRange checks a RangeRequest before it is served, as etcd 3.6's
// gRPC layer: ErrEmptyKey, and ErrInvalidSortOption for a sort order or
// target etcd does not know (3.4 took an unknown order for no sorting and
// crashed on an unknown target).
func ValidateRange(req *pb.RangeRequest) error {
	if len(req.GetKey()) == 0 {
		return ErrEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(req.GetSortOrder())]; !ok {
		return ErrInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(req.GetSortTarget())]; !ok {
		return ErrInvalidSortOption
	}
	return nil
}

// ValidatePut checks a PutRequest before it is proposed: ErrEmptyKey,
// ErrValueProvided (ignore_value with a value), ErrLeaseProvided
// (ignore_lease with a lease).
func ValidatePut(req *pb.PutRequest) error {
	if len(req.GetKey()) == 0 {
		return ErrEmptyKey
	}
	if req.GetIgnoreValue() && len(req.GetValue()) != 0 {
		return ErrValueProvided
	}
	if req.GetIgnoreLease() && req.GetLease() != 0 {
		return ErrLeaseProvided
	}
	return nil
}

// ValidateDeleteRange checks a DeleteRangeRequest before it is proposed:
// ErrEmptyKey.
func ValidateDeleteRange(req *pb.DeleteRangeRequest) error {
	if len(req.GetKey()) == 0 {
		return ErrEmptyKey
	}
	return nil
}

// ValidateCompact checks a CompactionRequest before it is proposed. etcd
// 3.4 checks nothing there: a bad revision fails when applied.
func ValidateCompact(req *pb.CompactionRequest) error { return nil }

// ValidateTxn checks a TxnRequest before it is proposed, as etcd's gRPC
// layer: ErrTooManyOps when the compares or a branch exceed maxTxnOps
// (a nested txn gets what its parent leaves), ErrEmptyKey for a compare
// or op without key, ErrKeyNotFound for an empty op, and then
// ErrDuplicateKey when a branch (nested txns included) writes a key
// twice or puts a key it also deletes.
func ValidateTxn(req *pb.TxnRequest, maxTxnOps int) error {
	if err := checkTxn(req, maxTxnOps); err != nil {
		return err
	}
	for _, ops := range [][]*pb.RequestOp{req.Success, req.Failure} {
		if !mayConflict(ops) {
			continue
		}
		if _, _, err := checkIntervals(ops); err != nil {
			return err
		}
	}
	return nil
}

// mayConflict reports whether ops could write a key twice: only with two
// writes or a nested txn. The common txn (compare, then one put) skips
// checkIntervals, whose map was an allocation per txn.
func mayConflict(ops []*pb.RequestOp) bool {
	writes := 0
	for _, op := range ops {
		switch op.GetRequest().(type) {
		case *pb.RequestOp_RequestTxn:
			return true
		case *pb.RequestOp_RequestPut, *pb.RequestOp_RequestDeleteRange:
			writes++
		}
	}
	return writes > 1
}

func checkTxn(req *pb.TxnRequest, maxTxnOps int) error {
	opc := max(len(req.GetCompare()), len(req.GetSuccess()), len(req.GetFailure()))
	if opc > maxTxnOps {
		return ErrTooManyOps
	}
	for _, c := range req.GetCompare() {
		if len(c.GetKey()) == 0 {
			return ErrEmptyKey
		}
	}
	for _, ops := range [][]*pb.RequestOp{req.GetSuccess(), req.GetFailure()} {
		for _, op := range ops {
			if err := checkOp(op, maxTxnOps-opc); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkOp(op *pb.RequestOp, maxTxnOps int) error {
	switch t := op.GetRequest().(type) {
	case *pb.RequestOp_RequestRange:
		return ValidateRange(t.RequestRange)
	case *pb.RequestOp_RequestPut:
		return ValidatePut(t.RequestPut)
	case *pb.RequestOp_RequestDeleteRange:
		return ValidateDeleteRange(t.RequestDeleteRange)
	case *pb.RequestOp_RequestTxn:
		return checkTxn(t.RequestTxn, maxTxnOps)
	default:
		return ErrKeyNotFound // empty op
	}
}

// interval is a half-open key range [begin, end); an empty end is +inf
// (etcd's string-affine intervals: a range_end of "\x00" is a plain
// string there, so such a delete overlaps nothing).
type interval struct{ begin, end string }

func pointInterval(k string) interval { return interval{begin: k, end: k + "\x00"} }

func lessAffine(a, b string) bool { // a < b, "" being +inf
	if a == "" {
		return false
	}
	if b == "" {
		return true
	}
	return a < b
}

func (iv interval) overlaps(o interval) bool {
	return lessAffine(iv.begin, o.end) && lessAffine(o.begin, iv.end)
}

func anyOverlaps(ivs []interval, k string) bool {
	p := pointInterval(k)
	for _, iv := range ivs {
		if lessAffine(iv.begin, iv.end) && iv.overlaps(p) {
			return true
		}
	}
	return false
}

// checkIntervals returns the keys put and ranges deleted by ops and their
// nested txns, failing with ErrDuplicateKey as etcd's checkIntervals:
// the two branches of a nested txn may put the same key, nothing else may.
func checkIntervals(ops []*pb.RequestOp) (map[string]struct{}, []interval, error) {
	var dels []interval
	for _, op := range ops {
		t, ok := op.GetRequest().(*pb.RequestOp_RequestDeleteRange)
		if !ok || t.RequestDeleteRange == nil {
			continue
		}
		d := t.RequestDeleteRange
		if len(d.RangeEnd) != 0 {
			dels = append(dels, interval{begin: string(d.Key), end: string(d.RangeEnd)})
		} else {
			dels = append(dels, pointInterval(string(d.Key)))
		}
	}
	puts := make(map[string]struct{})
	for _, op := range ops {
		t, ok := op.GetRequest().(*pb.RequestOp_RequestTxn)
		if !ok || t.RequestTxn == nil {
			continue
		}
		putsThen, delsThen, err := checkIntervals(t.RequestTxn.Success)
		if err != nil {
			return nil, dels, err
		}
		putsElse, delsElse, err := checkIntervals(t.RequestTxn.Failure)
		if err != nil {
			return nil, dels, err
		}
		for k := range putsThen {
			if _, dup := puts[k]; dup || anyOverlaps(dels, k) {
				return nil, dels, ErrDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range putsElse {
			if _, dup := puts[k]; dup {
				if _, then := putsThen[k]; !then {
					return nil, dels, ErrDuplicateKey
				}
			}
			if anyOverlaps(dels, k) {
				return nil, dels, ErrDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels = append(dels, delsThen...)
		dels = append(dels, delsElse...)
	}
	for _, op := range ops {
		t, ok := op.GetRequest().(*pb.RequestOp_RequestPut)
		if !ok || t.RequestPut == nil {
			continue
		}
		k := string(t.RequestPut.Key)
		if _, dup := puts[k]; dup || anyOverlaps(dels, k) {
			return nil, dels, ErrDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}
