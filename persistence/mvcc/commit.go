package mvcc

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// backPressureFactor bounds memory while a background commit runs: a write
// that makes the pending batch reach backPressureFactor*BatchLimit changes
// waits for that commit instead of letting the batch grow further.
const backPressureFactor = 4

// commitJob is one background commit. err is written before done is
// closed, so the writer reads it after receiving from done.
type commitJob struct {
	done chan struct{}
	err  error
}

// CommitAsync starts writing the pending batch and the consistent index to
// bbolt in one transaction on a goroutine of the store, and returns without
// waiting. New writes go to a new pending batch meanwhile; reads find the
// batch being written in memory until its transaction committed. If a
// background commit is still running, CommitAsync does nothing: the next
// call takes the grown batch. It returns the error of an earlier commit, if
// any (see Store.failed). Writer goroutine only; Commit and Close wait for
// the goroutine.
func (s *Store) CommitAsync() error {
	if err := s.reap(); err != nil {
		return err
	}
	if s.job != nil {
		return nil // still running; batches commit one at a time, in order
	}
	b := s.swap()
	if b == nil {
		return nil
	}
	job := &commitJob{done: make(chan struct{})}
	s.job = job
	go func() {
		defer close(job.done)
		job.err = s.writeBatch(b)
	}()
	return nil
}

// Commit waits for a running background commit, then writes the pending
// batch and the consistent index to bbolt in one transaction before it
// returns. Writer goroutine only.
func (s *Store) Commit() error {
	if err := s.wait(); err != nil {
		return err
	}
	b := s.swap()
	if b == nil {
		return nil
	}
	if err := s.writeBatch(b); err != nil {
		s.failed = err
		return err
	}
	return nil
}

// maybeCommit starts a background commit when the pending batch reached
// the limit, first waiting for the running one when the batch reached
// backPressureFactor times the limit. Writer only.
func (s *Store) maybeCommit() error {
	n := s.pending.size()
	if n < s.limit {
		return nil
	}
	if n >= backPressureFactor*s.limit {
		if err := s.wait(); err != nil {
			return err
		}
	}
	return s.CommitAsync()
}

// reap notes the end of a finished background commit without waiting and
// returns the sticky commit error. Writer only.
func (s *Store) reap() error {
	if s.job != nil {
		select {
		case <-s.job.done:
			s.endJob()
		default:
		}
	}
	return s.failed
}

// wait waits for the background commit, if any, and returns the sticky
// commit error. Writer only.
func (s *Store) wait() error {
	if s.job != nil {
		<-s.job.done
		s.endJob()
	}
	return s.failed
}

func (s *Store) endJob() {
	if s.job.err != nil && s.failed == nil {
		s.failed = s.job.err
	}
	s.job = nil
}

// swap makes the pending batch the committing one and starts a new pending
// batch; it returns the batch to write, nil if there is nothing to commit.
// Writer only, with no commit running and no commit failed.
func (s *Store) swap() *batch {
	if s.pending.empty() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.committing != nil {
		// batches must reach bbolt in order: a later batch may delete
		// (compact) what an earlier one puts
		panic("mvcc: a batch is still committing")
	}
	b := s.pending
	s.committing, s.pending = b, newBatch()
	return b
}

// writeBatch writes b, the committing batch, to bbolt in one transaction
// and then drops it from memory. The order matters: a reader that does not
// find a revision in memory must find it in bbolt, so b leaves memory only
// once its transaction committed. On error b stays, so reads still find
// its revisions, and the store refuses to commit anything after it. Runs
// without mu (only the writer changes batches, and never b): on the writer
// goroutine from Commit, on the commit goroutine from CommitAsync.
func (s *Store) writeBatch(b *batch) error {
	if s.commitObserved != nil {
		defer s.commitObserved(time.Now())
	}
	s.startFileWrite()
	err := s.writeBatchTxs(b)
	s.mu.Lock()
	if err == nil {
		s.committing = nil
		if b.ci != 0 {
			s.committedCI.Store(b.ci)
		}
	}
	s.writingFile = false
	s.mu.Unlock()
	return err
}

// writeBatchTxs writes b in its bbolt transactions (see writeBatch).
func (s *Store) writeBatchTxs(b *batch) error {
	from, err := s.writeCompactionChunks(b)
	if err != nil {
		return fmt.Errorf("mvcc: commit compaction to %s: %w", s.path, err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return s.fillTx(tx, b, from) }); err != nil {
		return fmt.Errorf("mvcc: commit to %s: %w", s.path, err)
	}
	return nil
}

// writeCompactionChunks deletes the revisions b's compaction removed
// ahead of b's own transaction, CompactionBatchLimit per transaction (as
// etcd's compaction deletes in batches), leaving at most one batch's worth
// to b's transaction; it returns how many deletes it wrote. Each of its
// transactions records the compaction as scheduled, so a crash before b's
// transaction leaves a file whose Open finishes the compaction, as etcd's
// does. b is only read: readers look at the committing batch meanwhile.
func (s *Store) writeCompactionChunks(b *batch) (int, error) {
	limit := s.compactionBatchLimit
	if limit <= 0 || b.compacts == 0 {
		return 0, nil
	}
	rb := bucketKey(revision{main: b.compacts}, false)
	done := 0
	for len(b.deletes)-done > limit {
		chunk := b.deletes[done : done+limit]
		err := s.db.Update(func(tx *bolt.Tx) error {
			kb := tx.Bucket(keyBucket)
			for _, k := range chunk {
				if err := kb.Delete(k); err != nil {
					return err
				}
			}
			return tx.Bucket(metaBucket).Put(scheduledCompactKey, rb)
		})
		if err != nil {
			return done, err
		}
		done += limit
	}
	return done, nil
}

// fillTx puts b's changes into tx: the puts in revision order, then the
// compaction deletes from the from-th on (writeCompactionChunks wrote the
// others), then the writes to other buckets, then the batch's consistent
// index and compaction revision.
func (s *Store) fillTx(tx *bolt.Tx, b *batch, from int) error {
	if s.commitHook != nil {
		if err := s.commitHook(); err != nil {
			return err
		}
	}
	kb := tx.Bucket(keyBucket)
	kb.FillPercent = 0.9 // revisions are appended in order
	for _, rev := range b.order {
		if p, ok := b.puts[rev]; ok {
			if err := kb.Put(p.key, p.value); err != nil {
				return err
			}
		}
	}
	for _, k := range b.deletes[from:] {
		if err := kb.Delete(k); err != nil {
			return err
		}
	}
	if err := putOthers(tx, b.others); err != nil {
		return err
	}
	meta := tx.Bucket(metaBucket)
	if b.ci != 0 {
		var ciBytes [8]byte
		binary.BigEndian.PutUint64(ciBytes[:], b.ci)
		if err := meta.Put(consistentIndexKey, ciBytes[:]); err != nil {
			return err
		}
	}
	if b.compacts != 0 {
		rb := bucketKey(revision{main: b.compacts}, false)
		if err := meta.Put(scheduledCompactKey, rb); err != nil {
			return err
		}
		if err := meta.Put(finishedCompactKey, rb); err != nil {
			return err
		}
	}
	return nil
}
