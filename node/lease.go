package node

import (
	"math"
	"time"
)

// minLeaseTTL is the smallest lease TTL granted, in seconds, as etcd
// computes it: (3 * election ticks / 2) heartbeats, rounded up, so that a
// lease outlives a leader election.
func (c *Config) minLeaseTTL() int64 {
	if c.HeartbeatInterval <= 0 {
		return 1
	}
	ticks := int(c.ElectionTimeout / c.HeartbeatInterval)
	d := time.Duration((3*ticks)/2) * c.HeartbeatInterval
	return int64(math.Ceil(d.Seconds()))
}
