package memberstate

import (
	"sync/atomic"
	"time"

	"github.com/troupedb/troupe/persistence/membership"
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

// MemberID derives a member id from its peer URLs and the cluster token the
// way etcd does, so that the same flags give the same ids as etcd.
func MemberID(peerURLs []string, clusterToken string) uint64 {
	return membership.NewMemberID(peerURLs, clusterToken, nil)
}

// ClusterID derives the cluster id from the member ids, as etcd does.
func ClusterID(memberIDs []uint64) uint64 { return membership.ClusterID(memberIDs) }
