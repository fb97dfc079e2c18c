package raftclient

import (
	"sync/atomic"
	"time"
)

// idGenerator makes request ids as etcd's idutil does: the member's low 16
// bits on top, then a millisecond timestamp taken at start, then a counter,
// so ids differ across members and across restarts of one member.
type idGenerator struct {
	prefix uint64
	suffix atomic.Uint64
}

const (
	tsLen     = 5 * 8
	cntLen    = 8
	suffixLen = tsLen + cntLen
)

func (g *idGenerator) init(memberID uint16, now time.Time) {
	g.prefix = uint64(memberID) << suffixLen
	unixMilli := uint64(now.UnixNano()) / uint64(time.Millisecond)
	g.suffix.Store((unixMilli & (1<<tsLen - 1)) << cntLen)
}

func (g *idGenerator) next() uint64 {
	suffix := g.suffix.Add(1) & (1<<suffixLen - 1)
	return g.prefix | suffix
}
