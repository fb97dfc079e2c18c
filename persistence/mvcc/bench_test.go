package mvcc

import (
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// BenchmarkPut measures one applied Put, the batch committed every 1000
// puts (about what 100 ms holds at 10k puts/s).
func BenchmarkPut(b *testing.B) {
	ts := openTest(b, Options{})
	keys := make([][]byte, 10000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key/%08d", i)
	}
	val := make([]byte, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ts.index++
		if _, err := ts.Put(ts.index, &pb.PutRequest{Key: keys[i%len(keys)], Value: val}); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			if err := ts.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
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
