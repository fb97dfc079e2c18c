package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// ErrAlreadyApplied is returned by a write whose raft index is not above
// ConsistentIndex: the entry was applied before (the raft log is replayed
// after a restart) and is skipped without any change.
var ErrAlreadyApplied = errors.New("mvcc: entry already applied")

// DefaultBatchLimit is the number of pending changes after which a write
// starts committing the batch itself (etcd's batch limit).
const DefaultBatchLimit = 10000

// bucket and meta key names, as etcd creates them.
var (
	keyBucket  = []byte("key")
	metaBucket = []byte("meta")
	allBuckets = [][]byte{
		keyBucket, metaBucket, []byte("lease"), []byte("alarm"), []byte("members"),
		[]byte("members_removed"), []byte("cluster"), []byte("auth"),
		[]byte("authUsers"), []byte("authRoles"),
	}
	consistentIndexKey  = []byte("consistent_index")
	scheduledCompactKey = []byte("scheduledCompactRev")
	finishedCompactKey  = []byte("finishedCompactRev")
)

// Options tunes a Store.
type Options struct {
	// Logger receives open and compaction messages; nil means slog.Default().
	Logger *slog.Logger
	// BatchLimit is the number of pending changes (writes plus compaction
	// deletes) at which a write starts a background commit of the batch
	// itself (and at 4x which it waits for a running one); 0 means
	// DefaultBatchLimit.
	BatchLimit int
	// NoSync skips fsync on bbolt commits. For tests (and etcd's
	// --unsafe-no-fsync) only: a crash can lose committed data.
	NoSync bool
	// CompactionBatchLimit is etcd's --compaction-batch-limit: a
	// compaction's deletes reach the file in transactions of at most this
	// many (the last with the rest of the batch); 0 writes them all with
	// the batch.
	CompactionBatchLimit int
	// Mlock keeps the file's pages in RAM (etcd's --memory-mlock); it
	// needs RLIMIT_MEMLOCK to cover the file.
	Mlock bool
	// FreelistType is bbolt's freelist (etcd's
	// --backend-bbolt-freelist-type): "map" or "array"; "" is bbolt's
	// default.
	FreelistType string
	// CommitObserved, if set, is called after each bbolt commit of a batch
	// with the time the commit started (for etcd's backend commit metric).
	CommitObserved func(start time.Time)
	// Changed, if set, is called on the writer goroutine at the end of
	// every write transaction that changed something, with the new
	// revision and its events in sub-revision order (a PUT with the new
	// KeyValue, a DELETE with Key and ModRevision set, as etcd's). It must
	// not call back into the store's writer methods; the events are not
	// changed by the store afterwards, but the list is: the hook copies
	// the events it keeps, not the slice.
	Changed func(rev int64, events []*mvccpb.Event)
}

