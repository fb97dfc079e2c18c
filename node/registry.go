package node

import cmap "github.com/orcaman/concurrent-map"

// protoactor's process registry is 1,024 buckets, each a concurrent map of
// cmap.SHARD_COUNT (32) shards: 32,768 maps and 8 MiB of heap, marked by
// every GC cycle, for a member that runs a few dozen actors. The
// registry's 1,024 buckets already spread its locks; one shard each is
// enough. Set before any actor system is created.
func init() { cmap.SHARD_COUNT = 1 }
