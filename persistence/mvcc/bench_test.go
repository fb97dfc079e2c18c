package mvcc

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// BenchmarkPut measures one applied Put, the batch committed every 1000
// puts (about what 100 ms holds at 10k puts/s), by Commit (the writer
// waits for bbolt and its fsyncs) or by CommitAsync (it does not). bbolt
// syncs, as in production. Besides ns/op it reports the writer's p99,
// p99.9 and maximum latency per put: the commit's cost lands on one put
// in 1000.
func BenchmarkPut(b *testing.B) {
	for _, mode := range []string{"Commit", "CommitAsync"} {
		b.Run(mode, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "db"), Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = s.Close() }()
			commit := s.Commit
			if mode == "CommitAsync" {
				commit = s.CommitAsync
			}
			benchPuts(b, s, commit)
		})
	}
}

func benchPuts(b *testing.B, s *Store, commit func() error) {
	keys := make([][]byte, 10000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key/%08d", i)
	}
	val := make([]byte, 256)
	lat := make([]time.Duration, 0, b.N)
	index := s.ConsistentIndex()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		index++
		if _, err := s.Put(index, &pb.PutRequest{Key: keys[i%len(keys)], Value: val}); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			if err := commit(); err != nil {
				b.Fatal(err)
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	b.ReportMetric(float64(lat[len(lat)*999/1000].Nanoseconds()), "p99.9-ns")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
}

// BenchmarkTxnPut measures one applied txn of one put to one of 10k
// committed keys, with no compare and with a compare of the key's mod
// revision (the common txn: update a key unless it changed), the batch
// committed every 1000 txns in the background.
func BenchmarkTxnPut(b *testing.B) {
	for _, compare := range []bool{false, true} {
		name := "no-compare"
		if compare {
			name = "compare-mod"
		}
		b.Run(name, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "db"), Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = s.Close() }()
			keys := make([][]byte, 10000)
			val := make([]byte, 256)
			index := s.ConsistentIndex()
			for i := range keys {
				keys[i] = fmt.Appendf(nil, "key/%08d", i)
				index++
				if _, err := s.Put(index, &pb.PutRequest{Key: keys[i], Value: val}); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Commit(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for i := 0; i < b.N; i++ {
				req := &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: keys[i%len(keys)], Value: val}}}}}
				if compare {
					req.Compare = []*pb.Compare{{Key: keys[i%len(keys)], Target: pb.Compare_MOD, Result: pb.Compare_GREATER, TargetUnion: &pb.Compare_ModRevision{ModRevision: 0}}}
				}
				index++
				resp, err := s.Txn(index, req)
				if err != nil || !resp.Succeeded {
					b.Fatal(resp, err)
				}
				if i%1000 == 999 {
					if err := s.CommitAsync(); err != nil {
						b.Fatal(err)
					}
				}
			}
			// The process's CPU time: a loaded machine slows the wall
			// clock, not this.
			b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time the process used so far (user + system).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRange measures reading one key, and 100 keys, of 10k committed
// keys from parallel goroutines.
func BenchmarkRange(b *testing.B) {
	ts := openTest(b, Options{})
	for i := 0; i < 10000; i++ {
		ts.mustPut(fmt.Sprintf("key/%08d", i), "value")
	}
	if err := ts.Commit(); err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb_ *testing.PB) {
				i := 0
				for pb_.Next() {
					i++
					k := i * 7919 % (10000 - n)
					req := &pb.RangeRequest{Key: fmt.Appendf(nil, "key/%08d", k)}
					if n > 1 {
						req.RangeEnd = fmt.Appendf(nil, "key/%08d", k+n)
					}
					resp, err := ts.Range(req)
					if err != nil || len(resp.Kvs) != n {
						b.Fatal(err, len(resp.Kvs))
					}
				}
			})
		})
	}
}

