package snap

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func snapAt(term, index uint64) *raftpb.Snapshot {
	return &raftpb.Snapshot{
		Data: []byte("state"),
		Metadata: &raftpb.SnapshotMetadata{
			Index: new(index), Term: new(term),
			ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}},
		},
	}
}

func TestSaveLoad(t *testing.T) {
	tests := []struct {
		name    string
		saves   []*raftpb.Snapshot
		corrupt []int // indices into saves whose file gets a flipped byte
		markers []Marker
		want    *raftpb.Snapshot
		wantErr error
	}{
		{"none", nil, nil, nil, nil, ErrNoSnapshot},
		{"one", []*raftpb.Snapshot{snapAt(1, 10)}, nil, nil, snapAt(1, 10), nil},
		{"newest wins", []*raftpb.Snapshot{snapAt(1, 10), snapAt(2, 20), snapAt(2, 15)}, nil, nil, snapAt(2, 20), nil},
		{"corrupt newest skipped", []*raftpb.Snapshot{snapAt(1, 10), snapAt(2, 20)}, []int{1}, nil, snapAt(1, 10), nil},
		{"all corrupt", []*raftpb.Snapshot{snapAt(1, 10)}, []int{0}, nil, nil, ErrNoSnapshot},
		{"newest available", []*raftpb.Snapshot{snapAt(1, 10), snapAt(2, 20)}, nil, []Marker{{10, 1}, {30, 2}}, snapAt(1, 10), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(t.TempDir(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, sn := range tt.saves {
				if err := s.Save(sn); err != nil {
					t.Fatal(err)
				}
			}
			for _, i := range tt.corrupt {
				md := tt.saves[i].GetMetadata()
				p := filepath.Join(s.Dir(), fileName(md.GetTerm(), md.GetIndex()))
				b, _ := os.ReadFile(p)
				b[len(b)-1] ^= 1
				os.WriteFile(p, b, 0o600)
			}
			got, err := s.LoadNewestAvailable(tt.markers)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.want != nil && !proto.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for _, i := range tt.corrupt {
				md := tt.saves[i].GetMetadata()
				if _, err := os.Stat(filepath.Join(s.Dir(), fileName(md.GetTerm(), md.GetIndex())+".broken")); err != nil {
					t.Fatalf("corrupt file not renamed .broken: %v", err)
				}
			}
		})
	}
}

func fileName(term, index uint64) string {
	return fmt.Sprintf("%016x-%016x.snap", term, index)
}

func TestSaveEmpty(t *testing.T) {
	s, _ := New(t.TempDir(), Options{})
	if err := s.Save(&raftpb.Snapshot{}); !errors.Is(err, ErrEmptySnapshot) {
		t.Fatalf("err = %v", err)
	}
}

func TestDBFile(t *testing.T) {
	s, _ := New(t.TempDir(), Options{})
	if _, err := s.DBFilePath(7); !errors.Is(err, ErrNoDBSnapshot) {
		t.Fatalf("DBFilePath before save: %v", err)
	}
	data := bytes.Repeat([]byte("bolt"), 10000)
	p, err := s.SaveDBFrom(bytes.NewReader(data), 7)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.DBFilePath(7); got != p || filepath.Base(p) != "0000000000000007.snap.db" {
		t.Fatalf("path %s / %s", p, got)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, data) {
		t.Fatal("content differs")
	}
}

func TestReleaseKeepsAllWhenUnlimited(t *testing.T) {
	s, _ := New(t.TempDir(), Options{Keep: -1})
	for i := uint64(1); i <= 6; i++ {
		s.Save(snapAt(1, i*10))
	}
	if err := s.ReleaseOlderThan(60); err != nil {
		t.Fatal(err)
	}
	if snaps, _ := filepath.Glob(filepath.Join(s.Dir(), "*.snap")); len(snaps) != 6 {
		t.Fatalf("left %v, want all six", snaps)
	}
}

func TestReleaseOlderThan(t *testing.T) {
	s, _ := New(t.TempDir(), Options{Keep: 2})
	for i := uint64(1); i <= 6; i++ {
		s.Save(snapAt(1, i*10))
		s.SaveDBFrom(bytes.NewReader([]byte("db")), i*10)
	}
	if err := s.ReleaseOlderThan(60); err != nil {
		t.Fatal(err)
	}
	snaps, _ := filepath.Glob(filepath.Join(s.Dir(), "*.snap"))
	dbs, _ := filepath.Glob(filepath.Join(s.Dir(), "*.snap.db"))
	if len(snaps) != 2 || len(dbs) != 2 {
		t.Fatalf("left %v and %v, want the newest two of each", snaps, dbs)
	}
	got, err := s.Load()
	if err != nil || got.GetMetadata().GetIndex() != 60 {
		t.Fatalf("Load after release: %v %v", got, err)
	}
}
