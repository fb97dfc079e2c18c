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
// not yet committed to bbolt, in key order. Safe from any goroutine.
func (s *Store) LoadAlarmKeys() ([][]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	overlay := s.batchOverlay()
	var out [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		return mergeBucket(tx.Bucket(alarmBucket), overlay[string(alarmBucket)], func(k, _ []byte) {
			out = append(out, slices.Clone(k))
		})
	})
	if err != nil {
		return nil, fmt.Errorf("mvcc: read alarms from %s: %w", s.path, err)
	}
	return out, nil
}
