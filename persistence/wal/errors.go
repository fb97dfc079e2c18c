package wal

import "errors"

var (
	// ErrExist is returned by Create when dir already holds a WAL.
	ErrExist = errors.New("wal: directory already holds a wal")
	// ErrNotFound is returned by Open when dir holds no segment files.
	ErrNotFound = errors.New("wal: no segment files found")
	// ErrLocked is returned by Open and Create when another WAL (of this or
	// another process) holds the directory.
	ErrLocked = errors.New("wal: directory is locked by another wal")
	// ErrCorrupt is returned when a record that is not the torn tail of the
	// log is damaged, or a segment is missing. The data dir cannot be
	// trusted: restore the member from a snapshot, or remove its data dir
	// and re-add it to the cluster.
	ErrCorrupt = errors.New("wal: corrupt")
	// ErrSnapshotNotFound is returned by ReadAll when the marker it was
	// asked to read from is not in the log.
	ErrSnapshotNotFound = errors.New("wal: snapshot marker not found")
	// ErrMissingEntries is returned by ReadAll when the log skips indices
	// after the snapshot it reads from.
	ErrMissingEntries = errors.New("wal: entries missing after snapshot")
	// ErrNotReady is returned by writes before ReadAll positioned the WAL
	// at the end of its log.
	ErrNotReady = errors.New("wal: ReadAll must be called before writing")
	// ErrClosed is returned by any call after Close.
	ErrClosed = errors.New("wal: closed")
	// ErrFailed is returned by every write after a write or sync failed:
	// after a failed fsync the file contents are unknown, so the WAL must
	// be reopened (and the tail re-verified) before it is used again.
	ErrFailed = errors.New("wal: an earlier write failed")
	// ErrUnknownMetadataVersion is returned by ReadMetadata, ReadAll and
	// Metadata.Unmarshal when the metadata has a version this troupe does
	// not read: a newer troupe made the WAL. Run that version (or a newer
	// one) on the data dir.
	ErrUnknownMetadataVersion = errors.New("wal: unknown metadata version")
)

// corruptFix is the operator's fix appended to every ErrCorrupt.
const corruptFix = "restore the member from a snapshot, or remove its data dir and re-add it to the cluster"
