package etcdapi

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/troupedb/troupe/persistence/alarm"
	"github.com/troupedb/troupe/persistence/membership"
	"github.com/troupedb/troupe/persistence/mvcc"
)

// toGRPCTable is what etcd 3.4 sends for each client error of the
// persistence packages, by the sentinels' names (see
// TestToGRPCCoversEverySentinel), with the code and message for a reader.
var toGRPCTable = []struct {
	name string
	err  error
	want error
	code codes.Code
	msg  string
}{
	{"mvcc.ErrEmptyKey", mvcc.ErrEmptyKey, rpctypes.ErrGRPCEmptyKey, codes.InvalidArgument, "etcdserver: key is not provided"},
	{"mvcc.ErrKeyNotFound", mvcc.ErrKeyNotFound, rpctypes.ErrGRPCKeyNotFound, codes.InvalidArgument, "etcdserver: key not found"},
	{"mvcc.ErrValueProvided", mvcc.ErrValueProvided, rpctypes.ErrGRPCValueProvided, codes.InvalidArgument, "etcdserver: value is provided"},
	{"mvcc.ErrLeaseProvided", mvcc.ErrLeaseProvided, rpctypes.ErrGRPCLeaseProvided, codes.InvalidArgument, "etcdserver: lease is provided"},
	{"mvcc.ErrTooManyOps", mvcc.ErrTooManyOps, rpctypes.ErrGRPCTooManyOps, codes.InvalidArgument, "etcdserver: too many operations in txn request"},
	{"mvcc.ErrDuplicateKey", mvcc.ErrDuplicateKey, rpctypes.ErrGRPCDuplicateKey, codes.InvalidArgument, "etcdserver: duplicate key given in txn request"},
	{"mvcc.ErrInvalidSortOption", mvcc.ErrInvalidSortOption, rpctypes.ErrGRPCInvalidSortOption, codes.InvalidArgument, "etcdserver: invalid sort option"},
	{"mvcc.ErrCompacted", mvcc.ErrCompacted, rpctypes.ErrGRPCCompacted, codes.OutOfRange, "etcdserver: mvcc: required revision has been compacted"},
	{"mvcc.ErrFutureRev", mvcc.ErrFutureRev, rpctypes.ErrGRPCFutureRev, codes.OutOfRange, "etcdserver: mvcc: required revision is a future revision"},
	{"mvcc.ErrLeaseNotFound", mvcc.ErrLeaseNotFound, rpctypes.ErrGRPCLeaseNotFound, codes.NotFound, "etcdserver: requested lease not found"},
	{"mvcc.ErrLeaseExists", mvcc.ErrLeaseExists, rpctypes.ErrGRPCLeaseExist, codes.FailedPrecondition, "etcdserver: lease already exists"},
	{"mvcc.ErrLeaseTTLTooLarge", mvcc.ErrLeaseTTLTooLarge, rpctypes.ErrGRPCLeaseTTLTooLarge, codes.OutOfRange, "etcdserver: too large lease TTL"},

	{"alarm.ErrNoSpace", alarm.ErrNoSpace, rpctypes.ErrGRPCNoSpace, codes.ResourceExhausted, "etcdserver: mvcc: database space exceeded"},
	{"alarm.ErrCorrupt", alarm.ErrCorrupt, rpctypes.ErrGRPCCorrupt, codes.DataLoss, "etcdserver: corrupt cluster"},

	{"membership.ErrIDRemoved", membership.ErrIDRemoved, rpctypes.ErrGRPCMemberNotFound, codes.NotFound, "etcdserver: member not found"},
	{"membership.ErrIDNotFound", membership.ErrIDNotFound, rpctypes.ErrGRPCMemberNotFound, codes.NotFound, "etcdserver: member not found"},
	{"membership.ErrIDExists", membership.ErrIDExists, rpctypes.ErrGRPCMemberExist, codes.FailedPrecondition, "etcdserver: member ID already exist"},
	{"membership.ErrPeerURLExists", membership.ErrPeerURLExists, rpctypes.ErrGRPCPeerURLExist, codes.FailedPrecondition, "etcdserver: Peer URLs already exists"},
	{"membership.ErrMemberNotLearner", membership.ErrMemberNotLearner, rpctypes.ErrGRPCMemberNotLearner, codes.FailedPrecondition, "etcdserver: can only promote a learner member"},
	{"membership.ErrTooManyLearners", membership.ErrTooManyLearners, rpctypes.ErrGRPCTooManyLearners, codes.FailedPrecondition, "etcdserver: too many learner members in cluster"},
	{"membership.ErrBadURLs", membership.ErrBadURLs, rpctypes.ErrGRPCMemberBadURLs, codes.InvalidArgument, "etcdserver: given member URLs are invalid"},
	{"membership.ErrNotEnoughStarted", membership.ErrNotEnoughStarted, errNotEnoughStarted, codes.Unknown, "etcdserver: re-configuration failed due to not enough started members"},
	{"membership.ErrLearnerNotReady", membership.ErrLearnerNotReady, rpctypes.ErrGRPCLearnerNotReady, codes.FailedPrecondition, "etcdserver: can only promote a learner member which is in sync with leader"},
	{"membership.ErrUnhealthy", membership.ErrUnhealthy, rpctypes.ErrGRPCUnhealthy, codes.Unavailable, "etcdserver: unhealthy cluster"},

	{"context.DeadlineExceeded", context.DeadlineExceeded, rpctypes.ErrGRPCTimeout, codes.Unavailable, "etcdserver: request timed out"},
	{"context.Canceled", context.Canceled, rpctypes.ErrGRPCCanceled, codes.Canceled, "etcdserver: request canceled"},
}

