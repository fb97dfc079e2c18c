package mvcc

import "errors"

// Errors a request can get from validation or from the store: the client
// asked for something the store refuses. The API layer turns each into
// etcd's gRPC error named in its doc line (actors/listeners maps them); the
// store's state is fine. Any other error of a write means the backend
// failed (see the package doc).
var (
	// ErrEmptyKey: a request, compare or txn op without a key
	// (etcd's ErrGRPCEmptyKey).
	ErrEmptyKey = errors.New("mvcc: key is not provided")
	// ErrKeyNotFound: ignore_value or ignore_lease on a key that does not
	// exist, or a txn op without a request (ErrGRPCKeyNotFound).
	ErrKeyNotFound = errors.New("mvcc: key not found")
	// ErrValueProvided: a put with ignore_value and a value
	// (ErrGRPCValueProvided).
	ErrValueProvided = errors.New("mvcc: value is provided")
	// ErrLeaseProvided: a put with ignore_lease and a lease
	// (ErrGRPCLeaseProvided).
	ErrLeaseProvided = errors.New("mvcc: lease is provided")
	// ErrTooManyOps: a txn with more compares or ops in a branch than
	// allowed (ErrGRPCTooManyOps).
	ErrTooManyOps = errors.New("mvcc: too many operations in txn request")
	// ErrDuplicateKey: a txn branch writes a key twice, or puts a key it
	// also deletes (ErrGRPCDuplicateKey).
	ErrDuplicateKey = errors.New("mvcc: duplicate key given in txn request")
	// ErrInvalidSortOption: a range with a sort target etcd does not know
	// (ErrGRPCInvalidSortOption).
	ErrInvalidSortOption = errors.New("mvcc: invalid sort option")
	// ErrCompacted: the revision asked for (a read, a compaction, a hash,
	// watch history) is compacted away (ErrGRPCCompacted).
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	// ErrFutureRev: the revision asked for is above the current one
	// (ErrGRPCFutureRev).
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")
	// ErrLeaseNotFound: a lease that does not exist, or lease id 0 in a
	// grant (ErrGRPCLeaseNotFound).
	ErrLeaseNotFound = errors.New("mvcc: requested lease not found")
	// ErrLeaseExists: a grant of a lease id in use (ErrGRPCLeaseExist).
	ErrLeaseExists = errors.New("mvcc: lease already exists")
	// ErrLeaseTTLTooLarge: a grant with a TTL above MaxLeaseTTL
	// (ErrGRPCLeaseTTLTooLarge).
	ErrLeaseTTLTooLarge = errors.New("mvcc: too large lease TTL")
)
