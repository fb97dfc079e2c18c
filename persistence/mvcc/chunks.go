package mvcc

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protowire"
)

// ChunkReader reads one range at one revision a chunk at a time, for
// etcd 3.7's RangeStream: the whole result is never in memory, only the
// chunk being read.
//
// Each chunk is its own short read (the read lock for the index walk, a
// reference to the shared bbolt read transaction for the values, both
// gone when Next returns; see readtx.go),
// as etcd 3.7 runs one txn.Range per chunk at the pinned revision. A
// read transaction held for the whole stream would pin the pages it
// sees, so bbolt could not reuse the pages the applier frees and a
// remap (the file growing) would wait for the slowest client; short
// reads leave the writer and Defrag free. The price is etcd's: a
// compaction above the pinned revision that lands between two chunks
// makes the next chunk fail with ErrCompacted. A compaction at or below
// it keeps every revision the range reads, so the chunks stay one
// consistent view at that revision whatever is written meanwhile.
//
// A ChunkReader is used by one goroutine.
type ChunkReader struct {
	s         *Store
	key       []byte // first key of the range
	next      []byte // first key of the next chunk
	end       []byte // index form (see rangeEnd)
	atRev     int64  // the revision every chunk reads at
	headerRev int64  // store revision when the reader began
	left      int64  // keys the limit still allows; < 0: no limit
	keysOnly  bool
	walk      int // index entries a chunk looks up at most; adapts
	done      bool

	// arena holds the keys and values of the chunk Next returned last;
	// the next chunk reuses it, so a stream of any length makes no more
	// garbage than its KeyValue structs (a GC target of 4x the live heap
	// would otherwise let a 1 GiB stream hold hundreds of MiB of dead
	// chunks). Its size is bounded by a chunk: maxBytes plus one entry.
	arena []byte
}

// Chunk walk bounds: a chunk looks up at most walk keys in the index
// (under the read lock) and returns a prefix of them that fits the byte
// budget. walk grows while chunks come out small (small values) and
// shrinks to what the last chunk used, so a chunk of large values does
// not walk far ahead of what it returns.
const (
	minChunkWalk = 16
	maxChunkWalk = 1 << 16
)

// ReadChunks pins the revision of req (its Revision, or the current one)
// and returns a reader of its keys in key order. It checks the revision as
// Range does (ErrFutureRev, ErrCompacted). Sort orders other than
// ascending by key, revision filters and count_only are the caller's to
// refuse or serve otherwise (etcd 3.7's RangeStream refuses the first two
// and answers count_only with one response). Call ValidateRange first.
func (s *Store) ReadChunks(req *pb.RangeRequest) (*ChunkReader, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	atRev := req.Revision
	switch {
	case atRev > s.currentRev:
		return nil, ErrFutureRev
	case atRev <= 0:
		atRev = s.currentRev
	}
	if atRev < s.compactRev {
		return nil, ErrCompacted
	}
	left := req.Limit
	if left <= 0 {
		left = -1
	}
	return &ChunkReader{
		s: s, key: req.Key, next: req.Key, end: rangeEnd(req.RangeEnd), atRev: atRev, headerRev: s.currentRev,
		left: left, keysOnly: req.KeysOnly, walk: minChunkWalk,
	}, nil
}

// Rev is the store revision when the reader began: the header revision
// of every answer of the stream (as Range's header, also for a read at
// an older revision).
func (c *ChunkReader) Rev() int64 { return c.headerRev }

// Done reports whether the range or the limit is exhausted.
func (c *ChunkReader) Done() bool { return c.done }

// Next returns the next keys of the range: as many as fit in maxBytes
// encoded, and at least one (unless the range has none left) even if it
// alone is larger.
// Keys-only values are dropped. The keys and values alias a buffer the
// next call reuses: use (or send) a chunk before asking for the next one.
// After the last chunk Done is true. Errors:
// ErrCompacted when a compaction passed the pinned revision meanwhile, or
// a backend failure.
func (c *ChunkReader) Next(maxBytes int) ([]*mvccpb.KeyValue, error) {
	if c.done {
		return nil, nil
	}
	n := c.walk
	if c.left >= 0 && int64(n) > c.left {
		n = int(c.left)
	}
	revs, vals, tx, err := c.lookup(n + 1) // one more tells whether the range goes on
	if tx != nil {
		defer tx.release()
	}
	if err != nil {
		return nil, err
	}
	more := len(revs) > n
	if more {
		revs = revs[:n]
	}
	var cur *bolt.Cursor
	if tx != nil {
		cur = tx.kb.Cursor()
	}
	kvs := make([]*mvccpb.KeyValue, 0, len(revs))
	c.arena = c.arena[:0]
	size := 0
	for i, kr := range revs {
		kv, err := c.decode(kr, vals[i], cur)
		if err != nil {
			return nil, err
		}
		if c.keysOnly {
			kv.Value = nil
		}
		sz := responseSize(kv)
		if len(kvs) > 0 && size+sz > maxBytes {
			more = true // this key opens the next chunk
			break
		}
		kvs = append(kvs, kv)
		size += sz
	}
	c.adapt(len(kvs), size, maxBytes)
	if c.left >= 0 {
		c.left -= int64(len(kvs))
	}
	if !more || c.left == 0 || c.end == nil {
		c.done = true
	} else {
		last := kvs[len(kvs)-1].Key
		c.next = append(append(make([]byte, 0, len(last)+1), last...), 0)
	}
	return kvs, nil
}