// notClientErrors are the persistence sentinels a client never gets:
// toGRPC passes them on unchanged.
var notClientErrors = map[string]error{
	"mvcc.ErrAlreadyApplied":   mvcc.ErrAlreadyApplied,
	"membership.ErrBadContext": membership.ErrBadContext,
	// a start-up refusal of --force-new-cluster, never a request's
	"membership.ErrForceLearner": membership.ErrForceLearner,
}

func TestToGRPC(t *testing.T) {
	for _, tc := range toGRPCTable {
		for _, err := range []error{tc.err, fmt.Errorf("context: %w", tc.err)} {
			got := toGRPC(err)
			if got != tc.want { // the very value rpctypes holds, not one like it
				t.Errorf("toGRPC(%v) = %v, want %v", err, got, tc.want)
			}
			if st := status.Convert(got); st.Code() != tc.code || st.Message() != tc.msg {
				t.Errorf("toGRPC(%v) = %s %q, want %s %q", err, st.Code(), st.Message(), tc.code, tc.msg)
			}
		}
	}
	other := errors.New("bbolt: file failed")
	for _, err := range []error{nil, other, rpctypes.ErrGRPCNoLeader, notClientErrors["mvcc.ErrAlreadyApplied"], notClientErrors["membership.ErrBadContext"]} {
		if got := toGRPC(err); got != err { // passed on as it is
			t.Errorf("toGRPC(%v) = %v, want it unchanged", err, got)
		}
	}
}

// TestToGRPCCoversEverySentinel reads the Err* variables the persistence
// packages declare: each must be in toGRPCTable or notClientErrors, so a
// new sentinel cannot reach a client unmapped.
func TestToGRPCCoversEverySentinel(t *testing.T) {
	known := map[string]bool{}
	for _, tc := range toGRPCTable {
		known[tc.name] = true
	}
	for name := range notClientErrors {
		known[name] = true
	}
	for _, pkg := range []string{"mvcc", "alarm", "membership"} {
		files, err := filepath.Glob(filepath.Join("..", "..", "persistence", pkg, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("persistence/%s: %v", pkg, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			for _, name := range sentinelNames(t, f) {
				if !known[pkg+"."+name] {
					t.Errorf("%s.%s (%s) is neither mapped by toGRPC nor listed as not a client error", pkg, name, f)
				}
			}
		}
	}
}

// sentinelNames returns the exported package-level variables of file
// whose names start with Err.
func sentinelNames(t *testing.T, file string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR {
			continue
		}
		for _, s := range g.Specs {
			for _, n := range s.(*ast.ValueSpec).Names {
				if n.IsExported() && strings.HasPrefix(n.Name, "Err") {
					names = append(names, n.Name)
				}
			}
		}
	}
	return names
}
