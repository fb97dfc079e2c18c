package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/troupedb/troupe/failpoint"
)

func ent(index, term uint64, size int) *raftpb.Entry {
	data := bytes.Repeat([]byte{byte(index)}, size)
	return &raftpb.Entry{Index: new(index), Term: new(term), Type: raftpb.EntryNormal.Enum(), Data: data}
}

func ents(from, to, term uint64, size int) []*raftpb.Entry {
	var es []*raftpb.Entry
	for i := from; i <= to; i++ {
		es = append(es, ent(i, term, size))
	}
	return es
}

func hardState(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: new(term), Vote: new(vote), Commit: new(commit)}
}

// testMetadata is the metadata of the WALs mustCreate makes.
var testMetadata = Metadata{MemberID: 1, ClusterID: 2}

func mustCreate(t testing.TB, dir string, segmentSizeBytes int64) *WAL {
	t.Helper()
	w, err := Create(dir, testMetadata, Options{SegmentSizeBytes: segmentSizeBytes})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return w
}

func mustSave(t testing.TB, w *WAL, hs *raftpb.HardState, es []*raftpb.Entry) {
	t.Helper()
	if err := w.Save(hs, es, true); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

type readResult struct {
	w    *WAL
	meta Metadata
	hs   *raftpb.HardState
	ents []*raftpb.Entry
}

func reopen(t testing.TB, dir string, from SnapshotMarker) readResult {
	t.Helper()
	w, err := Open(dir, Options{SegmentSizeBytes: 4096})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	meta, hs, es, err := w.ReadAll(from)
	if err != nil {
		w.Close()
		t.Fatalf("ReadAll: %v", err)
	}
	return readResult{w, meta, hs, es}
}

func equalEntries(t testing.TB, got, want []*raftpb.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("entry %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		hs   *raftpb.HardState
		ents []*raftpb.Entry
		sync bool
	}{
		{"empty", nil, nil, true},
		{"hard state only", hardState(3, 2, 1), nil, true},
		{"entries only", nil, ents(1, 5, 1, 10), true},
		{"entries and hard state", hardState(1, 1, 3), ents(1, 5, 1, 100), true},
		{"no sync", hardState(1, 1, 3), ents(1, 5, 1, 100), false},
		{"empty data", hardState(1, 0, 0), ents(1, 3, 1, 0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "wal")
			w := mustCreate(t, dir, 0)
			if err := w.Save(tt.hs, tt.ents, tt.sync); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r := reopen(t, dir, SnapshotMarker{})
			defer r.w.Close()
			if r.meta != testMetadata {
				t.Fatalf("metadata %+v", r.meta)
			}
			want := tt.hs
			if want == nil {
				want = &raftpb.HardState{}
			}
			if !proto.Equal(r.hs, want) && !(isEmptyHardState(r.hs) && isEmptyHardState(want)) {
				t.Fatalf("hard state %v, want %v", r.hs, want)
			}
			equalEntries(t, r.ents, tt.ents)
		})
	}
}

func TestExistAndLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	if Exist(dir) {
		t.Fatal("Exist before Create")
	}
	w := mustCreate(t, dir, 0)
	if !Exist(dir) {
		t.Fatal("!Exist after Create")
	}
	if _, err := Create(dir, Metadata{}, Options{}); !errors.Is(err, ErrExist) {
		t.Fatalf("second Create: %v, want ErrExist", err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Open while open: %v, want ErrLocked", err)
	}
	w.Close()
	if _, err := Open(t.TempDir(), Options{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open empty dir: %v, want ErrNotFound", err)
	}
}

func TestReopenAndAppend(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	w := mustCreate(t, dir, 0)
	mustSave(t, w, hardState(1, 1, 5), ents(1, 10, 1, 50))
	w.Close()
	for round := uint64(1); round <= 3; round++ {
		r := reopen(t, dir, SnapshotMarker{})
		equalEntries(t, r.ents, ents(1, 10*round, 1, 50))
		if err := r.w.Save(hardState(round+1, 1, 10*round), ents(10*round+1, 10*round+10, 1, 50), true); err != nil {
			t.Fatal(err)
		}
		r.w.Close()
	}
	r := reopen(t, dir, SnapshotMarker{})
	defer r.w.Close()
	equalEntries(t, r.ents, ents(1, 40, 1, 50))
	if !proto.Equal(r.hs, hardState(4, 1, 30)) {
		t.Fatalf("hard state %v", r.hs)
	}
}

func TestRollover(t *testing.T) {
	tests := []struct {
		name             string
		segmentSizeBytes int64
		batch            int
		entryBytes       int
	}{
		{"one entry per save", 4096, 1, 100},
		{"batches across segments", 4096, 37, 100},
		{"entry larger than a segment", 1024, 3, 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "wal")
			w := mustCreate(t, dir, tt.segmentSizeBytes)
			const n = 600
			for i := uint64(1); i <= n; i += uint64(tt.batch) {
				mustSave(t, w, hardState(1, 1, i), ents(i, min(n, i+uint64(tt.batch)-1), 1, tt.entryBytes))
			}
			w.Close()
			files, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
			if len(files) < 10 {
				t.Fatalf("%d segments, want many", len(files))
			}
			r := reopen(t, dir, SnapshotMarker{})
			defer r.w.Close()
			equalEntries(t, r.ents, ents(1, n, 1, tt.entryBytes))
			if r.meta != testMetadata {
				t.Fatalf("metadata %+v", r.meta)
			}
		})
	}
}

// lastRecordSpan writes a log whose last Save is one entry record, and
// returns the segment file and the span [start, end) of that record
// (end excludes padding).
func lastRecordSpan(t *testing.T, dir string) (string, int64, int64) {
	w := mustCreate(t, dir, 64<<10)
	mustSave(t, w, hardState(1, 1, 0), ents(1, 20, 1, 100))
	start := w.tail
	mustSave(t, w, nil, []*raftpb.Entry{ent(21, 1, 100)})
	size := proto.Size(ent(21, 1, 100))
	path := w.fpath
	w.Close()
	return path, start, start + int64(headerBytes+1+size)
}

func TestTornTailEveryOffset(t *testing.T) {
	base := filepath.Join(t.TempDir(), "base")
	path, start, end := lastRecordSpan(t, base)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for cut := start; cut < end+8; cut++ {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("cut-%d", cut))
		os.MkdirAll(dir, 0o700)
		os.WriteFile(filepath.Join(dir, filepath.Base(path)), orig[:cut], 0o600)
		r := reopen(t, dir, SnapshotMarker{})
		want := ents(1, 20, 1, 100)
		if cut >= end {
			want = ents(1, 21, 1, 100)
		}
		equalEntries(t, r.ents, want)
		mustSave(t, r.w, hardState(2, 1, 20), ents(21, 22, 2, 100))
		r.w.Close()
		r = reopen(t, dir, SnapshotMarker{})
		equalEntries(t, r.ents, append(ents(1, 20, 1, 100), ents(21, 22, 2, 100)...))
		r.w.Close()
	}
}

func TestTornTailGarbage(t *testing.T) {
	tests := []struct {
		name    string
		garbage func(orig []byte, start, end int64)
	}{
		{"partial record with zeros", func(b []byte, s, e int64) { clear(b[s+(e-s)/2 : e]) }},
		{"random bytes after last record", func(b []byte, s, e int64) { copy(b[e+64:], "\x07garbage\xff\xfe") }},
		{"bit flip in last record", func(b []byte, s, e int64) { b[e-3] ^= 0x10 }},
		{"bit flip in last length", func(b []byte, s, e int64) { b[s+1] ^= 0x01 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "wal")
			path, start, end := lastRecordSpan(t, dir)
			b, _ := os.ReadFile(path)
			tt.garbage(b, start, end)
			os.WriteFile(path, b, 0o600)
			r := reopen(t, dir, SnapshotMarker{})
			got := len(r.ents)
			if got != 20 && !(got == 21 && strings.Contains(tt.name, "after")) {
				t.Fatalf("got %d entries", got)
			}
			mustSave(t, r.w, nil, []*raftpb.Entry{ent(uint64(got+1), 1, 10)})
			r.w.Close()
			r = reopen(t, dir, SnapshotMarker{})
			defer r.w.Close()
			if len(r.ents) != got+1 {
				t.Fatalf("after append got %d entries, want %d", len(r.ents), got+1)
			}
		})
	}
}

