package mvcc

import (
	"errors"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func alarmKeys(t *testing.T, s *Store) []string {
	t.Helper()
	keys, err := s.LoadAlarmKeys()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = string(k)
	}
	slices.Sort(out)
	return out
}

// TestApplyAlarm: alarm keys are seen before and after the commit, survive
// a reopen, are removed by a deactivation, and a replayed entry is skipped.
func TestApplyAlarm(t *testing.T) {
	ts := openTest(t, Options{})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(ts.ApplyAlarm(1, []byte("a"), true))
	must(ts.ApplyAlarm(2, []byte("b"), true))
	must(ts.ApplyAlarm(3, nil, false)) // changed nothing: only the index
	if got := alarmKeys(t, ts.Store); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("pending: %q", got)
	}
	must(ts.Commit())
	must(ts.ApplyAlarm(4, []byte("a"), false))
	if got := alarmKeys(t, ts.Store); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("after deactivate: %q", got)
	}
	if err := ts.ApplyAlarm(4, []byte("c"), true); !errors.Is(err, ErrAlreadyApplied) {
		t.Fatalf("replay: %v", err)
	}
	ts.reopen(Options{})
	if got := alarmKeys(t, ts.Store); !slices.Equal(got, []string{"b"}) || ts.ConsistentIndex() != 4 {
		t.Fatalf("after reopen: %q at index %d", got, ts.ConsistentIndex())
	}
	// etcd's value is empty, not missing.
	must(ts.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(alarmBucket).Get([]byte("b")); v == nil || len(v) != 0 {
			t.Fatalf("value %v, want empty", v)
		}
		return nil
	}))
}
