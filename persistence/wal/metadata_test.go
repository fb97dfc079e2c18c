package wal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func TestMetadataRoundTrip(t *testing.T) {
	for _, md := range []Metadata{
		{},
		{MemberID: 1, ClusterID: 2},
		{MemberID: 0x8e9e05c52164694d, ClusterID: 0xcdf818194e3a8c32},
		{MemberID: ^uint64(0), ClusterID: ^uint64(0)},
	} {
		b := md.Marshal()
		if len(b) != 17 || b[0] != MetadataVersion {
			t.Fatalf("Marshal(%+v) = %x, want 17 bytes of version %d", md, b, MetadataVersion)
		}
		var got Metadata
		if err := got.Unmarshal(b); err != nil || got != md {
			t.Fatalf("Unmarshal(Marshal(%+v)) = %+v, %v", md, got, err)
		}
	}
}

// TestMetadataVersion2Bytes pins the format: changing it needs a new
// version.
func TestMetadataVersion2Bytes(t *testing.T) {
	got := hex.EncodeToString(Metadata{MemberID: 0x0102030405060708, ClusterID: 0x1112131415161718}.Marshal())
	if want := "02" + "0102030405060708" + "1112131415161718"; got != want {
		t.Fatalf("Marshal = %s, want %s", got, want)
	}
}

// TestMetadataVersion1 reads the unversioned 16-byte form troupe wrote
// before metadata had a version.
func TestMetadataVersion1(t *testing.T) {
	b, _ := hex.DecodeString("8e9e05c52164694d" + "cdf818194e3a8c32")
	var md Metadata
	if err := md.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if want := (Metadata{MemberID: 0x8e9e05c52164694d, ClusterID: 0xcdf818194e3a8c32}); md != want {
		t.Fatalf("Unmarshal = %+v, want %+v", md, want)
	}
}

func TestMetadataRefused(t *testing.T) {
	v2 := Metadata{MemberID: 1, ClusterID: 2}.Marshal()
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"version byte only", v2[:1], ErrCorrupt},
		{"version 2 cut in the member id", v2[:5], ErrCorrupt},
		// A version 2 record one byte short would read as version 1; the
		// record's CRC, not the metadata, guards against that.
		{"version 2 one byte short of the cluster id end", v2[:15], ErrCorrupt},
		{"version 2 with a byte too many", append(bytes.Clone(v2), 0), ErrCorrupt},
		{"version 3", append([]byte{3}, v2[1:]...), ErrUnknownMetadataVersion},
		{"version 0", append([]byte{0}, v2[1:]...), ErrUnknownMetadataVersion},
		{"version 255, short", []byte{255}, ErrUnknownMetadataVersion},
	} {
		var md Metadata
		if err := md.Unmarshal(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: Unmarshal(%x) = %+v, %v, want %v", tc.name, tc.b, md, err, tc.want)
		}
	}
}

func FuzzMetadataUnmarshal(f *testing.F) {
	f.Add(Metadata{MemberID: 1, ClusterID: 2}.Marshal())
	f.Add(make([]byte, 16))
	f.Add([]byte{3})
	f.Fuzz(func(t *testing.T, b []byte) {
		var md Metadata
		if err := md.Unmarshal(b); err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownMetadataVersion) {
				t.Fatalf("Unmarshal(%x): %v is neither ErrCorrupt nor ErrUnknownMetadataVersion", b, err)
			}
			return
		}
		if len(b) != 16 && !bytes.Equal(md.Marshal(), b) {
			t.Fatalf("Unmarshal(%x) = %+v, which marshals to %x", b, md, md.Marshal())
		}
	})
}

