package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// skipLog writes entries 1..600 (hard state commit following them) to
// small segments, with a snapshot marker saved after entry snapAt at
// snapIndex, and returns the dir and the segment files.
func skipLog(t *testing.T, snapAt uint64, snap SnapshotMarker) (string, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "wal")
	w := mustCreate(t, dir, 4096)
	for i := uint64(1); i <= 600; i += 5 {
		mustSave(t, w, hardState(1, 1, i), ents(i, i+4, 1, 100))
		if i+4 == snapAt {
			if err := w.SaveSnapshot(snap); err != nil {
				t.Fatal(err)
			}
		}
	}
	mustSave(t, w, hardState(2, 3, 590), nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	slices.Sort(segs)
	return dir, segs
}

// readState is what reading a log returns and the writer state it leaves.
type readState struct {
	meta      Metadata
	hs        string
	ents      []string
	lastIndex uint64
	snap      SnapshotMarker
	tail      int64
	first     int // position of the first segment read
}

// readBoth reads the log in dir from from by ReadAll (skipping segments)
// and by reading every segment.
func readBoth(t *testing.T, dir string, from SnapshotMarker) (skipped, all readState) {
	t.Helper()
	read := func(everything bool) readState {
		w, err := Open(dir, Options{SegmentSizeBytes: 4096})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		first := firstSegmentFor(w.segs, from.Index)
		var (
			md Metadata
			r  *reader
			es []string
		)
		if everything {
			first = 0
			var end segmentEnd
			if r, end, err = w.readFrom(from, 0); err != nil {
				t.Fatalf("read every segment: %v", err)
			}
			if md, err = parseMetadata(dir, r.metadata); err != nil {
				t.Fatal(err)
			}
			if !r.foundFrom && from.Index != 0 {
				t.Fatal("marker not found reading every segment")
			}
			w.tail = end.offset
			for _, e := range r.ents {
				es = append(es, e.String())
			}
			return readState{md, r.hs.String(), es, w.lastIndex, w.snap, w.tail, first}
		}
		md, hs, ents, err := w.ReadAll(from)
		if err != nil {
			t.Fatalf("ReadAll: %v", err)
		}
		for _, e := range ents {
			es = append(es, e.String())
		}
		return readState{md, hs.String(), es, w.lastIndex, w.snap, w.tail, first}
	}
	return read(false), read(true)
}

func sameState(t *testing.T, skipped, all readState) {
	t.Helper()
	if skipped.meta != all.meta || skipped.hs != all.hs || skipped.lastIndex != all.lastIndex ||
		skipped.snap != all.snap || skipped.tail != all.tail || !slices.Equal(skipped.ents, all.ents) {
		t.Fatalf("skipping segments read %+v (%d entries), reading all read %+v (%d entries)",
			skipped.meta, len(skipped.ents), all.meta, len(all.ents))
	}
}

// TestReadAllSkipsSegmentsBeforeSnapshot: reading from a snapshot starts
// at the segment that holds it and returns exactly what reading every
// segment returns: metadata, the last hard state, the entries after the
// snapshot, and the writer's position.
func TestReadAllSkipsSegmentsBeforeSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name   string
		snapAt uint64
		snap   SnapshotMarker
	}{
		// The marker follows its entry: it lies in the segment skipping
		// starts at.
		{"marker in the first segment read", 400, SnapshotMarker{Index: 400, Term: 1}},
		// The log runs ahead of the snapshot (entries up to 500 written,
		// snapshot at 300): the marker lies in a later segment than the
		// one holding entry 300, where reading starts.
		{"marker after the first segment read", 500, SnapshotMarker{Index: 300, Term: 1}},
		{"no snapshot", 0, SnapshotMarker{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, segs := skipLog(t, tc.snapAt, tc.snap)
			skipped, all := readBoth(t, dir, tc.snap)
			sameState(t, skipped, all)
			if tc.snap.Index != 0 && (skipped.first < len(segs)/3 || skipped.first == len(segs)-1) {
				t.Fatalf("read from segment %d of %d", skipped.first, len(segs))
			}
			if want := int(600 - tc.snap.Index); len(skipped.ents) != want {
				t.Fatalf("%d entries, want %d", len(skipped.ents), want)
			}
			if skipped.hs != hardState(2, 3, 590).String() {
				t.Fatalf("hard state %s", skipped.hs)
			}
		})
	}
}

