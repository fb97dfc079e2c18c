package mvcc

import (
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/troupedb/troupe/persistence/membership"
)

// etcd's membership buckets: "members" maps a member id in hex to its JSON
// record, "members_removed" maps a removed id in hex to "removed".
var (
	membersBucket        = []byte("members")
	membersRemovedBucket = []byte("members_removed")
)

// bucketOp is one write to a bucket other than "key", carried by a batch
// and written in its transaction, in order. A nil value deletes the key.
type bucketOp struct {
	bucket, key, value []byte
}

// putOthers writes ops into tx in order.
func putOthers(tx *bolt.Tx, ops []bucketOp) error {
	for _, op := range ops {
		b := tx.Bucket(op.bucket)
		var err error
		if op.value == nil {
			err = b.Delete(op.key)
		} else {
			err = b.Put(op.key, op.value)
		}
		if err != nil {
			return fmt.Errorf("bucket %s key %s: %w", op.bucket, op.key, err)
		}
	}
	return nil
}

// ApplyMembers applies the raft entry at index that changed the member
// list: it stores the records in put (whole members, by id) and moves the
// ids in removed from "members" to "members_removed", in the pending batch
// with the index, so the change and the index reach bbolt in one
// transaction and a replayed entry is skipped. Either may be empty (a
// conf change that failed validation records just the index). Errors:
// ErrAlreadyApplied (index not above ConsistentIndex; nothing done), or a
// commit error (sticky). Writer goroutine only.
func (s *Store) ApplyMembers(index uint64, put []membership.Member, removed []uint64) error {
	w, err := s.beginWrite(index)
	if err != nil {
		return err
	}
	p := s.pending
	for i := range put {
		p.others = append(p.others, bucketOp{membersBucket, membership.Key(put[i].ID), put[i].Marshal()})
	}
	for _, id := range removed {
		k := membership.Key(id)
		p.others = append(p.others,
			bucketOp{membersBucket, k, nil},
			bucketOp{membersRemovedBucket, k, slices.Clone(membership.RemovedValue)})
	}
	return w.end()
}

// LoadMembers returns the members (sorted by id) and the removed ids
// (sorted) as recorded, including changes not yet committed to bbolt. The
// node reads them at start-up; safe from any goroutine.
func (s *Store) LoadMembers() (members []membership.Member, removed []uint64, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	recs := map[string][]byte{} // member key -> record; nil once deleted
	gone := map[string]bool{}   // removed keys
	err = s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(membersBucket).ForEach(func(k, v []byte) error {
			recs[string(k)] = slices.Clone(v)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(membersRemovedBucket).ForEach(func(k, _ []byte) error {
			gone[string(k)] = true
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("mvcc: read members from %s: %w", s.path, err)
	}
	// A committing batch may be in bbolt already: replaying it is harmless.
	for _, b := range []*batch{s.committing, s.pending} {
		if b == nil {
			continue
		}
		for _, op := range b.others {
			switch string(op.bucket) {
			case string(membersBucket):
				recs[string(op.key)] = op.value
			case string(membersRemovedBucket):
				gone[string(op.key)] = true
			}
		}
	}
	return decodeMembers(recs, gone)
}

func decodeMembers(recs map[string][]byte, gone map[string]bool) ([]membership.Member, []uint64, error) {
	var members []membership.Member
	for k, v := range recs {
		if v == nil {
			continue
		}
		m, err := membership.Unmarshal(v)
		if err != nil {
			return nil, nil, fmt.Errorf("mvcc: members bucket key %s: %w", k, err)
		}
		members = append(members, m)
	}
	slices.SortFunc(members, func(a, b membership.Member) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	removed := make([]uint64, 0, len(gone))
	for k := range gone {
		id, err := membership.ParseKey([]byte(k))
		if err != nil {
			return nil, nil, fmt.Errorf("mvcc: members_removed bucket: %w", err)
		}
		removed = append(removed, id)
	}
	slices.Sort(removed)
	return members, removed, nil
}