func TestCorruptMiddleRefused(t *testing.T) {
	tests := []struct {
		name string
		// damage returns the segment file it damaged
		damage func(t *testing.T, dir string, segs []string)
	}{
		{"crc flip in middle record of last segment", func(t *testing.T, dir string, segs []string) {
			flipAt(t, segs[len(segs)-1], 200)
		}},
		{"crc flip in older segment", func(t *testing.T, dir string, segs []string) {
			flipAt(t, segs[1], 600)
		}},
		{"length flip in middle record", func(t *testing.T, dir string, segs []string) {
			b, _ := os.ReadFile(segs[len(segs)-1])
			off := firstEntryOffset(t, b)
			b[off+2] ^= 0x40
			os.WriteFile(segs[len(segs)-1], b, 0o600)
		}},
		{"missing segment", func(t *testing.T, dir string, segs []string) {
			os.Remove(segs[2])
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "wal")
			w := mustCreate(t, dir, 4096)
			for i := uint64(1); i <= 200; i += 10 {
				mustSave(t, w, hardState(1, 1, i), ents(i, i+9, 1, 100))
			}
			w.Close()
			segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
			tt.damage(t, dir, segs)
			w, err := Open(dir, Options{})
			if err == nil {
				_, _, _, err = w.ReadAll(SnapshotMarker{})
				w.Close()
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, ".wal") || !strings.Contains(msg, "re-add") {
				t.Fatalf("error does not name the file and the fix: %v", err)
			}
			t.Log(err)
		})
	}
}

func flipAt(t *testing.T, path string, off int) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x01
	os.WriteFile(path, b, 0o600)
}

func firstEntryOffset(t *testing.T, b []byte) int {
	off := 0
	for {
		typ, _, n, res := decodeRecord(b[off:])
		if res != decodeOK {
			t.Fatal("no entry record")
		}
		if typ == recEntry {
			return off
		}
		off += n
	}
}

func TestReleaseAfterSnapshot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	w := mustCreate(t, dir, 4096)
	for i := uint64(1); i <= 500; i += 5 {
		mustSave(t, w, hardState(1, 1, i), ents(i, i+4, 1, 100))
	}
	snap := SnapshotMarker{Index: 300, Term: 1}
	if err := w.SaveSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	before, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err := w.ReleaseTo(300); err != nil {
		t.Fatal(err)
	}
	after, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(after) >= len(before)/2 {
		t.Fatalf("%d segments before release, %d after", len(before), len(after))
	}
	if s, _ := parseSegmentName(filepath.Base(after[0])); s.first > 300 {
		t.Fatalf("released the segment holding 300: first left is %s", after[0])
	}
	mustSave(t, w, hardState(2, 1, 500), ents(501, 510, 2, 100))
	w.Close()

	r := reopen(t, dir, snap)
	equalEntries(t, r.ents, append(ents(301, 500, 1, 100), ents(501, 510, 2, 100)...))
	if r.meta != testMetadata || !proto.Equal(r.hs, hardState(2, 1, 500)) {
		t.Fatalf("metadata %+v hard state %v", r.meta, r.hs)
	}
	r.w.Close()

	w, _ = Open(dir, Options{})
	defer w.Close()
	if _, _, _, err := w.ReadAll(SnapshotMarker{}); !errors.Is(err, ErrMissingEntries) {
		t.Fatalf("ReadAll from 0 after release: %v, want ErrMissingEntries", err)
	}
}

