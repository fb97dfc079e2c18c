package wal

import (
	"fmt"
	"path/filepath"
	"testing"
)

// benchLog writes n entries of entryBytes each to a new WAL with segments
// of segmentBytes, saving a snapshot marker at snapAt (0: none), and
// returns its dir.
func benchLog(b *testing.B, segmentBytes int64, n, entryBytes int, snapAt uint64) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "wal")
	w, err := Create(dir, testMetadata, Options{SegmentSizeBytes: segmentBytes, UnsafeNoFsync: true})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 100
	for i := uint64(1); i <= uint64(n); i += batch {
		last := min(uint64(n), i+batch-1)
		if err := w.Save(hardState(1, 1, last), ents(i, last, 1, entryBytes), false); err != nil {
			b.Fatal(err)
		}
		if snapAt != 0 && snapAt >= i && snapAt <= last {
			if err := w.SaveSnapshot(SnapshotMarker{Index: snapAt, Term: 1}); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkReadAll measures a restart's read of the log: several full
// segments read from a snapshot near the end (what a member restarts
// from), the same read from the start, and a small log in one mostly
// preallocated default-size segment.
func BenchmarkReadAll(b *testing.B) {
	const segBytes = 4 << 20
	cases := []struct {
		name         string
		segmentBytes int64
		n, size      int
		snapAt       uint64
		from         SnapshotMarker
	}{
		{"segments=5/from=snapshot", segBytes, 5 * 3900, 1000, 19000, SnapshotMarker{Index: 19000, Term: 1}},
		{"segments=5/from=start", segBytes, 5 * 3900, 1000, 0, SnapshotMarker{}},
		{"segments=1/size=64MiB/entries=2000", DefaultSegmentSizeBytes, 2000, 100, 0, SnapshotMarker{}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			dir := benchLog(b, c.segmentBytes, c.n, c.size, c.snapAt)
			opts := Options{SegmentSizeBytes: c.segmentBytes, UnsafeNoFsync: true}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				w, err := Open(dir, opts)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, _, err := w.ReadAll(c.from); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSave measures the encoding and write of one raft Ready's worth
// of entries and its hard state, without fsync (so what is measured is the
// CPU and allocations of the write path, not the disk). Segments have the
// default size, so their rollovers count as they do in a member.
func BenchmarkSave(b *testing.B) {
	for _, c := range []struct{ entries, size int }{{1, 300}, {64, 300}, {256, 300}} {
		b.Run(fmt.Sprintf("entries=%d/size=%d", c.entries, c.size), func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "wal")
			w, err := Create(dir, testMetadata, Options{UnsafeNoFsync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			batch := ents(1, uint64(c.entries), 1, c.size)
			hs := hardState(1, 1, 0)
			b.SetBytes(int64(c.entries * c.size))
			b.ReportAllocs()
			b.ResetTimer()
			next := uint64(1)
			for range b.N {
				for _, e := range batch {
					*e.Index = next
					next++
				}
				*hs.Commit = next - 1
				if err := w.Save(hs, batch, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
