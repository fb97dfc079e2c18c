package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"go.etcd.io/raft/v3/raftpb"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// ReadAll reads the log from the segment that holds from (see Recovery in
// the package doc) and returns its metadata, the last hard state (empty if
// none), and the entries after from, with later entries replacing earlier
// ones at the same or a higher index. A torn tail of the last segment is
// repaired (logged at Warn); any other damage in the segments read is
// refused with ErrCorrupt. A non-zero from must be a marker saved in the log
// (ErrSnapshotNotFound); metadata of a version this troupe does not read
// is refused with ErrUnknownMetadataVersion. On success the WAL is ready
// to append after the last record; ReadAll may be called once.
func (w *WAL) ReadAll(from SnapshotMarker) (md Metadata, hs *raftpb.HardState, ents []*raftpb.Entry, err error) {
	if w.closed {
		return Metadata{}, nil, nil, ErrClosed
	}
	if w.ready {
		return Metadata{}, nil, nil, fmt.Errorf("wal: ReadAll called twice on %s", w.dir)
	}
	start := firstSegmentFor(w.segs, from.Index)
	r, end, err := w.readFrom(from, start)
	if err == nil && start > 0 && (r.metadata == nil || !r.foundFrom) {
		// The skipped segments may hold what the read ones lack (a log
		// whose segments do not start with the metadata, or a marker
		// not where the segment names say): read them all, as before.
		r, end, err = w.readFrom(from, 0)
	}
	if err != nil {
		return Metadata{}, nil, nil, err
	}
	if from.Index != 0 && !r.foundFrom {
		return Metadata{}, nil, nil, fmt.Errorf("%w: index %d term %d in %s", ErrSnapshotNotFound, from.Index, from.Term, w.dir)
	}
	if md, err = parseMetadata(w.dir, r.metadata); err != nil {
		return Metadata{}, nil, nil, err
	}
	w.metadata, w.hs = r.metadata, r.hs
	if err := w.openTail(end); err != nil {
		return Metadata{}, nil, nil, err
	}
	w.ready = true
	return md, proto.CloneOf(r.hs), r.ents, nil
}

// firstSegmentFor returns the position in segs of the first segment a read
// from a snapshot at index needs: the last one whose first index is at or
// below index, as etcd's searchIndex. Every entry of an earlier segment
// is below that segment's first index, so at or below the snapshot, and
// what else they hold (metadata, the latest hard state and marker) starts
// every segment. With no such segment (or no snapshot) it is 0.
func firstSegmentFor(segs []segment, index uint64) int {
	for i := len(segs) - 1; i > 0; i-- {
		if segs[i].first <= index {
			return i
		}
	}
	return 0
}

// readFrom reads segs[first:] in order, as if the log began there.
func (w *WAL) readFrom(from SnapshotMarker, first int) (*reader, segmentEnd, error) {
	r := &reader{w: w, from: from, hs: &raftpb.HardState{}}
	// Entries of the skipped segments are below segs[first].first, so at
	// or below the marker this read must find, which sets lastIndex at
	// least as high as they would have.
	w.lastIndex, w.snap = 0, SnapshotMarker{}
	var end segmentEnd
	for i := first; i < len(w.segs); i++ {
		var err error
		if end, err = r.readSegment(w.segs[i], i == len(w.segs)-1); err != nil {
			return nil, segmentEnd{}, err
		}
	}
	return r, end, nil
}

// reader accumulates what ReadAll has decoded so far.
type reader struct {
	w         *WAL
	from      SnapshotMarker
	buf       []byte
	metadata  []byte
	hs        *raftpb.HardState
	ents      []*raftpb.Entry
	foundFrom bool
}

// segmentEnd describes the end of the last segment's valid records.
type segmentEnd struct {
	offset int64 // first byte after the last valid record
	dirty  bool  // bytes after offset are not all zero: zero them
	size   int64 // file size
}

func (r *reader) readSegment(s segment, last bool) (segmentEnd, error) {
	path := r.w.path(s)
	data, size, err := r.readFile(path)
	if err != nil {
		return segmentEnd{}, err
	}
	off := 0
	for {
		typ, body, n, res := recordAt(data, size, off)
		if res == decodeOK {
			if err := r.apply(typ, body); err != nil {
				if errors.Is(err, ErrMissingEntries) {
					return segmentEnd{}, fmt.Errorf("%w (record at offset %d of %s)", err, off, path)
				}
				return segmentEnd{}, fmt.Errorf("%w: record at offset %d of %s: %w; %s", ErrCorrupt, off, path, err, corruptFix)
			}
			off += n
			continue
		}
		if next := validRecordAfter(data, size, off+1); next >= 0 {
			return segmentEnd{}, fmt.Errorf("%w: damaged record at offset %d of %s (%s) is followed by a valid record at offset %d; %s",
				ErrCorrupt, off, path, res, next, corruptFix)
		}
		if res != decodeEnd && !last {
			return segmentEnd{}, fmt.Errorf("%w: damaged record at offset %d of %s (%s), which is not the last segment; %s",
				ErrCorrupt, off, path, res, corruptFix)
		}
		if res != decodeEnd {
			r.w.log.Warn("wal torn tail truncated", "file", path, "offset", off,
				"dropped_bytes", size-off, "reason", res.String())
		}
		// A record whose padding was cut off by the end of the file ends
		// unaligned; appending resumes at the next aligned offset.
		aligned := (off + recordAlign - 1) / recordAlign * recordAlign
		return segmentEnd{offset: int64(aligned), dirty: off < len(data) && !allZero(data[off:]), size: int64(size)}, nil
	}
}

