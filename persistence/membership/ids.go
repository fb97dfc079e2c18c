package membership

import (
	"crypto/sha1"
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
	"time"
)

// NewMemberID derives a member id as etcd does: the first 8 bytes (big
// endian) of the SHA-1 of the sorted peer URLs joined, the cluster token
// and, when now is not nil, its Unix seconds in decimal. --initial-cluster
// members get (urls, token, nil), so the same flags give etcd's ids; a
// MemberAdd gets (urls, "", &now), as etcd 3.4's Cluster service.
func NewMemberID(peerURLs []string, clusterToken string, now *time.Time) uint64 {
	urls := slices.Clone(peerURLs)
	slices.Sort(urls)
	b := []byte(strings.Join(urls, ""))
	b = append(b, clusterToken...)
	if now != nil {
		b = strconv.AppendInt(b, now.Unix(), 10)
	}
	hash := sha1.Sum(b)
	return binary.BigEndian.Uint64(hash[:8])
}

// ClusterID derives the cluster id from the initial member ids, as etcd
// does: SHA-1 of the sorted ids, 8 bytes big endian each.
func ClusterID(memberIDs []uint64) uint64 {
	ids := slices.Clone(memberIDs)
	slices.Sort(ids)
	b := make([]byte, 8*len(ids))
	for i, id := range ids {
		binary.BigEndian.PutUint64(b[8*i:], id)
	}
	hash := sha1.Sum(b)
	return binary.BigEndian.Uint64(hash[:8])
}
