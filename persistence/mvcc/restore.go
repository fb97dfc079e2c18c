package mvcc

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/troupedb/troupe/persistence/membership"
)

// ReplaceMembers prepares the bbolt file at path, a copy of a saved
// snapshot not open in a Store, to be the backend of a member of a new
// cluster, as etcdctl's snapshot restore does: the "members" and
// "members_removed" buckets are emptied, members are stored in "members",
// and the consistent index is set to consistentIndex (the index of the raft
// snapshot the restored member starts from). Keys, revisions and leases are
// kept.
func ReplaceMembers(path string, members []membership.Member, consistentIndex uint64) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{membersBucket, membersRemovedBucket} {
			if tx.Bucket(name) != nil {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
		}
		mb, err := tx.CreateBucket(membersBucket)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket(membersRemovedBucket); err != nil {
			return err
		}
		for i := range members {
			if err := mb.Put(membership.Key(members[i].ID), members[i].Marshal()); err != nil {
				return err
			}
		}
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		var ci [8]byte
		binary.BigEndian.PutUint64(ci[:], consistentIndex)
		return meta.Put(consistentIndexKey, ci[:])
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("reset members in %s: %w", path, err)
	}
	return nil
}
