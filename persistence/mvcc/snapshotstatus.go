package mvcc

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SnapshotStatus is what etcdctl 3.4's snapshot status reports of a saved
// bbolt file.
type SnapshotStatus struct {
	// Hash is the CRC32C of every bucket's name, keys and values, buckets
	// and keys in bbolt's order.
	Hash uint32
	// Revision is the main revision of the "key" bucket's last key.
	Revision int64
	// TotalKeys counts the keys of every bucket.
	TotalKeys int
	// TotalSizeBytes is the size bbolt reports for the file.
	TotalSizeBytes int64
}

// ReadSnapshotStatus checks the integrity of the bbolt file at path (not
// open in a Store) and computes its SnapshotStatus as etcdctl 3.4 does.
func ReadSnapshotStatus(path string) (SnapshotStatus, error) {
	var st SnapshotStatus
	if _, err := os.Stat(path); err != nil {
		return st, err
	}
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return st, fmt.Errorf("open %s: %w", path, err)
	}
	defer func() { _ = db.Close() }()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	err = db.View(func(tx *bolt.Tx) error {
		var errs []string
		for err := range tx.Check() {
			errs = append(errs, err.Error())
		}
		if len(errs) > 0 {
			return fmt.Errorf("snapshot file integrity check failed, %d errors:\n%s", len(errs), strings.Join(errs, "\n"))
		}
		st.TotalSizeBytes = tx.Size()
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			h.Write(name)
			isKey := string(name) == string(keyBucket)
			return b.ForEach(func(k, v []byte) error {
				h.Write(k)
				h.Write(v)
				if isKey && len(k) >= 8 {
					st.Revision = int64(binary.BigEndian.Uint64(k))
				}
				st.TotalKeys++
				return nil
			})
		})
	})
	if err != nil {
		return st, fmt.Errorf("read %s: %w", path, err)
	}
	st.Hash = h.Sum32()
	return st, nil
}
