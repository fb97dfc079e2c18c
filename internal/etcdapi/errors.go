package etcdapi

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/troupedb/troupe/persistence/alarm"
	"github.com/troupedb/troupe/persistence/auth"
	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// grpcErrors maps the persistence packages' client errors to what etcd
// 3.4 sends for them, in the order toGRPC tries them.
var grpcErrors = []struct {
	err  error
	grpc error
}{
	{mvcc.ErrEmptyKey, rpctypes.ErrGRPCEmptyKey},
	{mvcc.ErrKeyNotFound, rpctypes.ErrGRPCKeyNotFound},
	{mvcc.ErrValueProvided, rpctypes.ErrGRPCValueProvided},
	{mvcc.ErrLeaseProvided, rpctypes.ErrGRPCLeaseProvided},
	{mvcc.ErrTooManyOps, rpctypes.ErrGRPCTooManyOps},
	{mvcc.ErrDuplicateKey, rpctypes.ErrGRPCDuplicateKey},
	{mvcc.ErrInvalidSortOption, rpctypes.ErrGRPCInvalidSortOption},
	{mvcc.ErrCompacted, rpctypes.ErrGRPCCompacted},
	{mvcc.ErrFutureRev, rpctypes.ErrGRPCFutureRev},
	{mvcc.ErrLeaseNotFound, rpctypes.ErrGRPCLeaseNotFound},
	{mvcc.ErrLeaseExists, rpctypes.ErrGRPCLeaseExist},
	{mvcc.ErrLeaseTTLTooLarge, rpctypes.ErrGRPCLeaseTTLTooLarge},

	{alarm.ErrNoSpace, rpctypes.ErrGRPCNoSpace},
	{alarm.ErrCorrupt, rpctypes.ErrGRPCCorrupt},

	{membership.ErrIDRemoved, rpctypes.ErrGRPCMemberNotFound},
	{membership.ErrIDNotFound, rpctypes.ErrGRPCMemberNotFound},
	{membership.ErrIDExists, rpctypes.ErrGRPCMemberExist},
	{membership.ErrPeerURLExists, rpctypes.ErrGRPCPeerURLExist},
	{membership.ErrMemberNotLearner, rpctypes.ErrGRPCMemberNotLearner},
	{membership.ErrTooManyLearners, rpctypes.ErrGRPCTooManyLearners},
	{membership.ErrBadURLs, rpctypes.ErrGRPCMemberBadURLs},
	{membership.ErrNotEnoughStarted, errNotEnoughStarted},
	{membership.ErrLearnerNotReady, rpctypes.ErrGRPCLearnerNotReady},
	{membership.ErrUnhealthy, rpctypes.ErrGRPCUnhealthy},

	// the ones etcd's togRPCError knows; the others reach clients as
	// Unknown with the error's text, as etcd's do
	{auth.ErrRootUserNotExist, rpctypes.ErrGRPCRootUserNotExist},
	{auth.ErrRootRoleNotExist, rpctypes.ErrGRPCRootRoleNotExist},
	{auth.ErrUserAlreadyExist, rpctypes.ErrGRPCUserAlreadyExist},
	{auth.ErrUserEmpty, rpctypes.ErrGRPCUserEmpty},
	{auth.ErrUserNotFound, rpctypes.ErrGRPCUserNotFound},
	{auth.ErrRoleAlreadyExist, rpctypes.ErrGRPCRoleAlreadyExist},
	{auth.ErrRoleNotFound, rpctypes.ErrGRPCRoleNotFound},
	{auth.ErrRoleEmpty, rpctypes.ErrGRPCRoleEmpty},
	{auth.ErrAuthFailed, rpctypes.ErrGRPCAuthFailed},
	{auth.ErrPermissionNotGiven, rpctypes.ErrGRPCPermissionNotGiven},
	{auth.ErrPermissionDenied, rpctypes.ErrGRPCPermissionDenied},
	{auth.ErrRoleNotGranted, rpctypes.ErrGRPCRoleNotGranted},
	{auth.ErrPermissionNotGranted, rpctypes.ErrGRPCPermissionNotGranted},
	{auth.ErrAuthNotEnabled, rpctypes.ErrGRPCAuthNotEnabled},
	{auth.ErrInvalidAuthToken, rpctypes.ErrGRPCInvalidAuthToken},
	{auth.ErrInvalidAuthMgmt, rpctypes.ErrGRPCInvalidAuthMgmt},
	{auth.ErrAuthOldRevision, rpctypes.ErrGRPCAuthOldRevision},

	{context.DeadlineExceeded, rpctypes.ErrGRPCTimeout},
	{context.Canceled, rpctypes.ErrGRPCCanceled},
}

// toGRPC maps an error of the persistence packages (mvcc, alarm,
// membership, auth) or of a context to the gRPC error etcd 3.4 sends for it, the
// same code and message. Any other error, nil included, is returned as it
// is: gRPC errors made by the actors pass through, and a backend failure
// reaches the client as etcd's would, code Unknown.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	for _, e := range grpcErrors {
		if errors.Is(err, e.err) {
			return e.grpc
		}
	}
	return err
}
