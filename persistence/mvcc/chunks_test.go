package mvcc

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// readAll reads req through a ChunkReader with chunks of maxBytes and
// returns the chunks; between chunks it calls between (may be nil).
func readAll(t *testing.T, s *Store, req *pb.RangeRequest, maxBytes int, between func(chunk int)) ([][]*mvccpb.KeyValue, error) {
	t.Helper()
	r, err := s.ReadChunks(req)
	if err != nil {
		return nil, err
	}
	var chunks [][]*mvccpb.KeyValue
	for i := 0; !r.Done(); i++ {
		if i > 10000 {
			t.Fatal("reader never done")
		}
		kvs, err := r.Next(maxBytes)
		if err != nil {
			return chunks, err
		}
		chunks = append(chunks, cloneKVs(kvs)) // Next reuses their bytes
		if between != nil && !r.Done() {
			between(i)
		}
	}
	return chunks, nil
}

// cloneKVs copies a chunk out of the reader's buffer.
func cloneKVs(kvs []*mvccpb.KeyValue) []*mvccpb.KeyValue {
	out := make([]*mvccpb.KeyValue, len(kvs))
	for i, kv := range kvs {
		out[i] = proto.Clone(kv).(*mvccpb.KeyValue)
	}
	return out
}

// asRange is what a client merging the chunks gets, with the count and
// more of the stream's last answer.
func asRange(t *testing.T, r *ChunkReader, chunks [][]*mvccpb.KeyValue, limit int64) *pb.RangeResponse {
	t.Helper()
	out := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: r.Rev()}}
	for _, c := range chunks {
		out.Kvs = append(out.Kvs, c...)
	}
	n, err := r.Count()
	if err != nil {
		t.Fatal(err)
	}
	out.Count = n
	out.More = limit > 0 && n > limit
	return out
}