// Store is the MVCC key-value store. See the package documentation for the
// goroutine rules.
type Store struct {
	path  string
	db    *bolt.DB
	bopts bolt.Options // how db was opened; Defrag reopens it so
	lg    *slog.Logger
	limit int
	// compactionBatchLimit: see Options.CompactionBatchLimit.
	compactionBatchLimit int
	leases               *leaseTable // see lease.go; guarded by mu
	// wtxn is the write in progress, reused by every beginWrite (one
	// write at a time, under mu): a new one per write was an allocation
	// per put.
	wtxn writeTxn
	// commitObserved: see Options.CommitObserved.
	commitObserved func(start time.Time)
	// changed: see Options.Changed.
	changed func(rev int64, events []*mvccpb.Event)

	// ci is the highest applied raft index, pending, committing or
	// committed.
	ci atomic.Uint64
	// committedCI is the consistent index bbolt holds: that of the last
	// batch whose transaction committed (see CommittedIndex).
	committedCI atomic.Uint64

	// Writer goroutine only. job is the background commit started by
	// CommitAsync, nil once the writer saw it end; failed is the first
	// commit error, returned by every later write, Commit, CommitAsync and
	// Close (sticky: the batch it failed to write stays in memory and no
	// later batch may be committed past it).
	job    *commitJob
	failed error
	// commitHook, when set (by tests, before the first write), runs inside
	// every bbolt commit transaction; an error aborts that commit.
	commitHook func() error
	// checkpointMinKeys is the smallest index Close writes a checkpoint
	// for (see indexcheckpoint.go); tests lower it.
	checkpointMinKeys int

	// mu guards everything below: the writer holds it exclusively while it
	// changes them, readers hold it shared. The background commit takes it
	// exclusively only to drop committing after the bbolt transaction.
	mu         sync.RWMutex
	index      *treeIndex
	currentRev int64 // revision of the last write; 1 in an empty store
	compactRev int64 // -1 until the first compaction
	// pending takes new writes; committing, when not nil, is the batch
	// being written to bbolt. A revision the index holds is in pending, in
	// committing or else in bbolt: a batch leaves memory only after its
	// bbolt transaction committed (until then a revision can be in both
	// committing and bbolt; readers take it from memory).
	pending    *batch
	committing *batch
	closed     bool
	// writingFile is true while a bbolt write transaction runs (and after
	// Close): readers then open a read transaction of their own instead
	// of the shared rtx. See readtx.go.
	writingFile bool
	// rtx is the read transaction readers share, nil until one needs it
	// and after a bbolt write retired it. Set under s.mu shared (creations
	// serialised by rtxMu), retired only under s.mu exclusively.
	rtx   atomic.Pointer[sharedReadTx]
	rtxMu sync.Mutex
	// compactHashes are the hashes taken at the last compactions (see
	// hash.go), oldest first.
	compactHashes []KeyHash
}

// batch is a set of changes not yet committed to bbolt. Only the writer
// changes it, and only while it is pending: once it becomes the committing
// batch nobody changes it.
type batch struct {
	puts    map[revision]pendingPut
	order   []revision // puts in ascending revision order
	deletes [][]byte   // bucket keys removed by compaction
	// ci is the raft index of the last entry applied into this batch, 0 if
	// none: the consistent index its transaction records, so the index on
	// disk never names an entry whose data is not on disk with it.
	ci       uint64
	compacts int64 // compaction revision to record; 0 for none
	// others are writes to buckets other than "key" (membership), in the
	// order they were made; see members.go.
	others []bucketOp
}

type pendingPut struct {
	key   []byte // bucket key
	value []byte // marshalled mvccpb.KeyValue
}

func newBatch() *batch { return &batch{puts: make(map[revision]pendingPut)} }

func (b *batch) size() int { return len(b.order) + len(b.deletes) + len(b.others) }

func (b *batch) empty() bool {
	return len(b.order) == 0 && len(b.deletes) == 0 && b.ci == 0 && b.compacts == 0 && len(b.others) == 0
}

// Open opens (creating it if missing) the bbolt file at path, creates
// etcd's buckets and rebuilds the key index from the "key" bucket. If a
// compaction was scheduled but not finished (an etcd file), it is finished.
func Open(path string, opts Options) (*Store, error) {
	lg := opts.Logger
	if lg == nil {
		lg = slog.Default()
	}
	limit := opts.BatchLimit
	if limit <= 0 {
		limit = DefaultBatchLimit
	}
	bopts := &bolt.Options{Timeout: 2 * time.Second, NoSync: opts.NoSync, Mlock: opts.Mlock, FreelistType: bolt.FreelistType(opts.FreelistType)}
	db, err := bolt.Open(path, 0o600, bopts)
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("mvcc: open %s: another process holds its lock; stop it or use another data dir: %w", path, err)
		}
		return nil, fmt.Errorf("mvcc: open %s (check the path and its permissions, or restore the file from a snapshot): %w", path, err)
	}
	s := &Store{
		path: path, db: db, bopts: *bopts, lg: lg, limit: limit, compactionBatchLimit: opts.CompactionBatchLimit, leases: newLeaseTable(), commitObserved: opts.CommitObserved, changed: opts.Changed,
		index: newTreeIndex(), currentRev: 1, compactRev: -1, pending: newBatch(),
		checkpointMinKeys: DefaultCheckpointMinKeys,
	}
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("mvcc: open %s (the file is damaged; restore it from a snapshot): %w", path, err)
	}
	return s, nil
}

