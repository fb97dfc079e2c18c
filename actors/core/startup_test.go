package core

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"golang.org/x/sys/unix"

	"github.com/troupedb/troupe/actors/internal/actortest"
	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/mvcc"
	"github.com/troupedb/troupe/persistence/snap"
	"github.com/troupedb/troupe/persistence/wal"
)

// TestStartupErrors: every start-up step that fails stops the core with a
// StartupError whose Step says which, and whose message names the file
// and the operator's fix; the failed start-up leaves no file locked.
func TestStartupErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		// prepare lays out the data dir dd (and may hold files open until
		// the test ends) and returns the data dir the member is given.
		prepare func(t *testing.T, dd string) string
		id      uint64 // member id, 1 if 0
		cluster uint64 // cluster id, 1 if 0
		step    string
		is      error
		// want are substrings of the message; %d is the data dir.
		want []string
	}{{
		name: "data dir is a file",
		prepare: func(t *testing.T, dd string) string {
			f := filepath.Join(dd, "file")
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return f
		},
		step: "check data dir",
		want: []string{"%d/member/wal", "fix: make --data-dir writable"},
	}, {
		name: "snapshot dir leftover that cannot be removed",
		prepare: func(t *testing.T, dd string) string {
			mkdirs(t, filepath.Join(SnapDir(dd), "0000000000000001-0000000000000005.snap.tmp", "x"))
			return dd
		},
		step: "open snapshot dir",
		want: []string{"%d/member/snap/0000000000000001-0000000000000005.snap.tmp", "fix:"},
	}, {
		name: "corrupt backend",
		prepare: func(t *testing.T, dd string) string {
			mkdirs(t, SnapDir(dd))
			if err := os.WriteFile(DBPath(dd), bytes.Repeat([]byte{0xab}, 16<<10), 0o600); err != nil {
				t.Fatal(err)
			}
			return dd
		},
		step: "open backend",
		want: []string{"%d/member/snap/db", "restore the file from a snapshot"},
	}, {
		name: "backend locked by another process",
		prepare: func(t *testing.T, dd string) string {
			mkdirs(t, SnapDir(dd))
			st, err := mvcc.Open(DBPath(dd), mvcc.Options{NoSync: true, Logger: actortest.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return dd
		},
		step: "open backend",
		want: []string{"%d/member/snap/db", "another process holds its lock; stop it or use another data dir"},
	}, {
		name: "snapshots but no WAL",
		prepare: func(t *testing.T, dd string) string {
			writeSnapshot(t, dd, 5)
			return dd
		},
		step: "open wal",
		want: []string{"%d/member/snap has snapshots but %d/member/wal has no WAL", "fix: restore the data dir, or remove it and re-add the member"},
	}, {
		name: "WAL locked by another process",
		prepare: func(t *testing.T, dd string) string {
			writeWAL(t, dd, 0)
			w, err := wal.Open(WALDir(dd), wal.Options{Logger: actortest.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = w.Close() })
			return dd
		},
		step: "open wal",
		is:   wal.ErrLocked,
		want: []string{"%d/member/wal", "fix:"},
	}, {
		name: "corrupt WAL",
		prepare: func(t *testing.T, dd string) string {
			writeWAL(t, dd, 0, entries(1, 20)...)
			flipByteInSegment(t, WALDir(dd), 0.5)
			return dd
		},
		step: "replay wal",
		is:   wal.ErrCorrupt,
		want: []string{"%d/member/wal/", "restore the member from a snapshot, or remove its data dir and re-add it to the cluster"},
	}, {
		name: "WAL entries missing after the snapshot",
		prepare: func(t *testing.T, dd string) string {
			writeSnapshot(t, dd, 5)
			writeWAL(t, dd, 5, entries(8, 9)...)
			return dd
		},
		step: "replay wal",
		is:   wal.ErrMissingEntries,
		want: []string{"%d/member/wal", "fix:"},
	}, {
		name: "WAL of another member",
		prepare: func(t *testing.T, dd string) string {
			writeWAL(t, dd, 0)
			return dd
		},
		id:   2,
		step: "check wal",
		want: []string{"%d/member/wal belongs to member 1 of cluster 1, but the flags make member 2 of cluster 1",
			"fix: start with the flags the data dir was made with, or use another --data-dir"},
	}, {
		name: "WAL of another cluster",
		prepare: func(t *testing.T, dd string) string {
			writeWAL(t, dd, 0)
			return dd
		},
		cluster: 2,
		step:    "check wal",
		want:    []string{"%d/member/wal belongs to member 1 of cluster 1, but the flags make member 1 of cluster 2", "fix:"},
	}, {
		name: "backend older than the snapshot",
		prepare: func(t *testing.T, dd string) string {
			writeSnapshot(t, dd, 5)
			writeWAL(t, dd, 5)
			return dd
		},
		step: "check backend",
		want: []string{"backend %d/member/snap/db is at index 0, older than snapshot 5",
			"fix: restore the data dir from a snapshot, or remove it and re-add the member"},
	}, {
		name: "applied backend but no WAL (a forgotten --wal-dir)",
		prepare: func(t *testing.T, dd string) string {
			mkdirs(t, SnapDir(dd))
			st, err := mvcc.Open(DBPath(dd), mvcc.Options{NoSync: true, Logger: actortest.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.ApplyMembers(3, []membership.Member{{ID: 1, PeerURLs: []string{"http://m1"}}}, nil); err != nil {
				t.Fatal(err)
			}
			_ = st.Close()
			return dd
		},
		step: "open wal",
		want: []string{"backend %d/member/snap/db has applied up to index 3 but %d/member/wal has no WAL",
			"fix: give the --wal-dir the data dir was made with"},
	}, {
		name: "unreadable membership in the backend",
		prepare: func(t *testing.T, dd string) string {
			mkdirs(t, SnapDir(dd))
			st, err := mvcc.Open(DBPath(dd), mvcc.Options{NoSync: true, Logger: actortest.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			_ = st.Close()
			db, err := bolt.Open(DBPath(dd), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			err = db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("members")).Put(membership.Key(1), []byte("{not json"))
			})
			if err != nil {
				t.Fatal(err)
			}
			return dd
		},
		step: "load members",
		want: []string{"%d/member/snap/db", "fix:"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dd := tc.prepare(t, t.TempDir())
				id, cluster := max(tc.id, 1), max(tc.cluster, 1)
				m := newMember(t, dd, id, cluster, id)
				err := m.start()
				var se *StartupError
				if !errors.As(err, &se) {
					t.Fatalf("start-up failed with %v (%T), want a StartupError", err, err)
				}
				if se.Step != tc.step {
					t.Errorf("step %q (%v), want %q", se.Step, err, tc.step)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("error %v is not %v", err, tc.is)
				}
				for _, w := range tc.want {
					if w = strings.ReplaceAll(w, "%d", dd); !strings.Contains(err.Error(), w) {
						t.Errorf("error\n  %v\ndoes not say\n  %s", err, w)
					}
				}
				if m.client.Core() != nil {
					t.Error("a failed core is published")
				}
				if tc.name != "backend locked by another process" {
					assertUnlocked(t, DBPath(dd))
				}
				if tc.name != "WAL locked by another process" {
					assertUnlocked(t, WALDir(dd))
				}
			})
		})
	}
}

// assertUnlocked fails if path exists and someone holds its flock (bbolt
// locks the backend file, the WAL its directory).
func assertUnlocked(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Errorf("%s is still locked after the failed start-up: %v", path, err)
		return
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
}

// entries returns normal entries from..to of term 1, without data.
func entries(from, to uint64) []*raftpb.Entry {
	var ents []*raftpb.Entry
	for i := from; i <= to; i++ {
		ents = append(ents, &raftpb.Entry{Index: new(i), Term: new(uint64(1)), Type: raftpb.EntryNormal.Enum()})
	}
	return ents
}

// flipByteInSegment flips one bit of the only WAL segment in dir, at the
// fraction at of its written records.
func flipByteInSegment(t *testing.T, dir string, at float64) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	if len(segs) != 1 {
		t.Fatalf("%d segments in %s, want 1", len(segs), dir)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	used := len(bytes.TrimRight(b, "\x00"))
	b[int(float64(used)*at)] ^= 0x10
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStartupNewThenRestart: a new member creates its files and starts;
// started again from them it is not new (raft is not bootstrapped twice)
// and keeps its membership.
func TestStartupNewThenRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dd := t.TempDir()
		m := newMember(t, dd, 1, 1, 1)
		if err := m.start(); err != nil {
			t.Fatal(err)
		}
		if !wal.Exist(WALDir(dd)) {
			t.Fatal("no WAL after the first start")
		}
		co := m.client.Core()
		if co == nil || co.Store == nil || co.Raft == nil || co.Applier == nil || co.Lessor == nil {
			t.Fatalf("published core %+v", co)
		}
		m.stop()
		if m.client.Core() != nil {
			t.Fatal("a stopped core is still published")
		}
		if err := m.start(); err != nil {
			t.Fatalf("restart: %v", err)
		}
		if m.client.Core() == nil {
			t.Fatal("the restarted core is not published")
		}
	})
}

