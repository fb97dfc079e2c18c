package mvcc

import (
	"encoding/binary"
	"fmt"
)

// revision is the position of one change: main is the store revision of the
// request (one per Put, DeleteRange or Txn), sub the index of the change
// inside it.
type revision struct {
	main int64
	sub  int64
}

func (a revision) less(b revision) bool {
	if a.main != b.main {
		return a.main < b.main
	}
	return a.sub < b.sub
}

const (
	revBytesLen       = 8 + 1 + 8
	markedRevBytesLen = revBytesLen + 1
	tombstoneMark     = 't'
)

// bucketKey encodes rev as a key of the "key" bucket, with the tombstone
// mark when tomb is set.
func bucketKey(rev revision, tomb bool) []byte {
	n := revBytesLen
	if tomb {
		n = markedRevBytesLen
	}
	b := make([]byte, n)
	putBucketKey(b, rev, tomb)
	return b
}

// putBucketKey writes bucketKey(rev, tomb) into b, which is long enough.
func putBucketKey(b []byte, rev revision, tomb bool) {
	putRevBytes(b, rev)
	if tomb {
		b[revBytesLen] = tombstoneMark
	}
}

// parseBucketKey decodes a key of the "key" bucket.
func parseBucketKey(b []byte) (rev revision, tomb bool, err error) {
	switch {
	case len(b) == revBytesLen:
	case len(b) == markedRevBytesLen && b[revBytesLen] == tombstoneMark:
		tomb = true
	default:
		return revision{}, false, fmt.Errorf("bad revision key %x", b)
	}
	if b[8] != '_' {
		return revision{}, false, fmt.Errorf("bad revision key %x", b)
	}
	rev.main = int64(binary.BigEndian.Uint64(b))
	rev.sub = int64(binary.BigEndian.Uint64(b[9:]))
	return rev, tomb, nil
}

// putRevBytes writes rev's 17-byte encoding at the start of b.
func putRevBytes(b []byte, rev revision) {
	binary.BigEndian.PutUint64(b, uint64(rev.main))
	b[8] = '_'
	binary.BigEndian.PutUint64(b[9:], uint64(rev.sub))
}