func TestReadMetadataWithoutOpening(t *testing.T) {
	dir := t.TempDir()
	want := Metadata{MemberID: 17, ClusterID: 4}
	w, err := Create(dir, want, Options{SegmentSizeBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 200; i++ { // several segments
		if err := w.Save(nil, []*raftpb.Entry{{Index: &i, Term: proto.Uint64(1), Data: make([]byte, 100)}}, false); err != nil {
			t.Fatal(err)
		}
	}
	md, err := ReadMetadata(dir)
	if err != nil || md != want {
		t.Fatalf("ReadMetadata = %+v, %v", md, err)
	}
	_ = w.Close()
	if _, err := ReadMetadata(t.TempDir()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadMetadata of an empty dir: %v, want ErrNotFound", err)
	}
}

// copyDir copies the files of testdata/name into a new temporary dir.
func copyDir(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "wal")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", name))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestVersion1WAL opens a WAL written by troupe before metadata had a
// version (testdata/v1-unversioned-metadata: two segments of 512 bytes,
// entries 1 to 5 of term 2, hard state term 2 vote 1 commit 5), appends to
// it across new segments and reopens it: the new segments keep the
// 16-byte form, since every segment must carry the first one's metadata.
func TestVersion1WAL(t *testing.T) {
	dir := copyDir(t, "v1-unversioned-metadata")
	want := Metadata{MemberID: 0x8e9e05c52164694d, ClusterID: 0xcdf818194e3a8c32}
	if md, err := ReadMetadata(dir); err != nil || md != want {
		t.Fatalf("ReadMetadata = %+v, %v, want %+v", md, err, want)
	}
	w, err := Open(dir, Options{SegmentSizeBytes: 512})
	if err != nil {
		t.Fatal(err)
	}
	md, hs, es, err := w.ReadAll(SnapshotMarker{})
	if err != nil || md != want {
		t.Fatalf("ReadAll = %+v, %v, want %+v", md, err, want)
	}
	if !proto.Equal(hs, hardState(2, 1, 5)) {
		t.Fatalf("hard state %v", hs)
	}
	equalEntries(t, es, ents(1, 5, 2, 100))
	for i := uint64(6); i <= 20; i++ {
		mustSave(t, w, hardState(2, 1, i), ents(i, i, 2, 100))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r := reopen(t, dir, SnapshotMarker{})
	defer r.w.Close()
	if r.meta != want {
		t.Fatalf("metadata after appending %+v, want %+v", r.meta, want)
	}
	equalEntries(t, r.ents, append(ents(1, 5, 2, 100), ents(6, 20, 2, 100)...))
	segs, _ := listSegments(dir)
	if len(segs) < 4 {
		t.Fatalf("%d segments, want new ones cut", len(segs))
	}
	head, err := os.ReadFile(filepath.Join(dir, segs[len(segs)-1].name()))
	if err != nil {
		t.Fatal(err)
	}
	if typ, body, _, res := decodeRecord(head); res != decodeOK || typ != recMetadata || len(body) != 16 {
		t.Fatalf("newest segment starts with %v %d bytes (%s), want the 16-byte metadata", typ, len(body), res)
	}
}

// TestUnknownMetadataVersionWAL: a WAL a newer troupe wrote is refused by
// ReadMetadata and ReadAll with an error that names the dir and the fix.
func TestUnknownMetadataVersionWAL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	w, err := create(dir, append([]byte{9}, make([]byte, 20)...), Options{SegmentSizeBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	mustSave(t, w, hardState(1, 1, 1), ents(1, 1, 1, 10))
	_ = w.Close()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrUnknownMetadataVersion) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "fix:") {
			t.Fatalf("%s: %v, want ErrUnknownMetadataVersion naming %s and the fix", what, err, dir)
		}
	}
	_, err = ReadMetadata(dir)
	check("ReadMetadata", err)
	w, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, _, _, err = w.ReadAll(SnapshotMarker{})
	check("ReadAll", err)
}

// TestTruncatedMetadataWAL: metadata too short for its version is
// corruption.
func TestTruncatedMetadataWAL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	w, err := create(dir, Metadata{MemberID: 1, ClusterID: 2}.Marshal()[:9], Options{SegmentSizeBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	if _, err := ReadMetadata(dir); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("ReadMetadata: %v, want ErrCorrupt naming %s", err, dir)
	}
	w, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, _, _, err := w.ReadAll(SnapshotMarker{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadAll: %v, want ErrCorrupt", err)
	}
}
