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
// "lease" maps a lease id (8 bytes big-endian) to etcd's marshalled
// leasepb.Lease {ID, TTL, RemainingTTL} (see lease.go).
//
// # Leases
//
// The store keeps every lease and the live keys attached to it in memory,
// rebuilt on Open from the "lease" bucket and the last version of each key
// in the "key" bucket. LeaseGrant, LeaseRevoke and LeaseCheckpoint are
// writes like Put: their bucket changes go in the pending batch with the
// raft index. A put with a lease attaches the key, an overwrite without it
// or a delete detaches it; LeaseRevoke deletes the lease's keys in one
// write at one revision. Expiry is not the store's business: the lessor
// actor decides it and proposes revokes.
//
// # Auth
//
// The "auth", "authUsers" and "authRoles" buckets hold etcd's auth store
// (format in persistence/auth). Open writes etcd's initial auth revision 1
// into a backend that has none, as etcd's NewAuthStore; ApplyAuth puts an
// auth request's writes in the pending batch with the raft index, and
// LoadAuth reads the buckets back, uncommitted batches included.
//
// # Index
//
// An in-memory btree maps each key to its generations of revisions (a
// tombstone ends a generation), as etcd's treeIndex; a hash map beside it
// finds a key written since Open without walking the tree (every put,
// most one-key reads). Open rebuilds the tree from
// the index checkpoint a clean Close left in the troupe-only bucket
// "troupe_key_index" when the file still matches it, else by scanning the
// "key" bucket (decoding every revision, as etcd does on every start).
// Open deletes the checkpoint before anything else writes, so the bucket
// exists only in a closed file and a crash can never leave a stale one
// behind; indexcheckpoint.go has the rule in full.
//
// # Compaction
//
// A compaction at rev keeps, of each key, the newest revision <= rev of
// the generation alive at rev, as etcd 3.6: when that is a tombstone at
// rev itself it stays (in the index and in the file, so a watch from rev
// gets the delete) until the next compaction; etcd 3.4 dropped it at
// once. Open rebuilds such a key from its lone tombstone.
//
// # Write batching: the three places a value can be
//
// Writes are not committed to bbolt one by one. Each write lands in an
// in-memory pending batch (bucket key -> value, plus deletes made by
// compaction, plus the raft index of the last entry applied into it). A
// commit writes a whole batch and that index in ONE bbolt transaction, so
// after a crash the applied index on disk never names an entry whose data
// is not on disk, and replaying the raft log never applies an entry twice.
//
// CommitAsync does that without blocking the writer: it turns the pending
// batch into the committing batch, starts a new empty pending batch for
// the writes that follow, and writes the committing batch on a goroutine
// of the store. So a value is in exactly one of three places: the pending
// batch, the committing batch, or bbolt; readers look in that order. The
// committing batch is dropped, under the write lock, only after its bbolt
// transaction committed, so a revision never falls between two places. One
// batch commits at a time and batches commit in order: a compaction's
// deletes of revisions committing or committed go into the pending batch,
// after the batch that put them. CommitAsync while a commit runs does
// nothing (the next call takes the grown batch). Commit waits for a
// running commit and then writes the pending batch before it returns;
// Close waits, commits and closes.
//
// A write that makes the pending batch reach Options.BatchLimit starts a
// background commit; if one is still running when the batch reaches four
// times the limit, the write waits for it, which bounds memory. The
// applier also commits periodically (every 100 ms).
//
// # Concurrency
//
// Writes (Put, DeleteRange, Txn, Compact, LeaseGrant, LeaseRevoke,
// LeaseCheckpoint, SetConsistentIndex, Commit, CommitAsync, Close) must come
// from ONE goroutine, the applier: the store does not order concurrent
// writers. Reads (Range, Rev, CompactRev, ConsistentIndex, DBSize, Leases,
// Lease) are safe from any number of goroutines at the
// same time as that writer and the commit goroutine. A write holds the
// store's write lock while it changes the index and the pending batch; a
// read holds the read lock while it looks up revisions in the index and
// takes their values from the pending or committing batch or from a bbolt
// read transaction for the rest: one shared by all readers and renewed by
// every bbolt write (readtx.go). A commit writes bbolt without the lock
// (nobody changes a committing batch) and then takes the write lock to
// drop the batch.
//
// # Errors
//
// Client-visible errors are this package's sentinels (errors.go: ErrEmptyKey,
// ErrCompacted, ErrLeaseNotFound, ...); the API layer maps them to etcd's
// gRPC errors. ErrAlreadyApplied tells the applier an entry was skipped.
// Any other error means the backend file failed; the caller must stop applying and crash (its state
// can no longer be trusted). A failed commit, background or not, is
// sticky: every later Put, DeleteRange, Txn, Compact, Commit, CommitAsync
// and Close returns it, and
// nothing more is committed (reads still see the batch that failed).
package mvcc