// Count returns how many keys the whole range has at the pinned
// revision, before the limit: the count of the stream's last answer.
func (c *ChunkReader) Count() (int64, error) {
	c.s.mu.RLock()
	defer c.s.mu.RUnlock()
	if c.atRev < c.s.compactRev {
		return 0, ErrCompacted
	}
	_, total := c.s.index.revisions(c.key, c.end, c.atRev, -1)
	return int64(total), nil
}

// lookup finds the revisions of at most n keys from c.next at the pinned
// revision and, under the read lock, takes the values the batches hold
// and acquires a bbolt read transaction when some are not there (see view
// for why that is safe after the lock is gone). The caller releases tx.
func (c *ChunkReader) lookup(n int) (revs []keyRev, vals [][]byte, tx *sharedReadTx, err error) {
	s := c.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c.atRev < s.compactRev {
		return nil, nil, nil, ErrCompacted
	}
	revs = s.index.revisionsFrom(c.next, c.end, c.atRev, n)
	vals = make([][]byte, len(revs))
	for i, kr := range revs {
		if val, ok := s.inMemory(kr.rev); ok {
			vals[i] = val
		} else if tx == nil {
			if tx, err = s.acquireReadTx(); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	return revs, vals, tx, nil
}

// decode returns the KeyValue at kr from val, or from the key bucket
// through cur when val is nil.
func (c *ChunkReader) decode(kr keyRev, val []byte, cur *bolt.Cursor) (*mvccpb.KeyValue, error) {
	if val == nil {
		var k [revBytesLen]byte
		putRevBytes(k[:], kr.rev)
		found, fv := cur.Seek(k[:])
		if string(found) != string(k[:]) {
			return nil, fmt.Errorf("mvcc: %s: revision %d_%d in the index is missing from the key bucket", c.s.path, kr.rev.main, kr.rev.sub)
		}
		val = fv
	}
	kv, err := c.decodeInArena(val)
	if err != nil {
		return nil, fmt.Errorf("mvcc: %s: revision %d_%d: %w", c.s.path, kr.rev.main, kr.rev.sub, err)
	}
	return kv, nil
}

// adapt sets how far the next chunk walks the index: twice what this one
// returned, so small values widen the walk and large ones keep it near
// the keys a chunk really sends.
func (c *ChunkReader) adapt(returned, size, maxBytes int) {
	w := 2 * returned
	if size < maxBytes/2 && returned == c.walk {
		w = 2 * c.walk
	}
	c.walk = min(max(w, minChunkWalk), maxChunkWalk)
}

// responseSize is what kv adds to an encoded RangeResponse: the entry's
// bytes and its field tag and length.
func responseSize(kv *mvccpb.KeyValue) int {
	n := kvSize(kv)
	return n + 1 + protowire.SizeVarint(uint64(n))
}

// revisionsFrom returns the revision of the first n keys in [key, end)
// alive at atRev, in key order; unlike revisions it stops there.
func (t *treeIndex) revisionsFrom(key, end []byte, atRev int64, n int) []keyRev {
	out := make([]keyRev, 0, min(n, 1024))
	t.visit(key, end, func(ki *keyIndex) bool {
		if rev, ok := ki.get(atRev); ok {
			out = append(out, keyRev{key: ki.key, rev: rev})
		}
		return len(out) < n
	})
	return out
}

// decodeInArena decodes a KeyValue whose key and value are copied into
// c.arena and alias it. An entry with fields decodeKVFast does not know
// goes to decodeKV (a copy).
func (c *ChunkReader) decodeInArena(b []byte) (*mvccpb.KeyValue, error) {
	start := len(c.arena)
	if cap(c.arena)-start < len(b) && start > 0 {
		// growing would move the entries already decoded: leave them in
		// the old array and start a new one big enough for the chunk
		c.arena = make([]byte, 0, max(2*cap(c.arena), len(b)))
		start = 0
	}
	c.arena = append(c.arena, b...)
	b = c.arena[start:len(c.arena):len(c.arena)]
	kv, err := decodeKVFast(b, true)
	if err == errSlowPath {
		return decodeKV(b)
	}
	return kv, err
}
