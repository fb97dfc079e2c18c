package mvcc

import (
	"fmt"
	"testing"
)

// BenchmarkGetOrCreate finds the keyIndex a put writes in an index of
// 100k keys loaded at Open (in the tree, not in the map): a new key, a
// key from Open written for the first time, and a key written before (in
// the map).
func BenchmarkGetOrCreate(b *testing.B) {
	const loaded = 100_000
	key := func(i int) []byte { return fmt.Appendf(nil, "key/%08d", i) }
	setup := func() *treeIndex {
		t := newTreeIndex()
		for i := range loaded {
			t.insert(&keyIndex{key: string(key(2 * i))}) // the even keys
		}
		return t
	}
	for _, c := range []struct {
		name string
		key  func(i int) []byte
	}{
		{"new", func(i int) []byte { return key(2*(i%loaded) + 1) }},
		{"from-open", func(i int) []byte { return key(2 * (i % loaded)) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			keys := make([][]byte, min(b.N, loaded))
			for i := range keys {
				keys[i] = c.key(i)
			}
			t := setup()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i > 0 && i%loaded == 0 {
					b.StopTimer()
					t = setup()
					b.StartTimer()
				}
				if ki := t.getOrCreate(keys[i%len(keys)]); ki == nil {
					b.Fatal("no keyIndex")
				}
			}
		})
	}
	b.Run("written", func(b *testing.B) {
		t := setup()
		keys := make([][]byte, 10_000)
		for i := range keys {
			keys[i] = key(2 * i)
			t.getOrCreate(keys[i])
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if ki := t.getOrCreate(keys[i%len(keys)]); ki == nil {
				b.Fatal("no keyIndex")
			}
		}
	})
}
