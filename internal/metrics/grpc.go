package metrics

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// UnaryServerInterceptor counts each finished unary RPC in
// grpc_server_handled_total, labelled as go-grpc-prometheus labels it.
func UnaryServerInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if extensive.Load() {
		defer observeHandling("unary", info.FullMethod, time.Now())
	}
	resp, err := handler(ctx, req)
	handled("unary", info.FullMethod, err)
	return resp, err
}

// StreamServerInterceptor counts each finished streaming RPC.
func StreamServerInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if extensive.Load() {
		defer observeHandling(streamType(info), info.FullMethod, time.Now())
	}
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

// extensive is etcd's --metrics=extensive: the server also keeps
// go-grpc-prometheus' handling-time histogram. Process-wide, as etcd's
// gRPC metrics are.
var extensive atomic.Bool

// SetExtensive turns the handling-time histogram on or off
// (--metrics=extensive or basic).
func SetExtensive(on bool) { extensive.Store(on) }

// grpcHandlingSeconds is go-grpc-prometheus' histogram, as etcd
// registers it with --metrics=extensive.
var grpcHandlingSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Namespace: "grpc", Subsystem: "server", Name: "handling_seconds",
	Help:    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
	Buckets: prometheus.DefBuckets,
}, []string{"grpc_type", "grpc_service", "grpc_method"})

func observeHandling(typ, fullMethod string, start time.Time) {
	service, method := splitMethod(fullMethod)
	grpcHandlingSeconds.WithLabelValues(typ, service, method).Observe(time.Since(start).Seconds())
}

// splitMethod splits "/etcdserverpb.KV/Put" into service and method.
func splitMethod(fullMethod string) (service, method string) {
	s := strings.TrimPrefix(fullMethod, "/")
	if i := strings.LastIndex(s, "/"); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "unknown", "unknown"
}
