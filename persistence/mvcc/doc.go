// Package mvcc is troupe's multi-version key-value store: etcd v3.4's MVCC
// semantics on a bbolt file with etcd's on-disk layout.
//
// # Layout
//
// The bbolt file has etcd's buckets ("key", "meta", "lease", "alarm",
// "members", "members_removed", "cluster", "auth", "authUsers",
// "authRoles"). Each version of a key is one entry of the "key" bucket:
// the bbolt key is the revision (main as 8 bytes big-endian, '_', sub as 8
// bytes big-endian, plus a trailing 't' for a tombstone) and the value is a
// marshalled mvccpb.KeyValue. "meta" holds "consistent_index" (8 bytes
// big-endian) and "scheduledCompactRev"/"finishedCompactRev" (revision
// encoding), so an etcd snapshot can be opened here and ours by etcd tools.
//
// # Index
//
// An in-memory btree maps each key to its generations of revisions (a
// tombstone ends a generation), as etcd's treeIndex. It is rebuilt on Open
// by scanning the "key" bucket.
//
// # Write batching
//
// Writes are not committed to bbolt one by one. Each write lands in an
// in-memory pending batch (bucket key -> value, plus deletes made by
// compaction, plus the consistent index) that readers consult before bbolt.
// Commit writes the whole batch and the consistent index in ONE bbolt
// transaction, so after a crash the applied index on disk always matches the
// data on disk and replaying the raft log never applies an entry twice. A
// write that makes the batch reach Options.BatchLimit commits it at once;
// the applier also calls Commit periodically (every 100 ms).
//
// # Concurrency
//
// Writes (Put, DeleteRange, Txn, Compact, SetConsistentIndex, Commit,
// Close) must come from ONE goroutine, the applier: the store does not
// order concurrent writers. Reads (Range, Rev, CompactRev,
// ConsistentIndex, DBSize) are safe from any number of goroutines at the
// same time as that writer. A write holds the store's write lock while it
// changes the index and the pending batch; a read holds the read lock while
// it looks up revisions in the index and fetches their values from the
// pending batch or from a bbolt read transaction. Commit writes bbolt first
// without the lock (the batch cannot change: only the writer goroutine
// changes it) and then takes the write lock to drop the committed batch, so
// a reader always finds each revision either in the batch or in bbolt.
//
// # Errors
//
// Client-visible errors are returned as etcd's own rpctypes.ErrGRPC* values,
// so the gRPC layer passes them on unchanged. Any other error means the
// backend file failed; the caller must stop applying and crash (its state
// can no longer be trusted).
package mvcc