// BenchmarkOpen measures Open of a file holding 1M keys of 256-byte
// values (one revision each, as written by 1M puts): the time from
// nothing in memory to a store that serves. The file is written once,
// straight into bbolt, and closed by a Store as a member's stop does.
func BenchmarkOpen(b *testing.B) {
	path := filepath.Join(b.TempDir(), "db")
	writeKeysFile(b, path, 1_000_000)
	lg := slog.New(slog.DiscardHandler)
	s, err := Open(path, Options{Logger: lg, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := Open(path, Options{Logger: lg, NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// writeKeysFile writes n distinct keys with 256-byte values at revisions
// 2..n+1 into a new bbolt file at path, as n puts would have.
func writeKeysFile(b *testing.B, path string, n int) {
	b.Helper()
	s, err := Open(path, Options{Logger: slog.New(slog.DiscardHandler), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	db := s.db
	val := make([]byte, 256)
	const perTx = 100_000
	for from := 0; from < n; from += perTx {
		err := db.Update(func(tx *bolt.Tx) error {
			kb := tx.Bucket(keyBucket)
			kb.FillPercent = 0.9
			for i := from; i < min(n, from+perTx); i++ {
				rev := int64(i + 2)
				kv := &mvccpb.KeyValue{Key: fmt.Appendf(nil, "restart/%012d", i), Value: val, CreateRevision: rev, ModRevision: rev, Version: 1}
				if err := kb.Put(bucketKey(revision{main: rev}, false), encodeKV(kv)); err != nil {
					return err
				}
			}
			var ci [8]byte
			binary.BigEndian.PutUint64(ci[:], uint64(min(n, from+perTx)+1))
			return tx.Bucket(metaBucket).Put(consistentIndexKey, ci[:])
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
}

// allocationStore opens a store for the allocation tests with the 1,000
// keys they write and a 256-byte value.
func allocationStore(t *testing.T) (ts *testStore, keys [][]byte, val []byte) {
	t.Helper()
	ts = openTest(t, Options{})
	keys = make([][]byte, 1000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key/%08d", i)
	}
	return ts, keys, make([]byte, 256)
}

// TestPutAllocations bounds what one applied put of an existing key
// allocates in the store (its KeyValue, its pending batch entry, its
// response): each allocation is paid again in GC work on the request
// path, and an unnoticed extra one per put is what this guards against.
// With a Changed hook, as on a member, the put's watch event shares its
// KeyValue's allocation and the write's event list is reused (were two
// more allocations).
func TestPutAllocations(t *testing.T) {
	for _, hook := range []bool{false, true} {
		t.Run(fmt.Sprint("changed-hook=", hook), func(t *testing.T) {
			ts, keys, val := allocationStore(t)
			if hook {
				events := 0
				ts.changed = func(_ int64, evs []*mvccpb.Event) { events += len(evs) }
			}
			index := ts.ConsistentIndex()
			put := func(k []byte) {
				index++
				if _, err := ts.Put(index, &pb.PutRequest{Key: k, Value: val}); err != nil {
					t.Fatal(err)
				}
			}
			for _, k := range keys {
				put(k)
			}
			i := 0
			if n := testing.AllocsPerRun(1000, func() { i++; put(keys[i%len(keys)]) }); n > 4 {
				t.Errorf("a put allocates %v times, want at most 4", n)
			}
		})
	}
}

// TestTxnPutAllocations bounds what a txn of one put of an existing key
// allocates: the test's request (5 objects) and in the store 3, the
// put's KeyValue and batch entry and the whole answer (the txn response,
// its list and the put's answer in one object; were six objects with the
// compare path's, which now stays on the stack). A compare of the key's
// mod revision adds only its request's 2 (the compare and its oneof
// wrapper): it reads the key index, not the value (was three more).
func TestTxnPutAllocations(t *testing.T) {
	ts, keys, val := allocationStore(t)
	index := ts.ConsistentIndex()
	txn := func(k []byte, compare bool) {
		index++
		req := &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: k, Value: val}}}}}
		if compare {
			req.Compare = []*pb.Compare{{Key: k, Target: pb.Compare_MOD, Result: pb.Compare_GREATER, TargetUnion: &pb.Compare_ModRevision{ModRevision: 0}}}
		}
		resp, err := ts.Txn(index, req)
		if err != nil || !resp.Succeeded || resp.Responses[0].GetResponsePut().GetHeader().GetRevision() != resp.Header.Revision {
			t.Fatal(resp, err)
		}
	}
	for _, k := range keys {
		txn(k, false)
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() { i++; txn(keys[i%len(keys)], false) }); n > 8 {
		t.Errorf("a txn of one put allocates %v times, want at most 8", n)
	}
	if n := testing.AllocsPerRun(1000, func() { i++; txn(keys[i%len(keys)], true) }); n > 10 {
		t.Errorf("a txn of a mod compare and one put allocates %v times, want at most 10", n)
	}
}
