package mvcc

import (
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
)

// HashKV returns the CRC32C of the key bucket as etcd 3.4's HashKV
// computes it, so troupe and etcd members can be compared: the bucket
// name, then every (bucket key, value) pair with a revision <= rev in key
// order, where rev 0 means the current revision; below the last compaction
// only the revisions a compaction at rev would keep count (etcd's quirk:
// keep is taken at the hash revision, not at the compaction). Pairs still
// in the pending or committing batch count as if committed; revisions a
// compaction removes count as gone. Any goroutine; the writer waits while
// the bucket is read.
func (s *Store) HashKV(rev int64) (hash uint32, current, compacted int64, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, 0, 0, fmt.Errorf("mvcc: %s is closed", s.path)
	}
	current, compacted = s.currentRev, s.compactRev
	switch {
	case rev == 0:
		rev = current
	case rev > current:
		return 0, current, compacted, ErrFutureRev
	case rev <= compacted:
		return 0, current, compacted, ErrCompacted
	}
	keep := map[revision]bool{}
	s.index.visit([]byte{}, []byte{}, func(ki *keyIndex) bool {
		if r, ok := ki.keepAt(rev); ok {
			keep[r] = true
		}
		return true
	})
	gone := map[string]bool{}
	for _, b := range []*batch{s.committing, s.pending} {
		if b == nil {
			continue
		}
		for _, k := range b.deletes {
			gone[string(k)] = true
		}
	}
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	h.Write(keyBucket)
	write := func(k, v []byte) {
		r, _, err := parseBucketKey(k)
		if err != nil || r.main > rev || gone[string(k)] {
			return
		}
		if r.main <= compacted && len(keep) > 0 && !keep[r] {
			return
		}
		h.Write(k)
		h.Write(v)
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return 0, current, compacted, fmt.Errorf("mvcc: hash %s: %w", s.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	// bbolt holds the oldest revisions, the committing batch the next,
	// the pending batch the newest: appending them keeps key order.
	if err := tx.Bucket(keyBucket).ForEach(func(k, v []byte) error {
		write(k, v)
		return nil
	}); err != nil {
		return 0, current, compacted, fmt.Errorf("mvcc: hash %s: %w", s.path, err)
	}
	committing := s.committing
	if committing != nil && committing.inTx(tx) {
		// The commit reached bbolt before this read transaction began;
		// it leaves memory only once it can take mu, after this hash.
		committing = nil
	}
	for _, b := range []*batch{committing, s.pending} {
		if b == nil {
			continue
		}
		for _, r := range b.order {
			if p, ok := b.puts[r]; ok {
				write(p.key, p.value)
			}
		}
	}
	return h.Sum32(), current, compacted, nil
}

// inTx reports whether tx already holds b's puts: the committing batch is
// written to bbolt without the store's lock, so a reader holding the lock
// may see it both in bbolt and in memory.
func (b *batch) inTx(tx *bolt.Tx) bool {
	for _, r := range b.order {
		if p, ok := b.puts[r]; ok {
			return tx.Bucket(keyBucket).Get(p.key) != nil
		}
	}
	return false // no puts: nothing of b is hashed either way
}