// load creates missing buckets and rebuilds the in-memory state: the key
// index from the checkpoint a clean Close left, else by scanning the "key"
// bucket.
func (s *Store) load() error {
	var ri *restoredIndex
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %q: %w", name, err)
			}
		}
		if err := initAuth(tx); err != nil {
			return err
		}
		var err error
		ri, err = takeIndexCheckpoint(tx)
		if errors.Is(err, errCheckpoint) {
			s.lg.Warn("rebuilding the key index by a scan", "path", s.path, "reason", err)
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	scheduled := int64(-1)
	err = s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		if v := meta.Get(consistentIndexKey); len(v) == 8 {
			s.ci.Store(binary.BigEndian.Uint64(v))
			s.committedCI.Store(s.ci.Load())
		}
		if v := meta.Get(finishedCompactKey); v != nil {
			rev, _, err := parseBucketKey(v)
			if err != nil {
				return fmt.Errorf("meta %s: %w", finishedCompactKey, err)
			}
			s.compactRev = rev.main
		}
		if v := meta.Get(scheduledCompactKey); v != nil {
			rev, _, err := parseBucketKey(v)
			if err != nil {
				return fmt.Errorf("meta %s: %w", scheduledCompactKey, err)
			}
			scheduled = rev.main
		}
		if ri != nil {
			s.installIndex(ri)
		} else if err := tx.Bucket(keyBucket).ForEach(s.restoreEntry); err != nil {
			return err
		}
		return s.loadLeases(tx)
	})
	if err != nil {
		return err
	}
	if s.currentRev < s.compactRev {
		s.currentRev = s.compactRev
	}
	if scheduled > s.compactRev && scheduled <= s.currentRev {
		s.lg.Info("finishing interrupted compaction", "path", s.path, "revision", scheduled)
		s.compactLocked(scheduled)
		if err := s.Commit(); err != nil {
			return err
		}
	}
	s.lg.Info("opened mvcc store", "path", s.path, "revision", s.currentRev,
		"compact-revision", s.compactRev, "consistent-index", s.ci.Load(),
		"keys", s.index.tree.Len(), "index-from-checkpoint", ri != nil)
	return nil
}

// restoreEntry adds one "key" bucket entry to the index.
func (s *Store) restoreEntry(k, v []byte) error {
	rev, tomb, err := parseBucketKey(k)
	if err != nil {
		return fmt.Errorf("bucket key: %w", err)
	}
	kv, err := decodeKV(v)
	if err != nil {
		return fmt.Errorf("bucket key revision %d_%d: %w", rev.main, rev.sub, err)
	}
	if rev.main > s.currentRev {
		s.currentRev = rev.main
	}
	if tomb {
		ki := s.index.lookup(kv.Key)
		switch {
		case ki == nil:
			// A compaction at this tombstone kept it and dropped the
			// versions before it; the next compaction drops it (as etcd's
			// restoreTombstone).
			s.index.getOrCreate(kv.Key).tombstone(rev)
		case ki.live() != nil:
			ki.tombstone(rev)
		default:
			s.lg.Warn("ignoring a tombstone of a deleted key", "path", s.path, "key", string(kv.Key), "revision", rev.main)
		}
		s.leases.attach(string(kv.Key), 0)
		return nil
	}
	s.index.getOrCreate(kv.Key).put(rev, revision{main: kv.CreateRevision}, kv.Version)
	// entries come in revision order: the last version's lease wins
	s.leases.attach(string(kv.Key), kv.Lease)
	return nil
}

// Close waits for a background commit, commits the pending batch, writes
// the key index checkpoint the next Open starts from, and closes the file.
// After a commit error it closes the file without committing and returns
// that error. Writer goroutine only.
func (s *Store) Close() error { return s.close(true) }

