package mvcc

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// defragTxLimit is the number of keys copied per bbolt transaction of the
// new file (etcd's defragLimit).
const defragTxLimit = 10000

// Defrag rewrites the bbolt file without its free pages, as etcd's
// defragment: it copies every bucket into a new file next to it, then,
// under the write lock, closes the old file, renames the new one over it
// and opens it. Batched writes stay in memory and commit to the new file
// later, so nothing is lost and nothing needs committing first. Readers
// that opened a bbolt transaction before the swap finish on the old file
// (closing it waits for them); readers after it use the new one; none sees
// an error. Writers wait for the whole copy (etcd blocks them too).
//
// Any goroutine. An error before the swap leaves the store as it was; a
// failure during the swap panics, since the store has no file any more
// (the file on disk is whole, old or new: the rename is atomic).
func (s *Store) Defrag() error {
	if err := s.lockWithoutCommit(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	start := time.Now()
	tmp := s.path + ".defrag"
	_ = os.Remove(tmp) // left over by a crash during an earlier defrag
	if err := copyDB(s.db, tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("mvcc: defrag %s: %w", s.path, err)
	}
	noSync := s.db.NoSync
	// Close waits for every read transaction: the store's reference to
	// the shared one must go first (its readers end on their own).
	s.retireReadTx()
	if err := s.db.Close(); err != nil {
		panic(fmt.Sprintf("mvcc: defrag %s: close the old file: %v", s.path, err))
	}
	if err := os.Rename(tmp, s.path); err != nil {
		panic(fmt.Sprintf("mvcc: defrag %s: rename %s over it: %v", s.path, tmp, err))
	}
	if !noSync {
		if err := syncDir(filepath.Dir(s.path)); err != nil {
			panic(fmt.Sprintf("mvcc: defrag %s: %v", s.path, err))
		}
	}
	bopts := s.bopts
	db, err := bolt.Open(s.path, 0o600, &bopts)
	if err != nil {
		panic(fmt.Sprintf("mvcc: defrag %s: reopen: %v", s.path, err))
	}
	s.db = db
	s.lg.Info("defragmented", "path", s.path, "took", time.Since(start))
	return nil
}

// lockWithoutCommit takes the write lock at a moment no batch is being
// committed: a running commit writes to the file without the lock and
// drops its batch under it, so Defrag waits for it (a commit is short, the
// wait is bounded by the backend's speed). The writer cannot start another
// one while the lock is held.
func (s *Store) lockWithoutCommit() error {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return fmt.Errorf("mvcc: defrag %s: store is closed", s.path)
		}
		if s.committing == nil {
			return nil
		}
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

// copyDB copies every bucket of src into a new bbolt file at path, filled
// densely, and syncs it.
func copyDB(src *bolt.DB, path string) (err error) {
	dst, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
	}()
	stx, err := src.Begin(false)
	if err != nil {
		return err
	}
	defer func() { _ = stx.Rollback() }()
	dtx, err := dst.Begin(true)
	if err != nil {
		return err
	}
	defer func() { _ = dtx.Rollback() }() // after Commit: ErrTxClosed, ignored
	n := 0
	err = stx.ForEach(func(name []byte, b *bolt.Bucket) error {
		db, err := dtx.CreateBucketIfNotExists(name)
		if err != nil {
			return err
		}
		db.FillPercent = 0.9 // keys are appended in order
		return b.ForEach(func(k, v []byte) error {
			if n++; n%defragTxLimit == 0 {
				if err := dtx.Commit(); err != nil {
					return err
				}
				if dtx, err = dst.Begin(true); err != nil {
					return err
				}
				db = dtx.Bucket(name)
				db.FillPercent = 0.9
			}
			if v == nil {
				return errors.New("nested buckets are not etcd's layout")
			}
			return db.Put(k, v)
		})
	})
	if err != nil {
		return err
	}
	if err := dtx.Commit(); err != nil {
		return err
	}
	return dst.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// Hash returns the CRC32C of the whole backend as etcd 3.4's Hash (the
// Maintenance RPC) computes it: for every bucket in name order, its name
// and then each key and value in key order, except meta's
// consistent_index. Changes still in the pending or committing batch
// count as if committed, as etcd forces a commit first. It also returns
// the current revision. Any goroutine; the writer waits meanwhile.
func (s *Store) Hash() (hash uint32, rev int64, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, 0, fmt.Errorf("mvcc: %s is closed", s.path)
	}
	overlay := s.batchOverlay()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			h.Write(name)
			write := func(k, v []byte) {
				if string(name) == string(metaBucket) && bytes.Equal(k, consistentIndexKey) {
					return
				}
				h.Write(k)
				h.Write(v)
			}
			return mergeBucket(b, overlay[string(name)], write)
		})
	})
	if err != nil {
		return 0, 0, fmt.Errorf("mvcc: hash %s: %w", s.path, err)
	}
	return h.Sum32(), s.currentRev, nil
}

// batchOverlay returns, per bucket, the changes of the committing and then
// the pending batch (a nil value deletes), the later winning. Caller holds
// mu.
func (s *Store) batchOverlay() map[string]map[string][]byte {
	o := map[string]map[string][]byte{}
	set := func(bucket, k, v []byte) {
		m := o[string(bucket)]
		if m == nil {
			m = map[string][]byte{}
			o[string(bucket)] = m
		}
		m[string(k)] = v
	}
	for _, b := range []*batch{s.committing, s.pending} {
		if b == nil {
			continue
		}
		for _, r := range b.order {
			if p, ok := b.puts[r]; ok {
				set(keyBucket, p.key, p.value)
			}
		}
		for _, k := range b.deletes {
			set(keyBucket, k, nil)
		}
		for _, op := range b.others {
			set(op.bucket, op.key, op.value)
		}
		if b.compacts != 0 {
			rb := bucketKey(revision{main: b.compacts}, false)
			set(metaBucket, scheduledCompactKey, rb)
			set(metaBucket, finishedCompactKey, rb)
		}
	}
	return o
}

// mergeBucket calls write for each pair of b with the overlay applied, in
// key order.
func mergeBucket(b *bolt.Bucket, overlay map[string][]byte, write func(k, v []byte)) error {
	keys := make([]string, 0, len(overlay))
	for k := range overlay {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	i := 0
	emitUpTo := func(k []byte) { // overlay keys below k (all when k is nil)
		for ; i < len(keys) && (k == nil || keys[i] < string(k)); i++ {
			if v := overlay[keys[i]]; v != nil {
				write([]byte(keys[i]), v)
			}
		}
	}
	err := b.ForEach(func(k, v []byte) error {
		emitUpTo(k)
		if i < len(keys) && keys[i] == string(k) {
			if ov := overlay[keys[i]]; ov != nil {
				write(k, ov)
			}
			i++
			return nil
		}
		write(k, v)
		return nil
	})
	emitUpTo(nil)
	return err
}

// DefragIfFreeable defragments the file when at least thresholdBytes of
// it are free pages, as etcd's --bootstrap-defrag-threshold-megabytes
// does at start-up, and reports whether it did. thresholdBytes <= 0 does
// nothing.
func (s *Store) DefragIfFreeable(thresholdBytes int64) (bool, error) {
	if thresholdBytes <= 0 {
		return false, nil
	}
	total, inUse := s.DBSize()
	if total-inUse < thresholdBytes {
		s.lg.Info("skipping defragmentation", "current-db-size-bytes", total, "current-db-size-in-use-bytes", inUse,
			"defrag-threshold-bytes", thresholdBytes)
		return false, nil
	}
	return true, s.Defrag()
}
