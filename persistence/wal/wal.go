// Package wal is troupe's write-ahead log for raft: entries, hard states and
// snapshot markers, appended to preallocated segment files and made durable
// with one fdatasync per batch.
//
// # Layout
//
// A WAL is a directory of segment files named %016x-%016x.wal (sequence
// number, first index), each preallocated to Options.SegmentSizeBytes with
// zeros. Every segment starts with the metadata given to Create (the
// member and cluster ids, in the versioned format of metadata.go), the
// latest snapshot marker and the latest hard state, so removing or
// skipping older segments never loses them. Records are framed with a
// length and a CRC32C (see record.go); a record never spans segments; a segment that cannot take the
// next record is synced and followed by a new one.
//
// # Recovery
//
// ReadAll reads the segments in order, starting, as etcd's wal.Open, at
// the last segment whose first index is at or below the snapshot it reads
// from: the segments before it hold only entries the snapshot covers, and
// their metadata, latest marker and hard state are repeated at its start.
// Every segment troupe ever wrote starts that way; should the first segment
// read lack the metadata, or the marker not be found, every segment is
// read after all. Damage in the segments skipped is not seen, as in etcd:
// nothing in them is needed once the snapshot is durable, and ReleaseTo
// removes them.
//
// A segment is read only up to the end of its data as the file system
// reports it (SEEK_DATA/SEEK_HOLE): the preallocated rest is a hole or an
// unwritten extent, which reads as zeros, and is treated as zeros without
// being read. Bytes written anywhere in it are data and are read. A file
// system that cannot tell reports the whole file as data.
//
// A damaged or partial record at the end of the last segment, with nothing
// valid after it, is the tail of a write that never finished: it is
// logged, zeroed and the log continues from there. A damaged record
// anywhere else in the segments read (in an older segment, or with a valid
// record after it) is refused with ErrCorrupt naming the file and the
// offset, since acknowledged data would be lost by skipping it.
//
// A WAL is not safe for concurrent use: one owner (the wal actor) calls it.
// Stats may be read from any goroutine.
package wal

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// DefaultSegmentSizeBytes is the size segments are preallocated to.
const DefaultSegmentSizeBytes = 64 << 20

// FailpointBeforeFsync names the failpoint reached before every fdatasync
// of Save and SaveSnapshot.
const FailpointBeforeFsync = "walBeforeFsync"

// Options tune a WAL. The zero value is usable.
type Options struct {
	// SegmentSizeBytes is the size new segment files are preallocated to;
	// 0 means DefaultSegmentSizeBytes. Larger segments mean fewer rollovers
	// (each costs a file creation and two syncs) but coarser release of old
	// log; a single record larger than a segment gets a segment of its own.
	SegmentSizeBytes int64
	// Logger receives warnings (torn tails repaired) and segment events;
	// nil means slog.Default().
	Logger *slog.Logger
	// MaxFiles is etcd's --max-wals: ReleaseTo removes released segments,
	// oldest first, only while more than MaxFiles segment files exist, so
	// an operator keeps some history; 0 removes every released segment,
	// a negative value none (etcd's 0, "unlimited").
	MaxFiles int
	// UnsafeNoFsync skips the fdatasync of appends (etcd's
	// --unsafe-no-fsync): a crash loses what the page cache held, and
	// with it raft's guarantees. For tests and benchmarks only.
	UnsafeNoFsync bool
}

func (o Options) withDefaults() Options {
	if o.SegmentSizeBytes <= 0 {
		o.SegmentSizeBytes = DefaultSegmentSizeBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("component", "wal")
	return o
}

// SnapshotMarker records that a snapshot at Index (with Term) was taken.
// ReadAll returns the entries after a marker.
type SnapshotMarker struct {
	Index uint64
	Term  uint64
}

// Stats counts a WAL's work since it was opened.
type Stats struct {
	Fsyncs    int64 // fdatasync calls, including those of rollovers
	Writes    int64 // write calls
	Bytes     int64 // bytes written
	Rollovers int64 // new segments cut
}

// WAL is an open write-ahead log.
type WAL struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *os.File // flocked directory, held until Close

	segs []segment // oldest first; the last one is being written
	// metadata is the metadata record's body as the first segment has
	// it; every new segment gets the same bytes (a WAL made with an
	// older metadata version keeps it), as ReadAll requires.
	metadata []byte

	// Writer state, valid once ready (after Create or ReadAll).
	ready     bool
	closed    bool
	failed    error // sticky: set by the first failed write or sync
	f         *os.File
	fpath     string // path of f (f.Name() keeps the temporary name)
	tail      int64  // write offset in f
	capacity  int64  // size of f
	buf       []byte
	lastIndex uint64 // index of the last entry record written
	hs        *raftpb.HardState
	snap      SnapshotMarker

	fsyncs, writes, bytes, rollovers atomic.Int64
}

