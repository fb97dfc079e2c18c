package etcdapi

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// snapshotChunkBytes is the blob size of one SnapshotResponse (etcd's
// snapshotSendBufferSize).
const snapshotChunkBytes = 32 * 1024

// Snapshot streams a consistent copy of the backend as etcd 3.4 does: the
// bbolt file in chunks, each with the bytes still to come, then one last
// response whose blob is the file's sha256 (remaining_bytes 0), which
// `etcdctl snapshot restore` checks. The copy is the backend as committed
// when the call starts: writes applied in the last commit interval
// (100 ms) may not be in it yet.
//
// The copy is spooled to a temporary file first, so the size (and
// remaining_bytes) is known before the first chunk and the backend's read
// transaction does not wait on a slow client.
func (m *Maintenance) Snapshot(_ *pb.SnapshotRequest, srv pb.Maintenance_SnapshotServer) error {
	if err := m.admin(srv.Context()); err != nil {
		return err
	}
	store := m.KV.cfg.Raft.Store()
	if store == nil {
		return errCoreDown
	}
	// Everything applied so far goes to bbolt first: the copy is of the
	// committed file, and the applier commits only every 100 ms.
	if err := m.KV.cfg.Raft.CommitBackend(srv.Context()); err != nil {
		return err
	}
	rc, err := store.SnapshotDB()
	if err != nil {
		return err
	}
	f, size, err := spoolSnapshot(rc)
	if err != nil {
		return err
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	h := sha256.New()
	buf := make([]byte, snapshotChunkBytes)
	sent := int64(0)
	for sent < size {
		n, err := io.ReadFull(f, buf)
		if err != nil && err != io.ErrUnexpectedEOF {
			return fmt.Errorf("snapshot: read spool %s: %w", f.Name(), err)
		}
		sent += int64(n)
		h.Write(buf[:n])
		if err := srv.Send(&pb.SnapshotResponse{RemainingBytes: uint64(size - sent), Blob: buf[:n]}); err != nil {
			return err
		}
	}
	return srv.Send(&pb.SnapshotResponse{RemainingBytes: 0, Blob: h.Sum(nil)})
}

// spoolSnapshot copies rc to a temporary file and returns it rewound, with
// its size. The caller closes and removes the file.
func spoolSnapshot(rc io.ReadCloser) (*os.File, int64, error) {
	defer func() { _ = rc.Close() }()
	f, err := os.CreateTemp("", "troupe-snapshot-*.db")
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot: spool file: %w", err)
	}
	size, err := io.Copy(f, rc)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, 0, fmt.Errorf("snapshot: spool %s: %w", f.Name(), err)
	}
	return f, size, nil
}
