package raftclient

import (
	"testing"
	"time"
)

func TestRequestIDsUnique(t *testing.T) {
	var g idGenerator
	g.init(7, time.Unix(1700000000, 0))
	seen := map[uint64]bool{}
	for i := 0; i < 10000; i++ {
		id := g.next()
		if seen[id] || id>>suffixLen != 7 {
			t.Fatalf("id %x repeated or without member prefix", id)
		}
		seen[id] = true
	}
}
