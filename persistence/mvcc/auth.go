package mvcc

import (
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/troupedb/troupe/persistence/auth"
)

// authBuckets are etcd's auth buckets (see persistence/auth for their
// format).
var authBuckets = [][]byte{auth.BucketAuth, auth.BucketUsers, auth.BucketRoles}

// initAuth writes what etcd's NewAuthStore writes into a backend without
// an auth revision (a new one): revision 1. Called at open, in the
// transaction that creates the buckets.
func initAuth(tx *bolt.Tx) error {
	if tx.Bucket(auth.BucketAuth).Get(auth.KeyRevision) != nil {
		return nil
	}
	for _, op := range auth.InitialOps() {
		if err := tx.Bucket(op.Bucket).Put(op.Key, op.Value); err != nil {
			return fmt.Errorf("bucket %s key %s: %w", op.Bucket, op.Key, err)
		}
	}
	return nil
}

// ApplyAuth applies the raft entry at index whose auth request wrote ops
// (none: a request that changed nothing, or was refused), in the pending
// batch with the index, as ApplyAlarm. Errors: ErrAlreadyApplied (nothing
// done), or a commit error (sticky). Writer goroutine only.
func (s *Store) ApplyAuth(index uint64, ops []auth.Op) error {
	w, err := s.beginWrite(index)
	if err != nil {
		return err
	}
	for _, op := range ops {
		if !slices.ContainsFunc(authBuckets, func(b []byte) bool { return string(b) == string(op.Bucket) }) {
			panic(fmt.Sprintf("mvcc: auth write to bucket %q", op.Bucket)) // a caller's bug: never write it
		}
		s.pending.others = append(s.pending.others, bucketOp{op.Bucket, slices.Clone(op.Key), slices.Clone(op.Value)})
	}
	return w.end()
}

// LoadAuth returns the contents of the auth buckets, including changes not
// yet committed to bbolt, for auth.Load: each bucket in key order. Safe
// from any goroutine.
func (s *Store) LoadAuth() ([]auth.Op, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	overlay := s.batchOverlay()
	var out []auth.Op
	err := s.db.View(func(tx *bolt.Tx) error {
		for _, name := range authBuckets {
			err := mergeBucket(tx.Bucket(name), overlay[string(name)], func(k, v []byte) {
				out = append(out, auth.Op{Bucket: name, Key: slices.Clone(k), Value: slices.Clone(v)})
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mvcc: read auth from %s: %w", s.path, err)
	}
	return out, nil
}