// CloseForReplace is Close for a file about to be replaced (a snapshot
// install renames another database over it): no checkpoint is written,
// since nobody would open it, and for a large index it would hold the
// install up for seconds.
func (s *Store) CloseForReplace() error { return s.close(false) }

func (s *Store) close(checkpoint bool) error {
	if s.closed {
		return nil
	}
	err := s.Commit()
	// From here on nothing shares a read transaction: the checkpoint
	// writes and db.Close waits for every read transaction to end.
	s.startFileWrite()
	if err == nil && checkpoint {
		// Only an optimisation of the next Open: a failure leaves no
		// checkpoint (its transaction is atomic) and Open scans.
		if cerr := s.writeIndexCheckpoint(); cerr != nil {
			s.lg.Warn("could not write the key index checkpoint; the next open scans the key bucket", "path", s.path, "err", cerr)
		}
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	if cerr := s.db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("mvcc: close %s: %w", s.path, cerr)
	}
	return err
}

// Path returns the bbolt file's path.
func (s *Store) Path() string { return s.path }

// ConsistentIndex returns the highest raft index applied, including
// applications still in the pending batch.
func (s *Store) ConsistentIndex() uint64 { return s.ci.Load() }

// CommittedIndex returns the consistent index of what bbolt holds: the
// highest raft index whose application a committed transaction contains,
// so a copy of the file taken now (SnapshotDB) has everything up to it.
// Any goroutine.
func (s *Store) CommittedIndex() uint64 { return s.committedCI.Load() }

// SetConsistentIndex records that the raft entry at index was applied
// (for entries that are not KV requests). A lower index is ignored.
// Writer goroutine only.
func (s *Store) SetConsistentIndex(index uint64) {
	if index <= s.ci.Load() {
		return
	}
	s.mu.Lock()
	s.ci.Store(index)
	s.pending.ci = index
	s.mu.Unlock()
}

// Rev returns the current store revision (1 in an empty store).
func (s *Store) Rev() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.currentRev
}

// CompactRev returns the revision of the last compaction, -1 if none.
func (s *Store) CompactRev() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.compactRev
}

// DBSize returns the file's size and the bytes of it in use (the size less
// the free pages), as etcd's db size and db size in use.
func (s *Store) DBSize() (total, inUse int64) {
	// Under the read lock: Defrag swaps s.db under the write lock.
	s.mu.RLock()
	defer s.mu.RUnlock()
	var pageSize int64
	_ = s.db.View(func(tx *bolt.Tx) error {
		total = tx.Size()
		// Info reads the mmap without a lock; the read transaction holds
		// off a remap meanwhile.
		pageSize = int64(tx.DB().Info().PageSize)
		return nil
	})
	free := int64(s.db.Stats().FreePageN) * pageSize
	return total, total - free
}

// compactLocked drops from the index every revision not needed at rev or
// later and schedules their deletion. A revision still in the pending batch
// is just left out of it; any other one (in the committing batch or in
// bbolt) gets a delete in the pending batch, which commits after the batch
// that put it. The committing batch is never changed. Caller holds mu
// exclusively.
func (s *Store) compactLocked(rev int64) {
	s.compactRev = rev
	var removed []removedRev
	var gone []*keyIndex
	s.index.tree.Ascend(func(ki *keyIndex) bool {
		var empty bool
		removed, empty = ki.compact(rev, removed)
		if empty {
			gone = append(gone, ki)
		}
		return true
	})
	for _, ki := range gone {
		s.index.remove(ki)
	}
	b := s.pending
	for _, r := range removed {
		if _, ok := b.puts[r.rev]; ok {
			delete(b.puts, r.rev)
			continue
		}
		b.deletes = append(b.deletes, bucketKey(r.rev, r.tomb))
	}
	b.compacts = rev
	s.lg.Debug("compacted", "path", s.path, "revision", rev, "removed", len(removed))
}
