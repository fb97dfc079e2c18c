package mvcc

import (
	"fmt"
	"hash"
	"hash/crc32"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// KeyHash is a hash of the key history, etcd 3.6's KeyValueHash: Hash
// covers the revisions up to Revision as a store compacted at
// CompactRevision (-1: never) holds them.
type KeyHash struct {
	Hash            uint32
	Revision        int64
	CompactRevision int64
}

// HashKV is HashByRev for the callers that want its fields apart: the
// hash, the current revision and the compact revision of the hash.
func (s *Store) HashKV(rev int64) (hash uint32, current, compacted int64, err error) {
	h, current, err := s.HashByRev(rev)
	return h.Hash, current, h.CompactRevision, err
}

// HashByRev hashes the key history up to rev as etcd 3.6.8's HashByRev,
// so troupe and etcd members can be compared, and returns it with the
// current revision. At the revision of one of the last compactions it
// answers the hash taken when that compaction applied (CompactHashes),
// whose CompactRevision is the compaction before it, even below the last
// compaction. Otherwise: rev 0 means the current revision; a positive rev
// below the last compaction is ErrCompacted (the compact revision itself
// is hashed), above the current one ErrFutureRev; a negative rev hashes
// nothing but the bucket name, as etcd does. With ErrCompacted or
// ErrFutureRev the KeyHash holds only the compact revision. Pairs still in the pending
// or committing batch count as if committed; revisions a compaction
// removes count as gone. Any goroutine; the writer waits while the bucket
// is read.
func (s *Store) HashByRev(rev int64) (KeyHash, int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return KeyHash{}, 0, fmt.Errorf("mvcc: %s is closed", s.path)
	}
	for _, h := range s.compactHashes {
		if h.Revision == rev {
			return h, s.currentRev, nil
		}
	}
	current, compacted := s.currentRev, s.compactRev
	switch {
	case rev > 0 && rev < compacted:
		return KeyHash{CompactRevision: compacted}, current, ErrCompacted
	case rev > current:
		return KeyHash{CompactRevision: compacted}, current, ErrFutureRev
	case rev == 0:
		rev = current
	}
	keep := map[revision]bool{}
	s.index.visit([]byte{}, []byte{}, func(ki *keyIndex) bool {
		if r, ok := ki.keepAt(rev); ok {
			keep[r] = true
		}
		return true
	})
	h, err := s.hashLocked(newKeyHasher(compacted, rev, keep))
	return h, current, err
}

// keyHasher is etcd 3.6's kvHasher: the CRC32C of the bucket name, then
// of each (bucket key, value) pair it is given, in key order, that counts.
type keyHasher struct {
	crc        hash.Hash32
	compactRev int64
	rev        int64
	// keep holds the revisions at or below compactRev that count; empty,
	// it keeps them all (etcd's rule, kept for equal hashes).
	keep map[revision]bool
}

func newKeyHasher(compactRev, rev int64, keep map[revision]bool) *keyHasher {
	h := &keyHasher{crc: crc32.New(crc32.MakeTable(crc32.Castagnoli)), compactRev: compactRev, rev: rev, keep: keep}
	h.crc.Write(keyBucket)
	return h
}

// write counts one pair unless it is above the hash revision, a revision
// at or below the compaction that keep leaves out, or a tombstone at the
// compact revision: etcd before 3.5.16 removed that tombstone when it
// compacted and later versions keep it, so no version hashes it.
func (h *keyHasher) write(k, v []byte) {
	r, tomb, err := parseBucketKey(k)
	if err != nil || r.main > h.rev {
		return
	}
	if r.main <= h.compactRev && len(h.keep) > 0 && !h.keep[r] {
		return
	}
	if tomb && r.main == h.compactRev {
		return
	}
	h.crc.Write(k)
	h.crc.Write(v)
}

func (h *keyHasher) sum() KeyHash {
	return KeyHash{Hash: h.crc.Sum32(), Revision: h.rev, CompactRevision: h.compactRev}
}

// hashLocked feeds h every pair of the key bucket as a reader sees it:
// bbolt, then the committing batch, then the pending one, less the
// deletes of compactions not yet committed. The caller holds mu.
func (s *Store) hashLocked(h *keyHasher) (KeyHash, error) {
	gone := map[string]bool{}
	for _, b := range []*batch{s.committing, s.pending} {
		if b == nil {
			continue
		}
		for _, k := range b.deletes {
			gone[string(k)] = true
		}
	}
	write := func(k, v []byte) {
		if !gone[string(k)] {
			h.write(k, v)
		}
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return KeyHash{}, fmt.Errorf("mvcc: hash %s: %w", s.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	// bbolt holds the oldest revisions, the committing batch the next,
	// the pending batch the newest: appending them keeps key order.
	if err := tx.Bucket(keyBucket).ForEach(func(k, v []byte) error {
		write(k, v)
		return nil
	}); err != nil {
		return KeyHash{}, fmt.Errorf("mvcc: hash %s: %w", s.path, err)
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
	return h.sum(), nil
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

// storeCompactHash hashes the history up to rev, about to be compacted,
// and keeps it, as etcd 3.6 hashes what its compaction walks: the
// revisions after the previous compaction and those it kept, with the
// compaction's own keep set (which, unlike HashByRev's, holds a tombstone
// at rev). Every member applies the compaction at the same point of the
// raft log, so members with the same data keep the same hash: the
// leader's compaction hash check compares them. Kept in memory only, as
// etcd keeps them. The writer holds mu exclusively.
func (s *Store) storeCompactHash(rev int64) {
	keep := map[revision]bool{}
	s.index.visit([]byte{}, []byte{}, func(ki *keyIndex) bool {
		if r, _, ok := ki.compactKeep(rev); ok {
			keep[r] = true
		}
		return true
	})
	h, err := s.hashLocked(newKeyHasher(s.compactRev, rev, keep))
	if err != nil {
		s.lg.Warn("failed to hash before compaction", "compact-revision", rev, "err", err)
		return
	}
	s.lg.Info("storing new hash", "hash", h.Hash, "revision", h.Revision, "compact-revision", h.CompactRevision)
	s.compactHashes = append(s.compactHashes, h)
	if n := len(s.compactHashes); n > maxCompactHashes {
		s.compactHashes = slices.Clone(s.compactHashes[n-maxCompactHashes:])
	}
}

// CompactHashes returns the hashes of the last compactions, newest first.
func (s *Store) CompactHashes() []KeyHash {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := slices.Clone(s.compactHashes)
	slices.Reverse(out)
	return out
}
