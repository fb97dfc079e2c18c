package mvcc

import (
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// alarmBucket is etcd's "alarm" bucket: one key per active alarm (the
// marshalled etcdserverpb.AlarmMember, see persistence/alarm), empty values.
var alarmBucket = []byte("alarm")

// ApplyAlarm applies the raft entry at index that activated (active) or
// deactivated the alarm with bucket key key, in the pending batch with the
// index, as ApplyMembers does; a nil key records just the index (an alarm
// request that changed nothing). Errors: ErrAlreadyApplied (nothing done),
// or a commit error (sticky). Writer goroutine only.
func (s *Store) ApplyAlarm(index uint64, key []byte, active bool) error {
	w, err := s.beginWrite(index)
	if err != nil {
		return err
	}
	if key != nil {
		var v []byte // nil deletes
		if active {
			v = []byte{}
		}
		s.pending.others = append(s.pending.others, bucketOp{alarmBucket, slices.Clone(key), v})
	}
	return w.end()
}

// LoadAlarmKeys returns the keys of the "alarm" bucket, including changes
// not yet committed to bbolt, in no particular order. Safe from any
// goroutine.
func (s *Store) LoadAlarmKeys() ([][]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys := map[string]bool{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(alarmBucket).ForEach(func(k, _ []byte) error {
			keys[string(k)] = true
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("mvcc: read alarms from %s: %w", s.path, err)
	}
	for _, b := range []*batch{s.committing, s.pending} {
		if b == nil {
			continue
		}
		for _, op := range b.others {
			if string(op.bucket) == string(alarmBucket) {
				keys[string(op.key)] = op.value != nil
			}
		}
	}
	var out [][]byte
	for k, on := range keys {
		if on {
			out = append(out, []byte(k))
		}
	}
	return out, nil
}
