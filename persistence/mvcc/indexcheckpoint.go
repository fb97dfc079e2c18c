package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
)

// The index checkpoint: the key index written by Close into a bucket of
// troupe's own, so that the next Open rebuilds the index from it instead
// of decoding every revision in the "key" bucket (1M keys: one
// varint-packed read of tens of MB instead of a walk over GBs of values).
//
// The rule that keeps it from ever serving a wrong index:
//
//   - Close writes it in a bbolt transaction of its own, after the last
//     commit of the batch, when nothing more will be written.
//   - Open reads it and deletes it in its first write transaction, before
//     anything else can write, whether it is used or not. So a file holds
//     a checkpoint only between a clean Close and the next Open; a crash
//     at any point leaves either no checkpoint (a full scan) or one that
//     matches the data committed with it (bbolt transactions are atomic).
//   - It records what the file said when it was written (the raw
//     consistent index, the compaction revisions in "meta" and the last
//     key of the "key" bucket) and Open uses it only if the file still
//     says so: a tool or an etcd that wrote the file meanwhile (every
//     write adds a revision, every compaction changes "meta") makes it
//     stale. Each part carries a CRC32C; any mismatch, damage or
//     unknown version falls back to the scan, with a log line.
//
// The bucket exists only while no store has the file open, so a running
// member's snapshots, hashes and etcd tools never see it.
var (
	indexCheckpointBucket = []byte("troupe_key_index")
	checkpointHeaderKey   = []byte("header")
)

const (
	checkpointVersion = 1
	// checkpointChunkKeys is how many keys one chunk value holds: chunks
	// keep each bbolt value a few hundred KiB.
	checkpointChunkKeys = 8192
	// DefaultCheckpointMinKeys is the smallest index Close writes a
	// checkpoint for; below it the scan takes milliseconds.
	DefaultCheckpointMinKeys = 10_000
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errCheckpoint marks a checkpoint Open cannot use; it scans instead.
var errCheckpoint = errors.New("mvcc: index checkpoint unusable")

// fileMark is what a file says about the revisions it holds: a checkpoint
// is valid only for the file state it was written with.
type fileMark struct {
	ci, finished, scheduled, lastKey []byte
}

func readFileMark(tx *bolt.Tx) fileMark {
	meta := tx.Bucket(metaBucket)
	last, _ := tx.Bucket(keyBucket).Cursor().Last()
	return fileMark{
		ci:        meta.Get(consistentIndexKey),
		finished:  meta.Get(finishedCompactKey),
		scheduled: meta.Get(scheduledCompactKey),
		lastKey:   last,
	}
}

func (m fileMark) append(b []byte) []byte {
	for _, f := range [][]byte{m.ci, m.finished, m.scheduled, m.lastKey} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// checkpointHeader is the checkpoint's "header" value.
type checkpointHeader struct {
	mark       fileMark
	currentRev int64
	compactRev int64
	keys       int
	chunks     int
}

// writeIndexCheckpoint writes the index into the checkpoint bucket in one
// transaction. Writer goroutine, after the last commit (nothing pending or
// committing).
func (s *Store) writeIndexCheckpoint() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.index.tree.Len() < s.checkpointMinKeys {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(indexCheckpointBucket) != nil {
			if err := tx.DeleteBucket(indexCheckpointBucket); err != nil {
				return err
			}
		}
		b, err := tx.CreateBucket(indexCheckpointBucket)
		if err != nil {
			return err
		}
		b.FillPercent = 1 // written once, in key order
		var (
			buf    []byte
			prev   string
			inBuf  int
			chunks int
			failed error
		)
		flush := func() {
			buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, crcTable))
			if err := b.Put(chunkKey(chunks), buf); err != nil && failed == nil {
				failed = err
			}
			chunks++
			buf, prev, inBuf = nil, "", 0
		}
		s.index.tree.Ascend(func(ki *keyIndex) bool {
			buf = appendKeyIndex(buf, prev, ki, s.leases.keyLease[ki.key])
			prev = ki.key
			if inBuf++; inBuf == checkpointChunkKeys {
				flush()
			}
			return failed == nil
		})
		if inBuf > 0 {
			flush()
		}
		if failed != nil {
			return failed
		}
		h := checkpointHeader{mark: readFileMark(tx), currentRev: s.currentRev, compactRev: s.compactRev, keys: s.index.tree.Len(), chunks: chunks}
		return b.Put(checkpointHeaderKey, h.marshal())
	})
}

func chunkKey(i int) []byte { return binary.BigEndian.AppendUint32([]byte("chunk/"), uint32(i)) }