// Exist reports whether dir holds segment files.
func Exist(dir string) bool {
	segs, err := listSegments(dir)
	return err == nil && len(segs) > 0
}

// Create makes a new WAL in dir (created if missing) whose every segment
// carries md (in the current metadata version), and returns it ready to
// write.
func Create(dir string, md Metadata, opts Options) (*WAL, error) {
	return create(dir, md.Marshal(), opts)
}

// create is Create with the metadata record's bytes; tests use it to write
// older metadata versions.
func create(dir string, metadata []byte, opts Options) (*WAL, error) {
	if Exist(dir) {
		return nil, fmt.Errorf("%w: %s", ErrExist, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("wal: create dir %s: %w", dir, err)
	}
	w, err := newWAL(dir, opts)
	if err != nil {
		return nil, err
	}
	w.metadata = append([]byte(nil), metadata...)
	w.hs = &raftpb.HardState{}
	if err := w.cut(segment{seq: 0, first: 1}, 0); err != nil {
		w.Close()
		return nil, err
	}
	w.ready = true
	return w, nil
}

// Open opens the WAL in dir for reading; call ReadAll next, which also
// readies it for writing.
func Open(dir string, opts Options) (*WAL, error) {
	w, err := newWAL(dir, opts)
	if err != nil {
		return nil, err
	}
	if w.segs, err = listSegments(dir); err != nil {
		w.Close()
		return nil, err
	}
	if len(w.segs) == 0 {
		w.Close()
		return nil, fmt.Errorf("%w in %s", ErrNotFound, dir)
	}
	return w, nil
}

func newWAL(dir string, opts Options) (*WAL, error) {
	opts = opts.withDefaults()
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	if err := removeTemps(dir); err != nil {
		lock.Close()
		return nil, err
	}
	return &WAL{dir: dir, opts: opts, log: opts.Logger.With("dir", dir), lock: lock}, nil
}

// Stats returns the WAL's counters.
func (w *WAL) Stats() Stats {
	return Stats{Fsyncs: w.fsyncs.Load(), Writes: w.writes.Load(), Bytes: w.bytes.Load(), Rollovers: w.rollovers.Load()}
}

// Dir returns the WAL's directory.
func (w *WAL) Dir() string { return w.dir }

// HardState returns the last hard state saved or read (empty if none).
func (w *WAL) HardState() *raftpb.HardState { return proto.CloneOf(w.hs) }

// LastIndex returns the index of the last entry saved or read.
func (w *WAL) LastIndex() uint64 { return w.lastIndex }

// Close syncs the current segment and releases the directory. It is safe
// to call more than once.
func (w *WAL) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	var err error
	if w.f != nil {
		if w.failed == nil {
			if serr := w.sync(); serr != nil {
				err = serr
			}
		}
		if cerr := w.f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("wal: close %s: %w", w.fpath, cerr)
		}
		w.f = nil
	}
	if w.lock != nil {
		w.lock.Close()
		w.lock = nil
	}
	return err
}

// Closed reports whether Close was called.
func (w *WAL) Closed() bool { return w.closed }

func (w *WAL) writable() error {
	switch {
	case w.closed:
		return ErrClosed
	case w.failed != nil:
		return fmt.Errorf("%w: %w", ErrFailed, w.failed)
	case !w.ready:
		return ErrNotReady
	}
	return nil
}

// fail records err as the WAL's sticky failure and returns it.
func (w *WAL) fail(err error) error {
	if w.failed == nil {
		w.failed = err
	}
	return err
}

func (w *WAL) path(s segment) string { return filepath.Join(w.dir, s.name()) }