// TestReleaseKeepsMaxFiles: --max-wals keeps the newest files of those
// released, as etcd's purge; a negative MaxFiles (etcd's 0) keeps all.
func TestReleaseKeepsMaxFiles(t *testing.T) {
	for _, tc := range []struct{ maxFiles, want int }{{0, -1}, {5, 5}, {3, 3}, {-1, 0}} {
		dir := filepath.Join(t.TempDir(), "wal")
		w := mustCreate(t, dir, 4096)
		w.opts.MaxFiles = tc.maxFiles
		for i := uint64(1); i <= 500; i += 5 {
			mustSave(t, w, hardState(1, 1, i), ents(i, i+4, 1, 100))
		}
		if err := w.SaveSnapshot(SnapshotMarker{Index: 480, Term: 1}); err != nil {
			t.Fatal(err)
		}
		before, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
		if err := w.ReleaseTo(480); err != nil {
			t.Fatal(err)
		}
		after, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
		w.Close()
		want := tc.want
		switch want {
		case -1: // only what 480 needs: the segment holding it and the current one
			if len(after) > 2 {
				t.Errorf("MaxFiles 0: %d segments left, want at most 2", len(after))
			}
			continue
		case 0:
			want = len(before)
		}
		if len(after) != want {
			t.Errorf("MaxFiles %d: %d of %d segments left, want %d", tc.maxFiles, len(after), len(before), want)
		}
		// The files left are the newest.
		if after[len(after)-1] != before[len(before)-1] {
			t.Errorf("MaxFiles %d: the newest segment is gone", tc.maxFiles)
		}
	}
}

func TestSnapshotNotFound(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	w := mustCreate(t, dir, 0)
	mustSave(t, w, nil, ents(1, 10, 1, 10))
	w.SaveSnapshot(SnapshotMarker{Index: 5, Term: 1})
	w.Close()
	w, _ = Open(dir, Options{})
	defer w.Close()
	if _, _, _, err := w.ReadAll(SnapshotMarker{Index: 5, Term: 2}); !errors.Is(err, ErrSnapshotNotFound) {
		t.Fatalf("err = %v, want ErrSnapshotNotFound", err)
	}
}

func TestConflictingIndexReplay(t *testing.T) {
	tests := []struct {
		name   string
		saves  [][]*raftpb.Entry
		reopen bool
		want   []*raftpb.Entry
	}{
		{"suffix replaced", [][]*raftpb.Entry{ents(1, 10, 1, 10), ents(6, 8, 2, 10)}, false,
			append(ents(1, 5, 1, 10), ents(6, 8, 2, 10)...)},
		{"replace from first", [][]*raftpb.Entry{ents(1, 4, 1, 10), ents(1, 2, 3, 10)}, false, ents(1, 2, 3, 10)},
		{"replaced after reopen", [][]*raftpb.Entry{ents(1, 50, 1, 200), ents(20, 30, 2, 200)}, true,
			append(ents(1, 19, 1, 200), ents(20, 30, 2, 200)...)},
		{"replace then extend", [][]*raftpb.Entry{ents(1, 10, 1, 10), ents(9, 9, 2, 10), ents(10, 12, 2, 10)}, false,
			append(ents(1, 8, 1, 10), ents(9, 12, 2, 10)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "wal")
			w := mustCreate(t, dir, 4096)
			for i, es := range tt.saves {
				if tt.reopen && i > 0 {
					w.Close()
					w = reopen(t, dir, SnapshotMarker{}).w
				}
				mustSave(t, w, nil, es)
			}
			w.Close()
			r := reopen(t, dir, SnapshotMarker{})
			defer r.w.Close()
			equalEntries(t, r.ents, tt.want)
		})
	}
}

