// Package snap stores raft snapshots: the snapshot message (metadata and
// the small Data payload) in %016x-%016x.snap files (term, index), and the
// bbolt database a snapshot ships in %016x.snap.db files (index).
//
// A .snap file is a CRC32C (Castagnoli, 4 bytes little endian) of the body
// followed by the body, the proto-encoded raftpb.Snapshot. Every file is
// written under a temporary name, fsynced, renamed into place and the
// directory fsynced, so a crash leaves either the old set or the new one.
// Load skips files that fail the check, renaming them *.broken so an
// operator can inspect them, and falls back to older snapshots.
package snap

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

var (
	// ErrNoSnapshot is returned by Load when no valid snapshot exists.
	ErrNoSnapshot = errors.New("snap: no available snapshot")
	// ErrEmptySnapshot is returned by Save for a snapshot without metadata.
	ErrEmptySnapshot = errors.New("snap: empty snapshot")
	// ErrCRCMismatch reports a .snap file whose checksum does not match.
	ErrCRCMismatch = errors.New("snap: crc mismatch")
	// ErrNoDBSnapshot is returned by DBFilePath when the .snap.db file
	// for an index does not exist.
	ErrNoDBSnapshot = errors.New("snap: snapshot database file not found")
)

const (
	snapExt   = ".snap"
	dbExt     = ".snap.db"
	brokenExt = ".broken"
	tmpExt    = ".tmp"
	// DefaultKeep is how many .snap files ReleaseOlderThan keeps at least.
	DefaultKeep = 5
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options tune a Snapshotter. The zero value is usable.
type Options struct {
	// Keep is the number of newest .snap files ReleaseOlderThan never
	// removes, so Load can fall back past a corrupt newest one (etcd's
	// --max-snapshots); 0 means DefaultKeep, a negative value keeps all
	// (etcd's 0, "unlimited").
	Keep int
	// Logger receives skipped corrupt files and releases; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Snapshotter reads and writes the snapshot files of one directory. Its
// methods may be called from one goroutine at a time.
type Snapshotter struct {
	dir  string
	keep int
	log  *slog.Logger
}

// New returns a Snapshotter for dir, creating dir if needed and removing
// temporary files a crash left behind.
func New(dir string, opts Options) (*Snapshotter, error) {
	if opts.Keep == 0 {
		opts.Keep = DefaultKeep
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("snap: create dir %s: %w", dir, err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "*"+tmpExt))
	for _, p := range tmps {
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("snap: remove leftover %s: %w", p, err)
		}
	}
	return &Snapshotter{dir: dir, keep: opts.Keep, log: opts.Logger.With("component", "snap", "dir", dir)}, nil
}

// Dir returns the snapshot directory.
func (s *Snapshotter) Dir() string { return s.dir }

// Save writes snap durably as %016x-%016x.snap (term, index).
func (s *Snapshotter) Save(snap *raftpb.Snapshot) error {
	md := snap.GetMetadata()
	if md.GetIndex() == 0 {
		return ErrEmptySnapshot
	}
	body, err := proto.Marshal(snap)
	if err != nil {
		return fmt.Errorf("snap: encode snapshot %d: %w", md.GetIndex(), err)
	}
	buf := make([]byte, 4, 4+len(body))
	binary.LittleEndian.PutUint32(buf, crc32.Checksum(body, castagnoli))
	buf = append(buf, body...)
	name := fmt.Sprintf("%016x-%016x%s", md.GetTerm(), md.GetIndex(), snapExt)
	return s.writeFile(name, func(f *os.File) error {
		_, err := f.Write(buf)
		return err
	})
}

// Load returns the newest valid snapshot, or ErrNoSnapshot.
func (s *Snapshotter) Load() (*raftpb.Snapshot, error) {
	return s.LoadNewestAvailable(nil)
}

// Marker names a snapshot by term and index.
type Marker struct {
	Index uint64
	Term  uint64
}

// LoadNewestAvailable returns the newest valid snapshot that is among
// markers (typically the WAL's snapshot markers, so the snapshot matches
// the log it is replayed with); nil markers accept any snapshot.
func (s *Snapshotter) LoadNewestAvailable(markers []Marker) (*raftpb.Snapshot, error) {
	names, err := s.snapNames()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		var term, index uint64
		if _, err := fmt.Sscanf(name, "%016x-%016x"+snapExt, &term, &index); err != nil {
			continue
		}
		if markers != nil && !slices.Contains(markers, Marker{Index: index, Term: term}) {
			continue
		}
		snap, err := Read(filepath.Join(s.dir, name))
		if err == nil {
			return snap, nil
		}
		s.log.Warn("snapshot file unreadable, skipped", "file", name, "err", err)
		broken := filepath.Join(s.dir, name+brokenExt)
		if rerr := os.Rename(filepath.Join(s.dir, name), broken); rerr != nil {
			s.log.Warn("cannot rename broken snapshot", "file", name, "err", rerr)
		}
	}
	return nil, ErrNoSnapshot
}