// TestReadAllDamageInSkippedSegment: damage in a segment wholly before
// the snapshot is not read (as etcd), damage in a segment read is refused.
func TestReadAllDamageInSkippedSegment(t *testing.T) {
	snap := SnapshotMarker{Index: 400, Term: 1}
	dir, segs := skipLog(t, 400, snap)
	w, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := firstSegmentFor(w.segs, snap.Index)
	w.Close()

	b, _ := os.ReadFile(segs[first-1])
	flipAt(t, segs[first-1], firstEntryOffset(t, b)+20)
	r := reopen(t, dir, snap)
	equalEntries(t, r.ents, ents(401, 600, 1, 100))
	r.w.Close()

	w, _ = Open(dir, Options{})
	if _, _, _, err := w.ReadAll(SnapshotMarker{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadAll from the start over a damaged segment: %v, want ErrCorrupt", err)
	}
	w.Close()

	b, _ = os.ReadFile(segs[first])
	flipAt(t, segs[first], firstEntryOffset(t, b)+20)
	w, _ = Open(dir, Options{})
	defer w.Close()
	if _, _, _, err := w.ReadAll(snap); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadAll over a damaged segment it reads: %v, want ErrCorrupt", err)
	}
}

// TestReadAllFallsBackWithoutHeader: a first segment read that does not
// start with the metadata (a log this troupe did not write that way) makes
// ReadAll read every segment, with the same result.
func TestReadAllFallsBackWithoutHeader(t *testing.T) {
	snap := SnapshotMarker{Index: 400, Term: 1}
	dir, segs := skipLog(t, 400, snap)
	w, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := firstSegmentFor(w.segs, snap.Index)
	w.Close()

	// Rewrite the segments read without their metadata record.
	for _, seg := range segs[first:] {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		typ, _, n, res := decodeRecord(b)
		if res != decodeOK || typ != recMetadata {
			t.Fatalf("segment starts with record type %d (%s)", typ, res)
		}
		nb := make([]byte, len(b))
		copy(nb, b[n:])
		if err := os.WriteFile(seg, nb, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := reopen(t, dir, snap)
	defer r.w.Close()
	equalEntries(t, r.ents, ents(401, 600, 1, 100))
	if r.meta != testMetadata || !proto.Equal(r.hs, hardState(2, 3, 590)) {
		t.Fatalf("metadata %+v hard state %v", r.meta, r.hs)
	}
	if _, _, _, err := r.w.ReadAll(snap); err == nil {
		t.Fatal("second ReadAll succeeded")
	}
}

// TestTailFarInPreallocatedSegment: ReadAll reads a segment only up to
// the end of its data, yet bytes written far into the preallocated rest
// (past a hole) are still seen: a valid record there after the end of the
// log is refused, garbage there is a torn tail, zeroed on open.
func TestTailFarInPreallocatedSegment(t *testing.T) {
	const segBytes = 8 << 20
	for _, tc := range []struct {
		name    string
		bytes   []byte
		corrupt bool
	}{
		{"valid record after the end", encodeRecord(nil, recEntry, []byte("stray")), true},
		{"garbage after the end", []byte("\x07garbage\xff\xfe"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "wal")
			w := mustCreate(t, dir, segBytes)
			mustSave(t, w, hardState(1, 1, 20), ents(1, 20, 1, 100))
			path := w.fpath
			w.Close()
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			const far = 6 << 20
			if _, err := f.WriteAt(tc.bytes, far); err != nil {
				t.Fatal(err)
			}
			// The file system must report the rest as a hole, or this
			// test reads the whole file and proves nothing.
			if end, err := dataEnd(f, segBytes); err != nil || end <= far || end >= segBytes {
				t.Fatalf("data ends at %d (%v), want after %d and before %d: the file system does not report the preallocated rest as a hole",
					end, err, far, segBytes)
			}
			f.Close()

			w, err = Open(dir, Options{SegmentSizeBytes: segBytes})
			if err != nil {
				t.Fatal(err)
			}
			_, _, es, err := w.ReadAll(SnapshotMarker{})
			w.Close()
			if tc.corrupt {
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("valid record at offset %d", far)) {
					t.Fatalf("ReadAll: %v, want ErrCorrupt naming offset %d", err, far)
				}
				return
			}
			if err != nil || len(es) != 20 {
				t.Fatalf("ReadAll: %d entries, %v", len(es), err)
			}
			b, _ := os.ReadFile(path)
			if len(b) != segBytes || !allZero(b[far:far+len(tc.bytes)]) {
				t.Fatalf("garbage not zeroed (file of %d bytes)", len(b))
			}
		})
	}
}
