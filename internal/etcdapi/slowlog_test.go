package etcdapi

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// TestSlowUnaryLogged: a request slower than --warning-unary-request-duration
// is logged at warn as etcd's "request stats", the Put's value redacted;
// a fast one is not (at info).
func TestSlowUnaryLogged(t *testing.T) {
	info := &grpc.UnaryServerInfo{FullMethod: "/etcdserverpb.KV/Put"}
	req := &pb.PutRequest{Key: []byte("k"), Value: []byte("secret-value")}
	handler := func(context.Context, any) (any, error) { return &pb.PutResponse{}, nil }
	for _, tc := range []struct {
		warn   time.Duration
		logged bool
	}{{time.Nanosecond, true}, {time.Hour, false}, {0, false}} {
		var buf bytes.Buffer
		lg := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
		// A handler that takes at least a nanosecond of the clock.
		slow := func(ctx context.Context, r any) (any, error) {
			start := time.Now()
			for time.Since(start) < time.Microsecond {
			}
			return handler(ctx, r)
		}
		if _, err := logSlowUnary(lg, tc.warn)(context.Background(), req, info, slow); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if got := strings.Contains(out, `"level":"WARN","msg":"request stats"`); got != tc.logged {
			t.Errorf("warn %v: logged %v, want %v: %s", tc.warn, got, tc.logged, out)
		}
		if tc.logged {
			for _, want := range []string{`"response type":"/etcdserverpb.KV/Put"`, `"request count":1`, `value_size:12`} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %s: %s", want, out)
				}
			}
			if strings.Contains(out, "secret-value") {
				t.Errorf("the value was logged: %s", out)
			}
		}
	}
}
