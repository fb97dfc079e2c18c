package auth

import (
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// isOpPermitted is etcd's isOpPermitted: nil while auth is off; otherwise
// a user is needed (revision 0 means no auth info), its revision must not
// be older than the state's, and the user must hold the root role or a
// permission of type t covering [key, end).
func (s *State) isOpPermitted(ai Info, key, end []byte, t authpb.Permission_Type) error {
	if !s.enabled {
		return nil
	}
	if ai.Revision == 0 {
		return ErrUserEmpty
	}
	if ai.Revision < s.revision {
		return ErrAuthOldRevision
	}
	u, ok := s.users[ai.Username]
	if !ok {
		return ErrPermissionDenied
	}
	if hasRootRole(u) {
		return nil
	}
	if p, ok := s.perms[ai.Username]; ok && p.permitted(key, end, t) {
		return nil
	}
	return ErrPermissionDenied
}

// IsRangePermitted checks that ai may read [key, end).
func (s *State) IsRangePermitted(ai Info, key, end []byte) error {
	return s.isOpPermitted(ai, key, end, authpb.Permission_READ)
}

// IsPutPermitted checks that ai may write key.
func (s *State) IsPutPermitted(ai Info, key []byte) error {
	return s.isOpPermitted(ai, key, nil, authpb.Permission_WRITE)
}

// IsDeleteRangePermitted checks that ai may delete [key, end).
func (s *State) IsDeleteRangePermitted(ai Info, key, end []byte) error {
	return s.isOpPermitted(ai, key, end, authpb.Permission_WRITE)
}

// IsAdminPermitted checks that ai holds the root role, as etcd's
// IsAdminPermitted (which does not look at the revision).
func (s *State) IsAdminPermitted(ai Info) error {
	if !s.enabled {
		return nil
	}
	if ai.Username == "" {
		return ErrUserEmpty
	}
	u, ok := s.users[ai.Username]
	if !ok {
		return ErrUserNotFound
	}
	if !hasRootRole(u) {
		return ErrPermissionDenied
	}
	return nil
}

// CheckDeleteRange is etcd's check of a DeleteRange: write permission on
// the range, and read permission with prev_kv (the deleted pairs come
// back).
func (s *State) CheckDeleteRange(ai Info, r *pb.DeleteRangeRequest) error {
	if err := s.IsDeleteRangePermitted(ai, r.Key, r.RangeEnd); err != nil {
		return err
	}
	if r.PrevKv {
		return s.IsRangePermitted(ai, r.Key, r.RangeEnd)
	}
	return nil
}

// LeaseKeys looks up the keys attached to lease id; ok is false when
// there is no such lease.
type LeaseKeys func(id int64) (keys [][]byte, ok bool)

// CheckPut is etcd's checkPutAuth: write permission on the key; when the
// put attaches a lease, write permission on every key the lease holds
// (unless ai is an admin: a user who could not revoke the lease may not
// extend it); with prev_kv, read permission on the key. A nil leases
// skips the lease check.
func (s *State) CheckPut(ai Info, put *pb.PutRequest, leases LeaseKeys) error {
	if err := s.IsPutPermitted(ai, put.Key); err != nil {
		return err
	}
	if err := s.CheckLeaseKeys(ai, put.Lease, leases); err != nil {
		return err
	}
	if put.PrevKv {
		return s.IsRangePermitted(ai, put.Key, nil)
	}
	return nil
}

// CheckLeaseKeys is etcd's checkLeasePuts: unless auth is off or ai is an
// admin, ai must be allowed to write every key attached to lease id (no
// such lease, lease 0 or a nil leases: nothing to check). etcd checks it
// for LeaseRevoke and for a Put attaching the lease.
func (s *State) CheckLeaseKeys(ai Info, id int64, leases LeaseKeys) error {
	if !s.enabled || id == 0 || leases == nil {
		return nil
	}
	keys, ok := leases(id)
	if !ok || s.IsAdminPermitted(ai) == nil {
		return nil
	}
	for _, k := range keys {
		if err := s.IsPutPermitted(ai, k); err != nil {
			return err
		}
	}
	return nil
}

// CheckTxn is etcd's CheckTxnAuth: read permission on every compare's
// range, then each op of both branches: read for a Range, CheckPut for a
// Put (without the lease check; see CheckTxnLeases), CheckDeleteRange for
// a DeleteRange, and a nested Txn the same way.
//
// etcd 3.6.8 checks neither nested txns nor a put's prev_kv in a txn,
// which let a user read and write keys it has no permission on; etcd
// fixed both later in 3.6 (3.6.9 nested txns, then puts' prev_kv and
// lease in txns). troupe follows the fixed releases.
func (s *State) CheckTxn(ai Info, txn *pb.TxnRequest) error {
	return s.CheckTxnLeases(ai, txn, nil)
}

// CheckTxnLeases is CheckTxn with the lease check of each Put (CheckPut
// with leases), as the applier checks a txn.
func (s *State) CheckTxnLeases(ai Info, txn *pb.TxnRequest, leases LeaseKeys) error {
	if !s.enabled {
		return nil
	}
	for _, c := range txn.Compare {
		if err := s.IsRangePermitted(ai, c.Key, c.RangeEnd); err != nil {
			return err
		}
	}
	if err := s.checkOps(ai, txn.Success, leases); err != nil {
		return err
	}
	return s.checkOps(ai, txn.Failure, leases)
}

func (s *State) checkOps(ai Info, ops []*pb.RequestOp, leases LeaseKeys) error {
	for _, op := range ops {
		switch r := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			if r.RequestRange == nil {
				continue
			}
			if err := s.IsRangePermitted(ai, r.RequestRange.Key, r.RequestRange.RangeEnd); err != nil {
				return err
			}
		case *pb.RequestOp_RequestPut:
			if r.RequestPut == nil {
				continue
			}
			if err := s.CheckPut(ai, r.RequestPut, leases); err != nil {
				return err
			}
		case *pb.RequestOp_RequestDeleteRange:
			if r.RequestDeleteRange == nil {
				continue
			}
			if err := s.CheckDeleteRange(ai, r.RequestDeleteRange); err != nil {
				return err
			}
		case *pb.RequestOp_RequestTxn:
			if r.RequestTxn == nil {
				continue
			}
			if err := s.CheckTxnLeases(ai, r.RequestTxn, leases); err != nil {
				return err
			}
		}
	}
	return nil
}
