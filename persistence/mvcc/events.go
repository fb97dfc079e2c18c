package mvcc

import (
	"fmt"
	"sort"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Events returns the watch events of revisions fromRev..toRev (both
// included; toRev <= 0 means the current revision) in revision and
// sub-revision order, as the Changed hook gave them. When limit > 0 it
// stops after the revision during which the limit was reached: a revision
// is never split, so a watcher resuming after the last returned revision
// misses nothing. ErrCompacted when fromRev is below the compaction
// revision (as etcd, a watch may start at the compaction revision itself).
// Any goroutine.
func (s *Store) Events(fromRev, toRev int64, limit int) ([]*mvccpb.Event, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, fmt.Errorf("mvcc: %s is closed", s.path)
	}
	if fromRev < s.compactRev {
		s.mu.RUnlock()
		return nil, ErrCompacted
	}
	if toRev <= 0 || toRev > s.currentRev {
		toRev = s.currentRev
	}
	if fromRev < 1 {
		fromRev = 1
	}
	if fromRev > toRev {
		s.mu.RUnlock()
		return nil, nil
	}
	// The batches hold a contiguous run of the newest revisions (the
	// committing batch before the pending one); everything older is in
	// bbolt. Take the batches' part under the lock, then read bbolt from a
	// transaction opened under it, as view does.
	var mem []pendingPut
	memFrom := toRev + 1 // lowest revision the batches hold, if any
	for _, b := range []*batch{s.committing, s.pending} {
		if b == nil {
			continue
		}
		i := sort.Search(len(b.order), func(i int) bool { return b.order[i].main >= fromRev })
		if len(b.order) > 0 && b.order[0].main < memFrom {
			memFrom = b.order[0].main
		}
		for ; i < len(b.order) && b.order[i].main <= toRev; i++ {
			if p, ok := b.puts[b.order[i]]; ok {
				mem = append(mem, p)
			}
		}
	}
	var evs []*mvccpb.Event
	var last int64 // revision of the last event taken
	if fromRev < memFrom {
		tx, err := s.db.Begin(false)
		if err != nil {
			s.mu.RUnlock()
			return nil, fmt.Errorf("mvcc: read %s: %w", s.path, err)
		}
		s.mu.RUnlock()
		defer func() { _ = tx.Rollback() }()
		c := tx.Bucket(keyBucket).Cursor()
		start := bucketKey(revision{main: fromRev}, false)
		for k, v := c.Seek(start); k != nil; k, v = c.Next() {
			ev, rev, err := decodeEvent(k, v)
			if err != nil {
				return nil, fmt.Errorf("mvcc: %s: %w", s.path, err)
			}
			if rev >= memFrom || rev > toRev {
				break
			}
			if limit > 0 && len(evs) >= limit && rev != last {
				return evs, nil // the batches' part is after the limit
			}
			evs = append(evs, ev)
			last = rev
		}
	} else {
		s.mu.RUnlock()
	}
	for _, p := range mem {
		ev, rev, err := decodeEvent(p.key, p.value)
		if err != nil {
			return nil, fmt.Errorf("mvcc: %s: %w", s.path, err)
		}
		if limit > 0 && len(evs) >= limit && rev != last {
			break
		}
		evs = append(evs, ev)
		last = rev
	}
	return evs, nil
}

// decodeEvent turns one "key" bucket entry into a watch event, as etcd's
// kvsToEvents: a tombstone is a DELETE whose KeyValue has the revision.
func decodeEvent(k, v []byte) (*mvccpb.Event, int64, error) {
	rev, tomb, err := parseBucketKey(k)
	if err != nil {
		return nil, 0, err
	}
	kv, err := decodeKV(v)
	if err != nil {
		return nil, 0, fmt.Errorf("revision %d_%d: %w", rev.main, rev.sub, err)
	}
	if tomb {
		kv.ModRevision = rev.main
		return &mvccpb.Event{Type: mvccpb.DELETE, Kv: kv}, rev.main, nil
	}
	return &mvccpb.Event{Type: mvccpb.PUT, Kv: kv}, rev.main, nil
}