// TestStartupFinishesSnapshotInstall: a crash after a snapshot from the
// leader was durable but before its database replaced the backend leaves
// the database in the snapshot dir; the start-up installs it.
func TestStartupFinishesSnapshotInstall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dd := t.TempDir()
		writeSnapshot(t, dd, 5)
		writeWAL(t, dd, 5)
		tmp := filepath.Join(t.TempDir(), "db")
		st, err := mvcc.Open(tmp, mvcc.Options{NoSync: true, Logger: actortest.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.ApplyMembers(4, []membership.Member{self(1)}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Put(5, &pb.PutRequest{Key: []byte("k"), Value: []byte("from the leader")}); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(tmp)
		if err != nil {
			t.Fatal(err)
		}
		ss, err := snap.New(SnapDir(dd), snap.Options{Logger: actortest.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ss.SaveDBFrom(f, 5); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()

		m := newMember(t, dd, 1, 1, 1)
		if err := m.start(); err != nil {
			t.Fatal(err)
		}
		got := m.client.Store()
		if got.ConsistentIndex() != 5 || got.Path() != DBPath(dd) {
			t.Fatalf("backend %s at index %d, want %s at 5", got.Path(), got.ConsistentIndex(), DBPath(dd))
		}
		r, err := got.Range(&pb.RangeRequest{Key: []byte("k")})
		if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "from the leader" {
			t.Fatalf("k in the installed backend: %v %v", r, err)
		}
		if _, err := ss.DBFilePath(5); !errors.Is(err, snap.ErrNoDBSnapshot) {
			t.Fatalf("the snapshot database is still in the snapshot dir: %v", err)
		}
		if ms := m.client.View().Members(); len(ms) != 1 || ms[0].ID != 1 {
			t.Fatalf("members %v, want the snapshot's member 1", ms)
		}
	})
}

// TestCheckWALLayout: only a dedicated WAL dir without a WAL beside a data
// dir with one is refused.
func TestCheckWALLayout(t *testing.T) {
	withWAL := t.TempDir()
	writeWAL(t, withWAL, 0)
	empty := t.TempDir()
	other := filepath.Join(t.TempDir(), "wal")
	for _, tc := range []struct {
		dataDir, walDir string
		refused         bool
	}{
		{withWAL, "", false},
		{withWAL, WALDir(withWAL), false},
		{withWAL, WALDir(withWAL) + "/", false},
		{withWAL, other, true},
		{empty, other, false},
		{empty, "", false},
	} {
		err := CheckWALLayout(tc.dataDir, tc.walDir)
		if (err != nil) != tc.refused {
			t.Errorf("CheckWALLayout(%s, %s) = %v, want refused %v", tc.dataDir, tc.walDir, err, tc.refused)
		}
		if err != nil && !strings.Contains(err.Error(), "--wal-dir "+other+" has no WAL but data dir "+withWAL+" has one in "+WALDir(withWAL)) {
			t.Errorf("error %v does not name the dirs", err)
		}
	}
	moved := t.TempDir()
	writeWAL(t, moved, 0)
	if err := CheckWALLayout(withWAL, WALDir(moved)); err != nil {
		t.Errorf("a --wal-dir holding a WAL is refused: %v", err)
	}
}

// TestForceNewClusterRefusesARemovedMember: a member the cluster removed
// cannot force a new cluster (its re-add would be refused when applied,
// leaving raft without a voter); the WAL is left as it was.
func TestForceNewClusterRefusesARemovedMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dd := t.TempDir()
		writeWAL(t, dd, 0, entries(1, 5)...)
		mkdirs(t, SnapDir(dd))
		st, err := mvcc.Open(DBPath(dd), mvcc.Options{NoSync: true, Logger: actortest.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.ApplyMembers(4, []membership.Member{self(2)}, []uint64{1}); err != nil {
			t.Fatal(err)
		}
		_ = st.Close()
		m := newMember(t, dd, 1, 1)
		m.cfg.ForceNewCluster = true
		err = m.start()
		var se *StartupError
		if !errors.As(err, &se) || se.Step != "force new cluster" || !strings.Contains(err.Error(), "member 1 was removed from the cluster") {
			t.Fatalf("start-up: %v, want the force-new-cluster step to refuse a removed member", err)
		}
		w, err := wal.Open(WALDir(dd), wal.Options{Logger: actortest.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		_, hs, ents, err := w.ReadAll(wal.SnapshotMarker{})
		if err != nil || len(ents) != 5 || hs.GetCommit() != 5 {
			t.Fatalf("WAL after the refusal: %d entries, commit %d, %v", len(ents), hs.GetCommit(), err)
		}
	})
}
