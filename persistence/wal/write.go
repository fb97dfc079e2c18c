package wal

import (
	"fmt"
	"os"

	"go.etcd.io/raft/v3/raftpb"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/failpoint"
)

// Save appends ents, then hs if it is not empty, with one write (two if a
// segment fills up), then one fdatasync if sync. Entries whose index is not
// above the last one replace the log from that index on when read back
// (raft's truncation on conflict). After an error the WAL refuses further
// writes (ErrFailed): its tail must be re-verified by reopening.
func (w *WAL) Save(hs *raftpb.HardState, ents []*raftpb.Entry, sync bool) error {
	if err := w.writable(); err != nil {
		return err
	}
	w.buf = w.buf[:0]
	for _, e := range ents {
		start := len(w.buf)
		w.buf = beginRecord(w.buf, recEntry)
		var err error
		if w.buf, err = (proto.MarshalOptions{}).MarshalAppend(w.buf, e); err != nil {
			return fmt.Errorf("wal: encode entry %d: %w", e.GetIndex(), err)
		}
		w.buf = finishRecord(w.buf, start)
		if err := w.fit(start); err != nil {
			return err
		}
		w.lastIndex = e.GetIndex()
	}
	if !isEmptyHardState(hs) {
		start := len(w.buf)
		w.buf = beginRecord(w.buf, recHardState)
		var err error
		if w.buf, err = (proto.MarshalOptions{}).MarshalAppend(w.buf, hs); err != nil {
			return fmt.Errorf("wal: encode hard state: %w", err)
		}
		w.buf = finishRecord(w.buf, start)
		if err := w.fit(start); err != nil {
			return err
		}
		w.keepHardState(hs)
	}
	if err := w.write(w.buf); err != nil {
		return err
	}
	if !sync {
		return nil
	}
	return w.sync()
}

// SaveSnapshot appends a snapshot marker and syncs it, with everything
// written before it.
func (w *WAL) SaveSnapshot(m SnapshotMarker) error {
	if err := w.writable(); err != nil {
		return err
	}
	start := 0
	w.buf = encodeRecord(w.buf[:0], recSnapshot, encodeMarker(m))
	if err := w.fit(start); err != nil {
		return err
	}
	if err := w.write(w.buf); err != nil {
		return err
	}
	w.snap = m
	w.lastIndex = max(w.lastIndex, m.Index)
	return w.sync()
}

// fit makes room for the record w.buf[start:], just encoded: if it does not
// fit in the current segment, the records before it are written there and
// it moves to the front of w.buf, bound for a new segment.
func (w *WAL) fit(start int) error {
	if w.tail+int64(len(w.buf)) <= w.capacity {
		return nil
	}
	if err := w.write(w.buf[:start]); err != nil {
		return err
	}
	n := copy(w.buf, w.buf[start:])
	w.buf = w.buf[:n]
	cur := w.segs[len(w.segs)-1]
	return w.cut(segment{seq: cur.seq + 1, first: w.lastIndex + 1}, int64(n))
}

// write appends p at the tail of the current segment.
func (w *WAL) write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if _, err := w.f.WriteAt(p, w.tail); err != nil {
		return w.fail(fmt.Errorf("wal: write %s at %d: %w", w.fpath, w.tail, err))
	}
	w.tail += int64(len(p))
	w.writes.Add(1)
	w.bytes.Add(int64(len(p)))
	return nil
}

// sync runs the walBeforeFsync failpoint, then fdatasyncs the segment.
func (w *WAL) sync() error {
	if err := failpoint.Inject(FailpointBeforeFsync); err != nil {
		return w.fail(fmt.Errorf("wal: sync %s: %w", w.fpath, err))
	}
	if w.opts.UnsafeNoFsync {
		return nil
	}
	if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
		return w.fail(fmt.Errorf("wal: fdatasync %s: %w", w.fpath, err))
	}
	w.fsyncs.Add(1)
	return nil
}

