package actorclient

import (
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestCancelErrorKeepsTheMembersStatus(t *testing.T) {
	for _, tc := range []struct {
		reason string
		want   error
	}{
		{rpctypes.ErrGRPCPermissionDenied.Error(), rpctypes.ErrGRPCPermissionDenied},
		{rpctypes.ErrGRPCUserEmpty.Error(), rpctypes.ErrGRPCUserEmpty},
		{rpctypes.ErrGRPCInvalidAuthToken.Error(), rpctypes.ErrGRPCInvalidAuthToken},
		{"mvcc: required revision has been compacted", status.Error(codes.InvalidArgument, "mvcc: required revision has been compacted")},
		{"rpc error: code = NoSuchCode desc = x", status.Error(codes.InvalidArgument, "rpc error: code = NoSuchCode desc = x")},
	} {
		if got := cancelError(tc.reason); !errors.Is(got, tc.want) {
			t.Errorf("cancelError(%q) = %v; want %v", tc.reason, got, tc.want)
		}
	}
}
