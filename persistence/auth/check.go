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

// CheckTxn is etcd's CheckTxnAuth: read permission on every compare's
// range, then each op of both branches: read for a Range, write for a
// Put, write (and read with prev_kv) for a DeleteRange. A nested Txn's
// compares and ops are checked the same way (etcd 3.6.8 does not descend
// into nested txns, which lets a user without permission read and write
// through one; troupe refuses that).
func (s *State) CheckTxn(ai Info, txn *pb.TxnRequest) error {
	if !s.enabled {
		return nil
	}
	for _, c := range txn.Compare {
		if err := s.IsRangePermitted(ai, c.Key, c.RangeEnd); err != nil {
			return err
		}
	}
	if err := s.checkOps(ai, txn.Success); err != nil {
		return err
	}
	return s.checkOps(ai, txn.Failure)
}

func (s *State) checkOps(ai Info, ops []*pb.RequestOp) error {
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
			if err := s.IsPutPermitted(ai, r.RequestPut.Key); err != nil {
				return err
			}
		case *pb.RequestOp_RequestDeleteRange:
			d := r.RequestDeleteRange
			if d == nil {
				continue
			}
			if d.PrevKv {
				if err := s.IsRangePermitted(ai, d.Key, d.RangeEnd); err != nil {
					return err
				}
			}
			if err := s.IsDeleteRangePermitted(ai, d.Key, d.RangeEnd); err != nil {
				return err
			}
		case *pb.RequestOp_RequestTxn:
			if r.RequestTxn == nil {
				continue
			}
			if err := s.CheckTxn(ai, r.RequestTxn); err != nil {
				return err
			}
		}
	}
	return nil
}