// cut syncs and closes the current segment, if any, and makes s the new
// current segment with room for at least free bytes after its header. The
// new file is built under a temporary name and renamed into place, so a
// crash never leaves a segment without its header.
func (w *WAL) cut(s segment, free int64) error {
	if w.f != nil {
		if err := w.sync(); err != nil {
			return err
		}
		if err := w.f.Close(); err != nil {
			return w.fail(fmt.Errorf("wal: close %s: %w", w.fpath, err))
		}
		w.f = nil
	}
	hdr := encodeRecord(nil, recMetadata, w.metadata)
	hdr = encodeRecord(hdr, recSnapshot, encodeMarker(w.snap))
	if !isEmptyHardState(w.hs) {
		b, err := proto.Marshal(w.hs)
		if err != nil {
			return fmt.Errorf("wal: encode hard state: %w", err)
		}
		hdr = encodeRecord(hdr, recHardState, b)
	}
	size := max(w.opts.SegmentSizeBytes, int64(len(hdr))+free)
	final := w.path(s)
	tmp := final + tmpExt
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return w.fail(fmt.Errorf("wal: create %s: %w", tmp, err))
	}
	err = preallocate(f, size)
	if err == nil {
		_, err = f.WriteAt(hdr, 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = syncDir(w.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return w.fail(fmt.Errorf("wal: new segment %s: %w", final, err))
	}
	w.f, w.fpath, w.tail, w.capacity = f, final, int64(len(hdr)), size
	if n := len(w.segs); n == 0 || w.segs[n-1] != s {
		w.segs = append(w.segs, s)
	}
	if len(w.segs) > 1 {
		w.rollovers.Add(1)
		w.log.Debug("wal segment cut", "segment", s.name(), "size_bytes", size)
	}
	return nil
}

// ReleaseTo removes the oldest segments whose entries all precede index,
// keeping the segment that holds index and the current one, and as many
// more as it takes to leave Options.MaxFiles segment files (as etcd's
// purge of WAL files: the newest files stay). Call it once a snapshot at
// index is durable.
func (w *WAL) ReleaseTo(index uint64) error {
	if w.closed {
		return ErrClosed
	}
	if w.opts.MaxFiles < 0 {
		return nil
	}
	n := 0
	for n+1 < len(w.segs) && w.segs[n+1].first <= index && len(w.segs)-n > w.opts.MaxFiles {
		n++
	}
	if n == 0 {
		return nil
	}
	for i := 0; i < n; i++ {
		if err := os.Remove(w.path(w.segs[0])); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("wal: release %s: %w", w.path(w.segs[0]), err)
		}
		w.segs = w.segs[1:]
	}
	w.log.Info("wal segments released", "count", n, "to_index", index)
	return syncDir(w.dir)
}

// keepHardState records hs as the latest hard state, which every new
// segment repeats. w.hs is the WAL's own copy (HardState and ReadAll hand
// out clones), so its fields are overwritten in place: a clone per Save
// cost 4 allocations. A field hs leaves unset stays unset in the copy, so
// the hard state a new segment starts with encodes to the same bytes as
// a clone would.
func (w *WAL) keepHardState(hs *raftpb.HardState) {
	if hs.Term == nil || hs.Vote == nil || hs.Commit == nil ||
		w.hs.Term == nil || w.hs.Vote == nil || w.hs.Commit == nil ||
		len(hs.ProtoReflect().GetUnknown()) != 0 || len(w.hs.ProtoReflect().GetUnknown()) != 0 {
		w.hs = proto.CloneOf(hs)
		return
	}
	*w.hs.Term, *w.hs.Vote, *w.hs.Commit = *hs.Term, *hs.Vote, *hs.Commit
}

func isEmptyHardState(hs *raftpb.HardState) bool {
	return hs.GetTerm() == 0 && hs.GetVote() == 0 && hs.GetCommit() == 0
}
