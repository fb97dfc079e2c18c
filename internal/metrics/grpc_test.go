package metrics

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// handlingCount is how many Range RPCs grpc_server_handling_seconds saw.
func handlingCount(t *testing.T) uint64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(grpcHandlingSeconds)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "grpc_method" && l.GetValue() == "Range" {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

// TestExtensiveHistogram: --metrics=extensive makes the interceptors
// feed etcd's grpc_server_handling_seconds; basic leaves it alone.
func TestExtensiveHistogram(t *testing.T) {
	info := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Range"}
	call := func() {
		_, _ = UnaryServerInterceptor(context.Background(), nil, info, func(context.Context, any) (any, error) { return nil, nil })
	}
	defer SetExtensive(false)
	before := handlingCount(t)
	SetExtensive(false)
	call()
	if got := handlingCount(t); got != before {
		t.Fatalf("basic: histogram count %d -> %d", before, got)
	}
	SetExtensive(true)
	call()
	if got := handlingCount(t); got != before+1 {
		t.Fatalf("extensive: histogram count %d -> %d, want +1", before, got)
	}
}
