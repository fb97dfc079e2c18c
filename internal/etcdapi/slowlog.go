package etcdapi

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
)

// logSlowUnary logs, as etcd's --warning-unary-request-duration does, a
// unary request that took longer than warn ("request stats" at warn),
// and every request when the logger is at debug. warn <= 0 turns the
// warning off.
func logSlowUnary(lg *slog.Logger, warn time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		took := time.Since(start)
		slow := warn > 0 && took > warn
		if !slow && !lg.Enabled(ctx, slog.LevelDebug) {
			return resp, err
		}
		level := slog.LevelDebug
		if slow {
			level = slog.LevelWarn
		}
		lg.Log(ctx, level, "request stats", requestStats(ctx, info, start, took, req, resp)...)
		return resp, err
	}
}

// requestStats are etcd's fields of "request stats"; values are redacted
// from Put and Txn contents as etcd does.
func requestStats(ctx context.Context, info *grpc.UnaryServerInfo, start time.Time, took time.Duration, req, resp any) []any {
	remote := "No remote client info."
	if p, ok := peer.FromContext(ctx); ok {
		remote = p.Addr.String()
	}
	reqCount, respCount := int64(-1), int64(-1)
	reqSize, respSize := -1, -1
	content := ""
	switch r := resp.(type) {
	case *pb.RangeResponse:
		if q, ok := req.(*pb.RangeRequest); ok {
			reqCount, reqSize, content = 0, proto.Size(q), fmt.Sprint(q)
		}
		respCount, respSize = r.GetCount(), proto.Size(r)
	case *pb.PutResponse:
		if q, ok := req.(*pb.PutRequest); ok {
			reqCount, reqSize, content = 1, proto.Size(q), fmt.Sprint(pb.NewLoggablePutRequest(q))
		}
		respCount, respSize = 0, proto.Size(r)
	case *pb.DeleteRangeResponse:
		if q, ok := req.(*pb.DeleteRangeRequest); ok {
			reqCount, reqSize, content = 0, proto.Size(q), fmt.Sprint(q)
		}
		respCount, respSize = r.GetDeleted(), proto.Size(r)
	case *pb.TxnResponse:
		if q, ok := req.(*pb.TxnRequest); ok && r != nil {
			ops := q.GetFailure()
			if r.GetSucceeded() {
				ops = q.GetSuccess()
			}
			reqCount, reqSize = int64(len(ops)), 0
			for _, op := range ops {
				reqSize += proto.Size(op)
			}
			content = pb.NewLoggableTxnRequest(q).String()
		}
		respCount, respSize = 0, proto.Size(r)
	}
	return []any{
		"start time", start, "time spent", took, "remote", remote, "response type", info.FullMethod,
		"request count", reqCount, "request size", reqSize, "response count", respCount,
		"response size", respSize, "request content", content,
	}
}
