package mvcc

import (
	"fmt"
	"hash/crc32"
	"slices"

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
//
// At the revision of one of the last compactions it answers the hash
// taken when that compaction applied (CompactHashes), with the compact
// revision before it, as etcd 3.6's HashByRev.
func (s *Store) HashKV(rev int64) (hash uint32, current, compacted int64, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, 0, 0, fmt.Errorf("mvcc: %s is closed", s.path)
	}
	for _, h := range s.compactHashes {
		if h.Revision == rev {
			return h.Hash, s.currentRev, h.CompactRevision, nil
		}
	}
	return s.hashLocked(rev)
}

// hashLocked is HashKV without the stored hashes; the caller holds mu.
func (s *Store) hashLocked(rev int64) (hash uint32, current, compacted int64, err error) {
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

// maxCompactHashes is how many compaction hashes a store keeps (etcd's
// hashStorageMaxSize).
const maxCompactHashes = 10

// CompactHash is the hash of the key history up to Revision taken when
// the compaction at Revision applied, CompactRevision being the one
// before it (etcd 3.6's KeyValueHash of a compaction). Every member
// applies the compaction at the same point of the raft log, so members
// with the same data keep the same CompactHash: the leader's compaction
// hash check compares them.
type CompactHash struct {
	Hash            uint32
	Revision        int64
	CompactRevision int64
}

// storeCompactHash hashes the history up to rev, about to be compacted,
// and keeps it; kept in memory only, as etcd keeps them. The writer holds
// mu exclusively.
func (s *Store) storeCompactHash(rev int64) {
	h, _, prev, err := s.hashLocked(rev)
	if err != nil {
		s.lg.Warn("failed to hash before compaction", "compact-revision", rev, "err", err)
		return
	}
	ch := CompactHash{Hash: h, Revision: rev, CompactRevision: prev}
	s.lg.Info("storing new hash", "hash", ch.Hash, "revision", ch.Revision, "compact-revision", ch.CompactRevision)
	s.compactHashes = append(s.compactHashes, ch)
	if n := len(s.compactHashes); n > maxCompactHashes {
		s.compactHashes = slices.Clone(s.compactHashes[n-maxCompactHashes:])
	}
}

// CompactHashes returns the hashes of the last compactions, newest first.
func (s *Store) CompactHashes() []CompactHash {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := slices.Clone(s.compactHashes)
	slices.Reverse(out)
	return out
}