// TestChunksMatchRange: for every shape of range, concatenating the chunks
// gives Range's answer, whatever the chunk size, with values partly in the
// pending batch and partly in bbolt.
func TestChunksMatchRange(t *testing.T) {
	ts := openTest(t, Options{})
	for i := range 40 {
		ts.mustPut(fmt.Sprintf("k%02d", i), strings.Repeat("v", i*10))
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i += 3 {
		ts.mustPut(fmt.Sprintf("k%02d", i), "new")
	}
	if _, err := ts.do(del("k05", "k08")); err != nil {
		t.Fatal(err)
	}
	reqs := []*pb.RangeRequest{
		rng("k", "l"),
		rng("k10", "k20"),
		get("k11"),
		get("k06"), // deleted
		get("nope"),
		rng("k", "k"), // empty: end <= key
		{Key: []byte("k30"), RangeEnd: []byte{0}},
		{Key: []byte{0}, RangeEnd: []byte{0}},
		{Key: []byte("k"), RangeEnd: []byte("l"), Limit: 7},
		{Key: []byte("k"), RangeEnd: []byte("l"), Limit: 100},
		{Key: []byte("k"), RangeEnd: []byte("l"), Limit: 37}, // the count exactly
		{Key: []byte("k"), RangeEnd: []byte("l"), KeysOnly: true},
		{Key: []byte("k"), RangeEnd: []byte("l"), Revision: 20},
		{Key: []byte("k"), RangeEnd: []byte("l"), Revision: 20, Limit: 5, KeysOnly: true},
	}
	for _, req := range reqs {
		want := ts.mustRange(req)
		for _, maxBytes := range []int{1, 100, 1000, 1 << 20} {
			t.Run(fmt.Sprintf("%s-%s-%d-%d/%d", req.Key, req.RangeEnd, req.Limit, req.Revision, maxBytes), func(t *testing.T) {
				r, err := ts.ReadChunks(req)
				if err != nil {
					t.Fatal(err)
				}
				var chunks [][]*mvccpb.KeyValue
				for !r.Done() {
					kvs, err := r.Next(maxBytes)
					if err != nil {
						t.Fatal(err)
					}
					if len(kvs) == 0 && len(want.Kvs) > 0 {
						t.Fatal("empty chunk in a range with keys")
					}
					size := 0
					for _, kv := range kvs {
						size += responseSize(kv)
					}
					if len(kvs) > 1 && size > maxBytes {
						t.Fatalf("chunk of %d keys in %d bytes, budget %d", len(kvs), size, maxBytes)
					}
					chunks = append(chunks, cloneKVs(kvs))
				}
				got := asRange(t, r, chunks, req.Limit)
				if !proto.Equal(got, want) {
					t.Fatalf("chunks %v\nrange  %v", got, want)
				}
				if maxBytes == 1 && len(chunks) != max(len(want.Kvs), 1) {
					t.Fatalf("%d chunks of one key for %d keys", len(chunks), len(want.Kvs))
				}
			})
		}
	}
}

// TestChunksOneRevision: writes between chunks (new keys, overwrites,
// deletes, a commit) do not show in later chunks: the stream reads at the
// revision it began at.
func TestChunksOneRevision(t *testing.T) {
	ts := openTest(t, Options{})
	for i := range 20 {
		ts.mustPut(fmt.Sprintf("k%02d", i), "old")
	}
	req := rng("k", "l")
	want := ts.mustRange(req)
	n := 0
	chunks, err := readAll(t, ts.Store, req, 1, func(chunk int) {
		n++
		ts.mustPut(fmt.Sprintf("k%02d", 19-chunk), "new")
		ts.mustPut(fmt.Sprintf("k%02da", chunk), "inserted")
		if _, err := ts.do(del(fmt.Sprintf("k%02d", chunk+1), "")); err != nil {
			t.Fatal(err)
		}
		if chunk%5 == 0 {
			if err := ts.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 19 {
		t.Fatalf("%d writes between 20 chunks", n)
	}
	var got []*mvccpb.KeyValue
	for _, c := range chunks {
		got = append(got, c...)
	}
	if !proto.Equal(&pb.RangeResponse{Kvs: got}, &pb.RangeResponse{Kvs: want.Kvs}) {
		t.Fatalf("chunks moved with the writes:\n%v\nwant\n%v", got, want.Kvs)
	}
}

// TestChunksCompaction: a compaction at or below the pinned revision in
// the middle of a stream changes nothing; one above it fails the next
// chunk and the count with ErrCompacted, as etcd 3.7's next txn.Range.
func TestChunksCompaction(t *testing.T) {
	ts := openTest(t, Options{})
	for i := range 10 {
		ts.mustPut(fmt.Sprintf("k%02d", i), "v1")
	}
	for i := range 10 {
		ts.mustPut(fmt.Sprintf("k%02d", i), "v2") // revisions 12..21
	}
	req := &pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), Revision: 15}
	want := ts.mustRange(req)
	chunks, err := readAll(t, ts.Store, req, 1, func(chunk int) {
		if chunk == 2 {
			if _, err := ts.do(&pb.CompactionRequest{Revision: 15}); err != nil {
				t.Fatal(err)
			}
			if err := ts.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if err != nil {
		t.Fatalf("compaction at the pinned revision: %v", err)
	}
	var got []*mvccpb.KeyValue
	for _, c := range chunks {
		got = append(got, c...)
	}
	if !proto.Equal(&pb.RangeResponse{Kvs: got}, &pb.RangeResponse{Kvs: want.Kvs}) {
		t.Fatalf("after compaction at 15:\n%v\nwant\n%v", got, want.Kvs)
	}

	r, err := ts.ReadChunks(&pb.RangeRequest{Key: []byte("k"), RangeEnd: []byte("l"), Revision: 16})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(1); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.do(&pb.CompactionRequest{Revision: 17}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(1); !errors.Is(err, ErrCompacted) {
		t.Fatalf("next chunk after a compaction above the pinned revision: %v, want ErrCompacted", err)
	}
	if _, err := r.Count(); !errors.Is(err, ErrCompacted) {
		t.Fatalf("count after a compaction above the pinned revision: %v, want ErrCompacted", err)
	}
	if _, err := ts.ReadChunks(&pb.RangeRequest{Key: []byte("k"), Revision: 16}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("reader below the compaction: %v", err)
	}
	if _, err := ts.ReadChunks(&pb.RangeRequest{Key: []byte("k"), Revision: 99}); !errors.Is(err, ErrFutureRev) {
		t.Fatalf("reader at a future revision: %v", err)
	}
}

// TestChunksBoundedWalk: with large values the reader does not look up
// far more keys than a chunk returns (the walk follows what chunks use),
// and with tiny ones chunks grow past the first walk.
func TestChunksBoundedWalk(t *testing.T) {
	ts := openTest(t, Options{})
	big := strings.Repeat("x", 1000)
	for i := range 300 {
		ts.mustPut(fmt.Sprintf("b%03d", i), big)
		ts.mustPut(fmt.Sprintf("s%03d", i), "")
	}
	r, err := ts.ReadChunks(rng("b", "c"))
	if err != nil {
		t.Fatal(err)
	}
	for !r.Done() {
		kvs, err := r.Next(3000)
		if err != nil {
			t.Fatal(err)
		}
		if len(kvs) > 3 {
			t.Fatalf("chunk of %d 1 KB values for a 3000 byte budget", len(kvs))
		}
		if r.walk > 2*3+minChunkWalk {
			t.Fatalf("walk %d for chunks of 3 keys", r.walk)
		}
	}
	r, err = ts.ReadChunks(rng("s", "t"))
	if err != nil {
		t.Fatal(err)
	}
	chunks := 0
	for !r.Done() {
		if _, err := r.Next(1 << 20); err != nil {
			t.Fatal(err)
		}
		chunks++
	}
	if chunks > 5 {
		t.Fatalf("%d chunks for 300 tiny keys: the walk did not grow", chunks)
	}
}

// TestChunksReuseBuffer: a chunk's bytes live in one buffer that the next
// chunk reuses, so a long stream allocates about one chunk of key and
// value bytes, not the whole range.
func TestChunksReuseBuffer(t *testing.T) {
	ts := openTest(t, Options{})
	value := strings.Repeat("x", 10<<10)
	for i := range 200 {
		ts.mustPut(fmt.Sprintf("k%03d", i), value)
	}
	if err := ts.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := ts.ReadChunks(rng("k", "l"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(64 << 10); err != nil { // the buffer reaches its size
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for !r.Done() {
		if _, err := r.Next(64 << 10); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	// The values alone are 2 MiB; the KeyValue structs, the chunks'
	// slices, the index walks and bbolt transactions are far less.
	if got := after.TotalAlloc - before.TotalAlloc; got > 512<<10 {
		t.Fatalf("reading 2 MiB of values allocated %d bytes", got)
	}
	if cap(r.arena) > 2*(64<<10)+2*len(value) {
		t.Fatalf("buffer of %d bytes for chunks of 64 KiB", cap(r.arena))
	}
}