// Read reads and checks one .snap file.
func Read(path string) (*raftpb.Snapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("snap: read %s: %w", path, err)
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("snap: %s is %d bytes: %w", path, len(b), ErrCRCMismatch)
	}
	if crc32.Checksum(b[4:], castagnoli) != binary.LittleEndian.Uint32(b) {
		return nil, fmt.Errorf("snap: %s: %w", path, ErrCRCMismatch)
	}
	snap := &raftpb.Snapshot{}
	if err := proto.Unmarshal(b[4:], snap); err != nil {
		return nil, fmt.Errorf("snap: decode %s: %w", path, err)
	}
	return snap, nil
}

// snapNames lists the .snap files of the directory, newest first.
func (s *Snapshotter) snapNames() ([]string, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("snap: list %s: %w", s.dir, err)
	}
	var names []string
	for _, de := range des {
		if n := de.Name(); strings.HasSuffix(n, snapExt) && len(n) == 33+len(snapExt) {
			names = append(names, n)
		}
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(b, a) })
	return names, nil
}

// DBFilePath returns the path of the database file of the snapshot at
// index, or ErrNoDBSnapshot if it does not exist.
func (s *Snapshotter) DBFilePath(index uint64) (string, error) {
	p := s.dbPath(index)
	if _, err := os.Stat(p); err != nil {
		if os.IsNotExist(err) {
			return "", fmt.Errorf("%w: %s", ErrNoDBSnapshot, p)
		}
		return "", fmt.Errorf("snap: stat %s: %w", p, err)
	}
	return p, nil
}

func (s *Snapshotter) dbPath(index uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016x%s", index, dbExt))
}

// SaveDBFrom copies a snapshot database from r durably into the
// %016x.snap.db file of index and returns its path.
func (s *Snapshotter) SaveDBFrom(r io.Reader, index uint64) (string, error) {
	name := filepath.Base(s.dbPath(index))
	var n int64
	err := s.writeFile(name, func(f *os.File) error {
		var err error
		n, err = io.Copy(f, r)
		return err
	})
	if err != nil {
		return "", err
	}
	s.log.Info("snapshot database saved", "index", index, "size_bytes", n)
	return s.dbPath(index), nil
}

// writeFile writes name through a temporary file, fsyncs it, renames it
// into place and fsyncs the directory.
func (s *Snapshotter) writeFile(name string, write func(*os.File) error) error {
	final := filepath.Join(s.dir, name)
	tmp := final + tmpExt
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("snap: create %s: %w", tmp, err)
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snap: write %s: %w", final, err)
	}
	return nil
}

// ReleaseOlderThan removes .snap and .snap.db files of snapshots below
// index, except the newest Keep .snap files (and their databases).
func (s *Snapshotter) ReleaseOlderThan(index uint64) error {
	if s.keep < 0 {
		return nil
	}
	names, err := s.snapNames()
	if err != nil {
		return err
	}
	kept := map[uint64]bool{}
	for i, name := range names {
		var term, idx uint64
		if _, err := fmt.Sscanf(name, "%016x-%016x"+snapExt, &term, &idx); err != nil {
			continue
		}
		if i < s.keep || idx >= index {
			kept[idx] = true
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, name)); err != nil {
			return fmt.Errorf("snap: release %s: %w", name, err)
		}
	}
	dbs, _ := filepath.Glob(filepath.Join(s.dir, "*"+dbExt))
	for _, p := range dbs {
		var idx uint64
		if _, err := fmt.Sscanf(filepath.Base(p), "%016x"+dbExt, &idx); err != nil {
			continue
		}
		if idx < index && !kept[idx] {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("snap: release %s: %w", p, err)
			}
		}
	}
	return syncDir(s.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
