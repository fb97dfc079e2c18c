package mvcc

import (
	"fmt"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// sharedReadTx is a bbolt read transaction that every range needing the
// file uses at the same time, as etcd's backend shares one read
// transaction per batch interval: beginning and ending one per range
// takes bbolt's meta lock twice and allocates the transaction, its root
// and its bucket each time, a few percent of a member's CPU under many
// small ranges.
//
// Why a shared transaction is current enough: readers use the current
// one only while no bbolt write runs (Store.writingFile), and every bbolt
// write first retires it (startFileWrite); a batch leaves memory only at
// the end of such a write. So a transaction that is still current was
// begun after the last batch left memory, and every revision a reader
// does not find in a batch is in it (see view).
//
// Why its life is bounded: a read transaction keeps bbolt from remapping
// the file (the file growing) and from reusing the pages freed after it
// began. The store's reference ends before each bbolt write starts; the
// transaction ends when its last reader does. A bbolt write never waits
// for the store itself, only for the readers that began before it, as
// with a transaction per range. Readers that come during the write open
// a transaction of their own (the shared one would be stale at the end
// of the write, and if the store held it, a remap would wait forever).
type sharedReadTx struct {
	tx *bolt.Tx
	kb *bolt.Bucket // the "key" bucket, opened once
	// refs counts the readers using tx plus one for the store while tx
	// is current; the last release rolls tx back.
	refs atomic.Int64
	// cursors on kb that readers finished with: a new cursor is an
	// allocation, its stack three or four more as a seek grows it, and
	// bbolt counts each in the transaction's shared statistics.
	cursors sync.Pool
}

// cursor returns a cursor on the "key" bucket for one reader.
func (r *sharedReadTx) cursor() *bolt.Cursor {
	if c, ok := r.cursors.Get().(*bolt.Cursor); ok {
		return c
	}
	return r.kb.Cursor()
}

// putCursor gives back a cursor of cursor() once its reader is done
// with it (Seek starts afresh, so nothing of its last use leaks).
func (r *sharedReadTx) putCursor(c *bolt.Cursor) {
	if c != nil {
		r.cursors.Put(c)
	}
}

// release ends one reader's use; the last one rolls the transaction back.
func (r *sharedReadTx) release() {
	if r.refs.Add(-1) == 0 {
		_ = r.tx.Rollback()
	}
}

// acquireReadTx returns a read transaction of the file with one reference
// for the caller, who releases it (without the lock, if it likes). The
// caller holds s.mu, shared or exclusive. It is the shared one unless a
// bbolt write is running.
func (s *Store) acquireReadTx() (*sharedReadTx, error) {
	if s.writingFile {
		return s.beginReadTx()
	}
	// Under s.mu the current transaction can be set but not retired
	// (retiring takes s.mu exclusively), so a reference taken on it is
	// never on a transaction already rolled back.
	if r := s.rtx.Load(); r != nil {
		r.refs.Add(1)
		return r, nil
	}
	s.rtxMu.Lock()
	defer s.rtxMu.Unlock()
	if r := s.rtx.Load(); r != nil {
		r.refs.Add(1)
		return r, nil
	}
	r, err := s.beginReadTx()
	if err != nil {
		return nil, err
	}
	r.refs.Add(1) // the store's
	s.rtx.Store(r)
	return r, nil
}

// beginReadTx begins a read transaction with one reference.
func (s *Store) beginReadTx() (*sharedReadTx, error) {
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("mvcc: read %s: %w", s.path, err)
	}
	r := &sharedReadTx{tx: tx, kb: tx.Bucket(keyBucket)}
	r.refs.Store(1)
	return r, nil
}

// retireReadTx drops the store's reference to the shared transaction, so
// the next reader begins a new one. The caller holds s.mu exclusively.
func (s *Store) retireReadTx() {
	if r := s.rtx.Swap(nil); r != nil {
		r.release()
	}
}

// startFileWrite marks a bbolt write as running and retires the shared
// transaction, before the write begins; the write's end clears
// writingFile under s.mu exclusively (where a batch leaves memory). See
// sharedReadTx.
func (s *Store) startFileWrite() {
	s.mu.Lock()
	s.writingFile = true
	s.retireReadTx()
	s.mu.Unlock()
}
