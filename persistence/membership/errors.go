package membership

import "errors"

// Errors of membership changes. Each names the etcd error it stands for;
// the API layer turns them into etcd's gRPC errors.
var (
	// ErrIDRemoved: the id was removed before and cannot come back
	// (etcd's membership.ErrIDRemoved, "member not found" to clients).
	ErrIDRemoved = errors.New("membership: ID removed")
	// ErrIDExists: a member with the id exists (ErrGRPCMemberExist).
	ErrIDExists = errors.New("membership: ID exists")
	// ErrIDNotFound: no member with the id (ErrGRPCMemberNotFound).
	ErrIDNotFound = errors.New("membership: ID not found")
	// ErrPeerURLExists: another member has one of the peer URLs
	// (ErrGRPCPeerURLExist).
	ErrPeerURLExists = errors.New("membership: peerURL exists")
	// ErrMemberNotLearner: promoting a voting member
	// (ErrGRPCMemberNotLearner).
	ErrMemberNotLearner = errors.New("membership: can only promote a learner member")
	// ErrTooManyLearners: adding a learner past MaxLearners
	// (ErrGRPCTooManyLearners).
	ErrTooManyLearners = errors.New("membership: too many learner members in cluster")
	// ErrBadURLs: peer URLs that do not parse (ErrGRPCMemberBadURLs).
	ErrBadURLs = errors.New("membership: given member URLs are invalid")
	// ErrNotEnoughStarted: the change would leave fewer started voting
	// members than a quorum (etcd's ErrNotEnoughStartedMembers).
	ErrNotEnoughStarted = errors.New("membership: re-configuration failed due to not enough started members")
	// ErrLearnerNotReady: the learner's log is behind the leader's
	// (ErrGRPCLearnerNotReady).
	ErrLearnerNotReady = errors.New("membership: can only promote a learner member which is in sync with leader")
	// ErrUnhealthy: this member has not been connected to enough voting
	// peers for HealthInterval (ErrGRPCUnhealthy).
	ErrUnhealthy = errors.New("membership: unhealthy cluster")
	// ErrBadContext: a conf change whose context is not a member record;
	// a bug or a foreign entry, never a client error.
	ErrBadContext = errors.New("membership: bad conf change context")
)
