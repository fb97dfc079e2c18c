package alarm

import "errors"

// Errors with which Check refuses a request while an alarm is active. The
// API layer turns each into etcd's gRPC error named in its doc line.
var (
	// ErrNoSpace: a NOSPACE alarm is active and the request adds data;
	// the applier also answers it for a write that took the backend past
	// its quota (etcd's ErrGRPCNoSpace).
	ErrNoSpace = errors.New("alarm: database space exceeded")
	// ErrCorrupt: a CORRUPT alarm is active and the request writes
	// (ErrGRPCCorrupt).
	ErrCorrupt = errors.New("alarm: corrupt cluster")
)
