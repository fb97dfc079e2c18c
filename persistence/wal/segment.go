package wal

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	segmentExt = ".wal"
	tmpExt     = ".tmp"
)

// segment names one segment file: seq orders the files, first is the index
// of the first entry the segment was opened for (the log's last index plus
// one when it was cut). A later segment can hold entries below its own
// first only after a raft log truncation, which supersedes earlier ones.
type segment struct {
	seq   uint64
	first uint64
}

func (s segment) name() string { return fmt.Sprintf("%016x-%016x%s", s.seq, s.first, segmentExt) }

func parseSegmentName(name string) (segment, bool) {
	var s segment
	if !strings.HasSuffix(name, segmentExt) {
		return s, false
	}
	if _, err := fmt.Sscanf(name, "%016x-%016x"+segmentExt, &s.seq, &s.first); err != nil {
		return s, false
	}
	return s, s.name() == name
}

// listSegments returns the segments of dir in order, and checks that no
// sequence number is missing.
func listSegments(dir string) ([]segment, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: list %s: %w", dir, err)
	}
	var segs []segment
	for _, de := range des {
		if s, ok := parseSegmentName(de.Name()); ok {
			segs = append(segs, s)
		}
	}
	slices.SortFunc(segs, func(a, b segment) int { return cmp.Compare(a.seq, b.seq) })
	for i := 1; i < len(segs); i++ {
		if segs[i].seq != segs[i-1].seq+1 {
			return nil, fmt.Errorf("%w: segment after %s is missing in %s; %s",
				ErrCorrupt, segs[i-1].name(), dir, corruptFix)
		}
	}
	return segs, nil
}

// removeTemps removes segment files left half-created by a crash.
func removeTemps(dir string) error {
	tmps, err := filepath.Glob(filepath.Join(dir, "*"+segmentExt+tmpExt))
	if err != nil {
		return err
	}
	for _, p := range tmps {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("wal: remove leftover %s: %w", p, err)
		}
	}
	return nil
}

// preallocate makes f size bytes long with every new byte zero, using
// fallocate where the file system supports it.
func preallocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("wal: fallocate %s: %w", f.Name(), err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("wal: stat %s: %w", f.Name(), err)
	}
	if fi.Size() >= size {
		return nil
	}
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("wal: extend %s: %w", f.Name(), err)
	}
	return nil
}

// syncDir makes renames and removals in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("wal: sync dir %s: %w", dir, err)
	}
	return nil
}

// lockDir takes an exclusive, non-blocking flock on dir.
func lockDir(dir string) (*os.File, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: open dir %s: %w", dir, err)
	}
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		d.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("wal: lock %s: %w", dir, err)
	}
	return d, nil
}