func (h checkpointHeader) marshal() []byte {
	b := []byte{checkpointVersion}
	b = h.mark.append(b)
	b = binary.AppendVarint(b, h.currentRev)
	b = binary.AppendVarint(b, h.compactRev)
	b = binary.AppendUvarint(b, uint64(h.keys))
	b = binary.AppendUvarint(b, uint64(h.chunks))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// appendKeyIndex encodes ki after the key prev (its prefix is shared):
// shared prefix length, suffix, lease, then each generation as its
// number of revisions and, if any, its created revision, version and
// revisions. Tombstones are implied: every generation but the last ends
// with one.
func appendKeyIndex(b []byte, prev string, ki *keyIndex, lease int64) []byte {
	shared := 0
	for shared < len(prev) && shared < len(ki.key) && prev[shared] == ki.key[shared] {
		shared++
	}
	b = binary.AppendUvarint(b, uint64(shared))
	b = binary.AppendUvarint(b, uint64(len(ki.key)-shared))
	b = append(b, ki.key[shared:]...)
	b = binary.AppendVarint(b, lease)
	b = binary.AppendUvarint(b, uint64(len(ki.gens)))
	for _, g := range ki.gens {
		b = binary.AppendUvarint(b, uint64(len(g.revs)))
		if len(g.revs) == 0 {
			continue
		}
		b = binary.AppendVarint(b, g.created.main)
		b = binary.AppendVarint(b, g.created.sub)
		b = binary.AppendVarint(b, g.ver)
		for _, r := range g.revs {
			b = binary.AppendVarint(b, r.main)
			b = binary.AppendVarint(b, r.sub)
		}
	}
	return b
}

// restoredIndex is an index read from a checkpoint.
type restoredIndex struct {
	header checkpointHeader
	keys   []*keyIndex // ascending
	leases map[string]int64
}

// takeIndexCheckpoint reads the checkpoint, if any, and deletes it (see
// the rule above). It returns nil and no error when there is none; an
// error wrapping errCheckpoint when there is one Open must not use; any
// other error when the file failed.
func takeIndexCheckpoint(tx *bolt.Tx) (*restoredIndex, error) {
	b := tx.Bucket(indexCheckpointBucket)
	if b == nil {
		return nil, nil
	}
	ri, err := readIndexCheckpoint(b, readFileMark(tx))
	if derr := tx.DeleteBucket(indexCheckpointBucket); derr != nil {
		return nil, fmt.Errorf("delete %s bucket: %w", indexCheckpointBucket, derr)
	}
	return ri, err
}

func readIndexCheckpoint(b *bolt.Bucket, now fileMark) (*restoredIndex, error) {
	h, err := parseCheckpointHeader(b.Get(checkpointHeaderKey))
	if err != nil {
		return nil, err
	}
	if !h.mark.equal(now) {
		return nil, fmt.Errorf("%w: the file changed after it was written", errCheckpoint)
	}
	ri := &restoredIndex{header: h, keys: make([]*keyIndex, 0, h.keys), leases: map[string]int64{}}
	for i := range h.chunks {
		if err := ri.decodeChunk(b.Get(chunkKey(i))); err != nil {
			return nil, fmt.Errorf("%w: chunk %d: %w", errCheckpoint, i, err)
		}
	}
	if len(ri.keys) != h.keys {
		return nil, fmt.Errorf("%w: %d keys, header says %d", errCheckpoint, len(ri.keys), h.keys)
	}
	return ri, nil
}

func (m fileMark) equal(o fileMark) bool {
	return bytes.Equal(m.ci, o.ci) && bytes.Equal(m.finished, o.finished) &&
		bytes.Equal(m.scheduled, o.scheduled) && bytes.Equal(m.lastKey, o.lastKey)
}

// checkCRC returns v without its trailing CRC32C if that matches.
func checkCRC(v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, errors.New("too short")
	}
	body := v[:len(v)-4]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(v[len(v)-4:]) {
		return nil, errors.New("checksum mismatch")
	}
	return body, nil
}

// varintReader decodes varints from a byte slice, remembering the first
// failure so callers check once.
type varintReader struct {
	b   []byte
	err error
}

