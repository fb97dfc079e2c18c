package node

import "github.com/troupedb/troupe/actors/core"

// WALPath is where the member's WAL lives: WALDir (--wal-dir), or
// <data-dir>/member/wal as etcd lays it out.
func (c *Config) WALPath() string { return core.WALPath(c.DataDir, c.WALDir) }