func TestFailpointBeforeFsync(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	w := mustCreate(t, dir, 0)
	defer w.Close()
	if err := failpoint.Enable(FailpointBeforeFsync, "1*error"); err != nil {
		t.Fatal(err)
	}
	defer failpoint.Disable(FailpointBeforeFsync)
	err := w.Save(nil, ents(1, 1, 1, 10), true)
	if !errors.Is(err, failpoint.ErrInjected) {
		t.Fatalf("Save: %v, want ErrInjected", err)
	}
	if err := w.Save(nil, ents(2, 2, 1, 10), false); !errors.Is(err, ErrFailed) {
		t.Fatalf("Save after failure: %v, want ErrFailed", err)
	}
}

func TestStatsCountFsyncs(t *testing.T) {
	w := mustCreate(t, filepath.Join(t.TempDir(), "wal"), 0)
	defer w.Close()
	base := w.Stats().Fsyncs
	mustSave(t, w, nil, ents(1, 100, 1, 10))
	w.Save(hardState(1, 1, 100), nil, false)
	if got := w.Stats().Fsyncs - base; got != 1 {
		t.Fatalf("%d fsyncs, want 1", got)
	}
}

// TestUnsafeNoFsync: etcd's --unsafe-no-fsync writes appends without
// fdatasync; they still read back.
func TestUnsafeNoFsync(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	w := mustCreate(t, dir, 0)
	w.opts.UnsafeNoFsync = true
	base := w.Stats().Fsyncs
	mustSave(t, w, hardState(1, 1, 100), ents(1, 100, 1, 10))
	if got := w.Stats().Fsyncs - base; got != 0 {
		t.Fatalf("%d fsyncs, want none", got)
	}
	w.Close()
	r := reopen(t, dir, SnapshotMarker{})
	defer r.w.Close()
	equalEntries(t, r.ents, ents(1, 100, 1, 10))
}

// TestSegmentHeaderHardState checks that every segment starts with the
// bytes of the hard state last saved before it was cut, whether Save kept
// that hard state by cloning (fields unset) or by overwriting its copy in
// place, and that a caller changing its hard state after Save does not
// change what the WAL kept.
func TestSegmentHeaderHardState(t *testing.T) {
	saved := []*raftpb.HardState{
		hardState(1, 1, 1),
		{Term: new(uint64(2)), Commit: new(uint64(2))}, // vote unset
		hardState(2, 0, 3),
		hardState(3, 2, 4),
		hardState(3, 2, 5),
		{Term: new(uint64(4)), Vote: new(uint64(1)), Commit: new(uint64(6))},
		hardState(4, 1, 7),
	}
	dir := filepath.Join(t.TempDir(), "wal")
	// Each entry is larger than a segment, so every Save cuts one.
	w := mustCreate(t, dir, 1024)
	var want [][]byte
	for i, hs := range saved {
		mustSave(t, w, hs, []*raftpb.Entry{ent(uint64(i+1), 1, 3000)})
		b, err := proto.Marshal(hs)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, b)
		*hs.Commit = 99 // the WAL must hold its own copy
	}
	if err := w.Save(nil, []*raftpb.Entry{ent(uint64(len(saved)+1), 1, 3000)}, true); err != nil {
		t.Fatal(err)
	}
	w.Close()

	files, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	var got [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); {
			typ, body, n, res := decodeRecord(data[off:])
			if res != decodeOK || typ == recEntry {
				break
			}
			if typ == recHardState && (len(got) == 0 || !bytes.Equal(got[len(got)-1], body)) {
				got = append(got, bytes.Clone(body))
			}
			off += n
		}
	}
	if len(got) != len(want) {
		t.Fatalf("segment headers carry %d distinct hard states, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("hard state %d in segment headers: %x, want %x", i, got[i], want[i])
		}
	}
	r := reopen(t, dir, SnapshotMarker{})
	defer r.w.Close()
	if !proto.Equal(r.hs, hardState(4, 1, 7)) {
		t.Fatalf("read back hard state %v", r.hs)
	}
}