func (r *varintReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *varintReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *varintReader) bytes(n uint64) []byte {
	if uint64(len(r.b)) < n {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// count reads a length that must fit in what is left (each counted item
// takes at least one byte), so damage cannot make a huge allocation.
func (r *varintReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *varintReader) fail() {
	if r.err == nil {
		r.err = errors.New("truncated or damaged")
	}
	r.b = nil
}

func parseCheckpointHeader(v []byte) (checkpointHeader, error) {
	var h checkpointHeader
	if v == nil {
		return h, fmt.Errorf("%w: no header", errCheckpoint)
	}
	body, err := checkCRC(v)
	if err != nil {
		return h, fmt.Errorf("%w: header: %w", errCheckpoint, err)
	}
	if body[0] != checkpointVersion {
		return h, fmt.Errorf("%w: version %d, want %d", errCheckpoint, body[0], checkpointVersion)
	}
	r := &varintReader{b: body[1:]}
	for _, f := range []*[]byte{&h.mark.ci, &h.mark.finished, &h.mark.scheduled, &h.mark.lastKey} {
		if v := r.bytes(r.uvarint()); len(v) > 0 {
			*f = v
		}
	}
	h.currentRev = r.varint()
	h.compactRev = r.varint()
	h.keys = int(r.uvarint())
	h.chunks = int(r.uvarint())
	if r.err != nil || len(r.b) != 0 || h.keys < 0 || h.chunks < 0 {
		return h, fmt.Errorf("%w: header damaged", errCheckpoint)
	}
	return h, nil
}

// decodeChunk appends the keys of one chunk to ri.keys, checking that
// they ascend and that each keyIndex keeps its invariant. The keyIndexes,
// generations and revisions of a chunk share three allocations; each
// slice is capped at its own length, so a later append copies it out
// instead of writing over a neighbour.
func (ri *restoredIndex) decodeChunk(v []byte) error {
	body, err := checkCRC(v)
	if err != nil {
		return err
	}
	r := &varintReader{b: body}
	// Sized for a full chunk of keys with one revision each; more grow.
	var (
		keyBuf = make([]byte, 0, 2*len(body))
		prev   []byte
		kis    = make([]keyIndex, 0, checkpointChunkKeys)
		gens   = make([]generation, 0, checkpointChunkKeys)
		revs   = make([]revision, 0, checkpointChunkKeys)
		spans  = make([]int, 0, checkpointChunkKeys) // end of each key in keyBuf
	)
	for len(r.b) > 0 && r.err == nil {
		shared := r.uvarint()
		suffix := r.bytes(r.uvarint())
		if shared > uint64(len(prev)) {
			r.fail()
			break
		}
		start := len(keyBuf)
		keyBuf = append(keyBuf, prev[:shared]...)
		keyBuf = append(keyBuf, suffix...)
		key := keyBuf[start:]
		if len(ri.keys)+len(kis) > 0 && !(string(key) > ri.lastKey(prev, kis)) {
			return errors.New("keys out of order")
		}
		prev = key
		spans = append(spans, len(keyBuf))
		lease := r.varint()
		ki := keyIndex{}
		ng := r.count()
		g0 := len(gens)
		for range ng {
			g := generation{}
			nr := r.count()
			if nr > 0 {
				g.created = revision{main: r.varint(), sub: r.varint()}
				g.ver = r.varint()
				r0 := len(revs)
				for range nr {
					revs = append(revs, revision{main: r.varint(), sub: r.varint()})
				}
				g.revs = revs[r0:len(revs):len(revs)]
			}
			gens = append(gens, g)
		}
		ki.gens = gens[g0:len(gens):len(gens)]
		if err := checkGenerations(ki.gens); err != nil {
			return err
		}
		kis = append(kis, ki)
		if lease != 0 {
			ri.leases[string(key)] = lease
		}
	}
	if r.err != nil {
		return r.err
	}
	// The slices above may have moved as they grew: point into their
	// final arrays now, and cut every key from one string.
	keys := string(keyBuf)
	start := 0
	for i := range kis {
		kis[i].key = keys[start:spans[i]]
		start = spans[i]
		ri.keys = append(ri.keys, &kis[i])
	}
	return fixSlices(kis, gens, revs)
}

// lastKey is the key decoded before the current one: prev in this chunk,
// else the last key of the previous chunks.
func (ri *restoredIndex) lastKey(prev []byte, kis []keyIndex) string {
	if len(kis) > 0 {
		return string(prev)
	}
	return ri.keys[len(ri.keys)-1].key
}

// fixSlices re-points the generations and revisions of kis into gens and
// revs, which may have been reallocated while decoding (the sub-slices
// taken then still point into the old arrays and stay correct, but
// keeping them would keep those arrays alive too).
func fixSlices(kis []keyIndex, gens []generation, revs []revision) error {
	gi, rj := 0, 0
	for i := range kis {
		n := len(kis[i].gens)
		kis[i].gens = gens[gi : gi+n : gi+n]
		for k := range kis[i].gens {
			m := len(kis[i].gens[k].revs)
			if m > 0 {
				kis[i].gens[k].revs = revs[rj : rj+m : rj+m]
			}
			rj += m
		}
		gi += n
	}
	if gi != len(gens) || rj != len(revs) {
		return errors.New("slice bookkeeping mismatch")
	}
	return nil
}

// checkGenerations checks keyIndex's invariant: at least one generation,
// every one but the last non-empty, revisions ascending.
func checkGenerations(gens []generation) error {
	if len(gens) == 0 {
		return errors.New("key without generations")
	}
	for i, g := range gens {
		if len(g.revs) == 0 && i != len(gens)-1 {
			return errors.New("empty generation before the last")
		}
		for j := 1; j < len(g.revs); j++ {
			if !g.revs[j-1].less(g.revs[j]) {
				return errors.New("revisions out of order")
			}
		}
	}
	return nil
}

// installIndex makes ri the store's index, revision and key leases (the
// lease records come from their bucket afterwards). Open only.
func (s *Store) installIndex(ri *restoredIndex) {
	for _, ki := range ri.keys {
		s.index.insert(ki)
	}
	s.currentRev = max(s.currentRev, ri.header.currentRev)
	s.leases.keyLease = ri.leases
}
