package mvcc

import (
	"fmt"
	"io"
)

// SnapshotDB returns a reader of a consistent copy of the bbolt file as
// committed now (a read transaction's view), to ship to a member that
// needs a snapshot. Data still batched is not in it; callers make sure the
// copy is recent enough (a raft snapshot is taken only after a synchronous
// Commit). The copy is written by a goroutine that ends when the reader
// is read to the end or closed. Any goroutine.
func (s *Store) SnapshotDB() (io.ReadCloser, error) {
	// Under the read lock: Defrag swaps s.db under the write lock. The
	// transaction then holds the old file open until the copy is read.
	s.mu.RLock()
	tx, err := s.db.Begin(false)
	s.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("mvcc: snapshot %s: %w", s.path, err)
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := tx.WriteTo(pw)
		_ = tx.Rollback()
		pw.CloseWithError(err)
	}()
	return pr, nil
}
