package etcdapi

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/troupedb/troupe/internal/memberview"
)

// requireLeader fails a request at once with ErrGRPCNoLeader when the
// client asked for a leader (clientv3.WithRequireLeader sets the
// "hasleader" metadata) and this member knows none, as etcd does, so the
// client can try another member instead of waiting.
func requireLeader(st *memberview.View, ctx context.Context) error {
	if st.Leader() != 0 {
		return nil // the common case, without looking at the metadata
	}
	// ValueFromIncomingContext reads one key without copying the metadata.
	if vs := metadata.ValueFromIncomingContext(ctx, rpctypes.MetadataRequireLeaderKey); len(vs) > 0 && vs[0] == rpctypes.MetadataHasLeader {
		return rpctypes.ErrGRPCNoLeader
	}
	return nil
}

// learnerAllows reports whether a learner serves req: a learner has no
// vote and may lag, so it answers only Status and serializable Ranges, as
// etcd 3.4.
func learnerAllows(req any) bool {
	switch r := req.(type) {
	case *pb.StatusRequest:
		return true
	case *pb.RangeRequest:
		return r.Serializable
	default:
		return false
	}
}

func unaryGate(st *memberview.View) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if st.IsLearner() && !learnerAllows(req) {
			return nil, rpctypes.ErrGRPCNotSupportedForLearner
		}
		if err := requireLeader(st, ctx); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func streamGate(st *memberview.View) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if st.IsLearner() {
			return rpctypes.ErrGRPCNotSupportedForLearner
		}
		if err := requireLeader(st, ss.Context()); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}
