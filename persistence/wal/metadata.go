package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Metadata says whose log a WAL is. Create writes it at the start of every
// segment; a restarted member reads its identity from it (ReadMetadata)
// before anything else starts, and the core checks it against the flags.
type Metadata struct {
	MemberID  uint64
	ClusterID uint64
}

// Metadata format versions. Version 1 is what troupe wrote before the
// metadata had a version: exactly 16 bytes, the member id and the cluster
// id, 8 bytes big-endian each. Later versions start with their version
// byte, and none may be 16 bytes long, so a version 1 record is always
// told apart by its length.
const (
	// MetadataVersion1 is the unversioned 16-byte form; read, never
	// written.
	MetadataVersion1 = 1
	// MetadataVersion2 is the version byte (2), then the member id and
	// the cluster id, 8 bytes big-endian each: 17 bytes.
	MetadataVersion2 = 2
	// MetadataVersion is the version Marshal writes.
	MetadataVersion = MetadataVersion2
)

const (
	metadataV1Bytes = 16
	metadataV2Bytes = 1 + 16
)

// Marshal encodes m in the current version (MetadataVersion).
func (m Metadata) Marshal() []byte {
	b := make([]byte, metadataV2Bytes)
	b[0] = MetadataVersion2
	binary.BigEndian.PutUint64(b[1:], m.MemberID)
	binary.BigEndian.PutUint64(b[9:], m.ClusterID)
	return b
}

// Unmarshal decodes b, of any version this package reads, into m. Errors:
// ErrUnknownMetadataVersion, ErrCorrupt (b is too short or too long for
// its version).
func (m *Metadata) Unmarshal(b []byte) error {
	if len(b) == metadataV1Bytes {
		*m = Metadata{MemberID: binary.BigEndian.Uint64(b), ClusterID: binary.BigEndian.Uint64(b[8:])}
		return nil
	}
	if len(b) == 0 {
		return fmt.Errorf("%w: empty metadata", ErrCorrupt)
	}
	if b[0] != MetadataVersion2 {
		return fmt.Errorf("%w: first byte %d of %d bytes (this troupe reads the unversioned 16-byte form and versions %d to %d)",
			ErrUnknownMetadataVersion, b[0], len(b), MetadataVersion2, MetadataVersion)
	}
	if len(b) != metadataV2Bytes {
		return fmt.Errorf("%w: metadata version %d of %d bytes, want %d", ErrCorrupt, b[0], len(b), metadataV2Bytes)
	}
	*m = Metadata{MemberID: binary.BigEndian.Uint64(b[1:]), ClusterID: binary.BigEndian.Uint64(b[9:])}
	return nil
}

// parseMetadata decodes the metadata record of the WAL in dir, naming the
// dir and the operator's fix in its errors.
func parseMetadata(dir string, b []byte) (Metadata, error) {
	var m Metadata
	err := m.Unmarshal(b)
	switch {
	case errors.Is(err, ErrUnknownMetadataVersion):
		return Metadata{}, fmt.Errorf("%s: %w (fix: run the troupe version that made this data dir, or a newer one)", dir, err)
	case err != nil:
		return Metadata{}, fmt.Errorf("%s: %w; %s", dir, err, corruptFix)
	}
	return m, nil
}

// ReadMetadata returns the metadata given to Create, read from the first
// record of the newest segment (every segment starts with it), without
// opening or locking the log. A restarted member reads its identity this
// way before anything else starts.
func ReadMetadata(dir string) (Metadata, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return Metadata{}, err
	}
	if len(segs) == 0 {
		return Metadata{}, fmt.Errorf("wal: no segments in %s: %w", dir, ErrNotFound)
	}
	path := filepath.Join(dir, segs[len(segs)-1].name())
	f, err := os.Open(path)
	if err != nil {
		return Metadata{}, fmt.Errorf("wal: open %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, 64<<10)
	n, _ := f.ReadAt(head, 0)
	typ, body, _, res := decodeRecord(head[:n])
	if res != decodeOK || typ != recMetadata {
		return Metadata{}, fmt.Errorf("wal: %s does not start with its metadata (%s): %w", path, res, ErrCorrupt)
	}
	return parseMetadata(dir, body)
}