// readFile reads the segment at path up to the end of its data, as the
// file system reports it (SEEK_HOLE): the rest of a preallocated segment
// is a hole or an unwritten extent, which reads as zeros, so it is not
// read at all. It returns those bytes and the file's size; the segment is
// data followed by zeros up to size.
func (r *reader) readFile(path string) ([]byte, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("wal: open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("wal: stat %s: %w", path, err)
	}
	size := fi.Size()
	end, err := dataEnd(f, size)
	if err != nil {
		return nil, 0, fmt.Errorf("wal: find the end of data in %s: %w", path, err)
	}
	if int64(cap(r.buf)) < end {
		r.buf = make([]byte, end)
	}
	r.buf = r.buf[:end]
	if _, err := f.ReadAt(r.buf, 0); err != nil {
		return nil, 0, fmt.Errorf("wal: read %s: %w", path, err)
	}
	return r.buf, int(size), nil
}

// dataEnd returns the offset after the last byte of f (of size bytes) that
// is not in a hole: everything from there on reads as zeros. A file
// system without SEEK_DATA reports the whole file as data.
func dataEnd(f *os.File, size int64) (int64, error) {
	fd := int(f.Fd())
	end := int64(0)
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return end, nil // no data at or after off
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return size, nil
		}
		if err != nil {
			return 0, err
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return 0, err
		}
		if hole <= off {
			return size, nil // no progress: trust nothing, read it all
		}
		end, off = min(hole, size), hole
	}
	return end, nil
}

// apply folds one valid record into the reader's state.
func (r *reader) apply(typ recordType, body []byte) error {
	switch typ {
	case recMetadata:
		if r.metadata == nil {
			r.metadata = bytes.Clone(body)
			if r.metadata == nil {
				r.metadata = []byte{}
			}
		} else if !bytes.Equal(r.metadata, body) {
			return fmt.Errorf("metadata differs from the first segment's")
		}
	case recEntry:
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(body, e); err != nil {
			return fmt.Errorf("decode entry: %w", err)
		}
		return r.applyEntry(e)
	case recHardState:
		hs := &raftpb.HardState{}
		if err := proto.Unmarshal(body, hs); err != nil {
			return fmt.Errorf("decode hard state: %w", err)
		}
		r.hs = hs
	case recSnapshot:
		m, err := decodeMarker(body)
		if err != nil {
			return err
		}
		if m == r.from {
			r.foundFrom = true
		}
		r.w.snap = m
		r.w.lastIndex = max(r.w.lastIndex, m.Index)
	}
	return nil
}

func (r *reader) applyEntry(e *raftpb.Entry) error {
	idx := e.GetIndex()
	r.w.lastIndex = idx
	if idx <= r.from.Index {
		return nil
	}
	pos := idx - r.from.Index - 1
	if pos > uint64(len(r.ents)) {
		return fmt.Errorf("%w: entry %d follows entry %d (snapshot at %d)",
			ErrMissingEntries, idx, r.from.Index+uint64(len(r.ents)), r.from.Index)
	}
	r.ents = append(r.ents[:pos], e)
	return nil
}

// openTail opens the last segment for appending at end.offset, zeroing
// whatever follows it (a torn record or garbage) and growing the file back
// to full size, so that no stale bytes can ever be read as records.
func (w *WAL) openTail(end segmentEnd) error {
	s := w.segs[len(w.segs)-1]
	path := w.path(s)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("wal: open %s: %w", path, err)
	}
	capacity := max(end.size, w.opts.SegmentSizeBytes)
	if end.dirty || end.size < capacity {
		err = f.Truncate(end.offset)
		if err == nil {
			err = preallocate(f, capacity)
		}
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("wal: repair tail of %s at %d: %w", path, end.offset, err)
		}
	}
	w.f, w.fpath, w.tail, w.capacity = f, path, end.offset, capacity
	return nil
}

func encodeMarker(m SnapshotMarker) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint64(b, m.Index)
	binary.LittleEndian.PutUint64(b[8:], m.Term)
	return b
}

func decodeMarker(b []byte) (SnapshotMarker, error) {
	if len(b) != 16 {
		return SnapshotMarker{}, fmt.Errorf("snapshot marker is %d bytes, want 16", len(b))
	}
	return SnapshotMarker{Index: binary.LittleEndian.Uint64(b), Term: binary.LittleEndian.Uint64(b[8:])}, nil
}

func (d decodeResult) String() string {
	switch d {
	case decodeOK:
		return "ok"
	case decodeEnd:
		return "end of log"
	case decodeTorn:
		return "record cut short"
	case decodeBadCRC:
		return "checksum mismatch"
	case decodeBadFrame:
		return "bad length or type"
	}
	return fmt.Sprintf("decodeResult(%d)", int(d))
}
