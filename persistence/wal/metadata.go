package wal

import (
	"fmt"
	"os"
	"path/filepath"
)

// Metadata returns the metadata given to Create, read from the first
// record of the newest segment (every segment starts with it), without
// opening or locking the log. A restarted member reads its identity this
// way before anything else starts.
func Metadata(dir string) ([]byte, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("wal: no segments in %s: %w", dir, ErrNotFound)
	}
	path := filepath.Join(dir, segs[len(segs)-1].name())
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, 64<<10)
	n, _ := f.ReadAt(head, 0)
	typ, body, _, res := decodeRecord(head[:n])
	if res != decodeOK || typ != recMetadata {
		return nil, fmt.Errorf("wal: %s does not start with its metadata (%s): %w", path, res, ErrCorrupt)
	}
	return append([]byte(nil), body...), nil
}
