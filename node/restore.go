package node

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/actors/core"
	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/mvcc"
	"github.com/troupedb/troupe/persistence/snap"
	"github.com/troupedb/troupe/persistence/wal"
)

// RestoreConfig describes the data dir Restore builds.
type RestoreConfig struct {
	File           string // the snapshot: a `snapshot save` file (etcd's or troupe's)
	DataDir        string // to create; it must not exist
	WALDir         string // the WAL's dir (--wal-dir), created; empty: in DataDir
	Name           string // this member's name in InitialCluster
	InitialCluster string // the new cluster's members, name=peer-url,...
	Token          string // the new cluster's --initial-cluster-token
	PeerURLs       string // this member's peer URLs, as in InitialCluster
	// SkipHashCheck accepts a file without the sha256 that snapshot save
	// appends (a copied db file).
	SkipHashCheck bool
}

// Restore builds a data dir for a member of a new cluster from a saved
// snapshot, as etcdctl's snapshot restore: the backend is the snapshot's
// (keys, revisions, leases) with the membership replaced by InitialCluster
// and the consistent index set to the number of members; the raft snapshot
// at that index (term 1) holds them as voters, and the WAL holds its marker
// and a hard state committing it, so `troupe serve` with the same flags
// starts from the data as a restarted member.
func Restore(cfg RestoreConfig) error {
	r := restore{cfg}
	return r.run()
}

type restore struct{ RestoreConfig }

func (r restore) run() error {
	if _, err := os.Stat(r.DataDir); err == nil {
		return fmt.Errorf("data dir %s exists (fix: remove it or choose another --data-dir)", r.DataDir)
	}
	if r.WALDir != "" {
		if _, err := os.Stat(r.WALDir); err == nil {
			return fmt.Errorf("wal-dir %q exists (fix: remove it or choose another --wal-dir)", r.WALDir)
		}
	}
	walDir := core.WALPath(r.DataDir, r.WALDir)
	members, self, err := r.members()
	if err != nil {
		return err
	}
	ids := make([]uint64, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	cid := membership.ClusterID(ids)
	index, term := uint64(len(members)), uint64(1)
	for _, d := range []string{core.SnapDir(r.DataDir), walDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if err := r.copyDB(core.DBPath(r.DataDir)); err != nil {
		return err
	}
	if err := mvcc.ReplaceMembers(core.DBPath(r.DataDir), members, index); err != nil {
		return err
	}
	ss, err := snap.New(core.SnapDir(r.DataDir), snap.Options{})
	if err != nil {
		return err
	}
	sn := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: &index, Term: &term, ConfState: &raftpb.ConfState{Voters: ids}}}
	if err := ss.Save(sn); err != nil {
		return fmt.Errorf("save raft snapshot: %w", err)
	}
	w, err := wal.Create(walDir, wal.Metadata{MemberID: self, ClusterID: cid}, wal.Options{})
	if err != nil {
		return err
	}
	err = w.SaveSnapshot(wal.SnapshotMarker{Index: index, Term: term})
	if err == nil {
		err = w.Save(&raftpb.HardState{Term: &term, Commit: &index}, nil, true)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// members returns the new cluster's members sorted by name, as serve
// computes them, and this member's id.
func (r restore) members() ([]membership.Member, uint64, error) {
	cluster, err := ParseInitialCluster(r.InitialCluster)
	if err != nil {
		return nil, 0, err
	}
	names := make([]string, 0, len(cluster))
	for n := range cluster {
		names = append(names, n)
	}
	slices.Sort(names)
	var members []membership.Member
	var self uint64
	for _, n := range names {
		var urls []string
		for _, u := range cluster[n] {
			urls = append(urls, u.String())
		}
		id := membership.NewMemberID(urls, r.Token, nil)
		members = append(members, membership.Member{ID: id, Name: n, PeerURLs: urls})
		if n == r.Name {
			self = id
			if want := strings.Join(urls, ","); want != r.PeerURLs {
				return nil, 0, fmt.Errorf("--initial-advertise-peer-urls %s differ from %s in --initial-cluster", r.PeerURLs, want)
			}
		}
	}
	if self == 0 {
		return nil, 0, fmt.Errorf("--initial-cluster has no member named %q", r.Name)
	}
	return members, self, nil
}

// copyDB copies the snapshot file to path, checking and dropping the
// sha256 that snapshot save appends (etcd's restore does the same).
func (r restore) copyDB(path string) error {
	b, err := os.ReadFile(r.File)
	if err != nil {
		return err
	}
	if len(b)%512 == sha256.Size {
		body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
		if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
			return fmt.Errorf("%s: sha256 mismatch (the file is damaged)", r.File)
		}
		b = body
	} else if !r.SkipHashCheck {
		return fmt.Errorf("%s has no sha256 of snapshot save (fix: --skip-hash-check for a copied db file)", r.File)
	}
	return os.WriteFile(path, b, 0o600)
}
