package metrics

import (
	"context"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// UnaryServerInterceptor counts each finished unary RPC in
// grpc_server_handled_total, labelled as go-grpc-prometheus labels it.
func UnaryServerInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	handled("unary", info.FullMethod, err)
	return resp, err
}

// StreamServerInterceptor counts each finished streaming RPC.
func StreamServerInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	handled(streamType(info), info.FullMethod, err)
	return err
}

func streamType(info *grpc.StreamServerInfo) string {
	switch {
	case info.IsClientStream && info.IsServerStream:
		return "bidi_stream"
	case info.IsClientStream:
		return "client_stream"
	default:
		return "server_stream"
	}
}

// handledKey names one series; counters holds them once looked up, so the
// hot path is one sync.Map load instead of hashing four label values.
type handledKey struct {
	typ, method string
	code        codes.Code
}

var counters sync.Map // handledKey -> prometheus.Counter

func handled(typ, fullMethod string, err error) {
	k := handledKey{typ: typ, method: fullMethod, code: status.Code(err)}
	c, ok := counters.Load(k)
	if !ok {
		service, method := splitMethod(fullMethod)
		c, _ = counters.LoadOrStore(k, grpcHandled.WithLabelValues(typ, service, method, k.code.String()))
	}
	c.(prometheus.Counter).Inc()
}

// splitMethod splits "/etcdserverpb.KV/Put" into service and method.
func splitMethod(fullMethod string) (service, method string) {
	s := strings.TrimPrefix(fullMethod, "/")
	if i := strings.LastIndex(s, "/"); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "unknown", "unknown"
}
