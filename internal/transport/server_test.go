package transport

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// TestMaxConcurrentStreams: with --max-concurrent-streams=1 a second
// stream on the same connection waits for the first to end.
func TestMaxConcurrentStreams(t *testing.T) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(ServerOptions(nil, 1<<20, GRPCLimits{MaxConcurrentStreams: 1})...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := healthpb.NewHealthClient(conn)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Recv(); err != nil { // the stream is open on the server
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	second, err := client.Watch(short, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = second.Recv()
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("second stream: %v, want it to wait (DeadlineExceeded)", err)
	}
	cancel() // the first ends: a new stream gets through
	ok, cancelOK := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelOK()
	third, err := client.Watch(ok, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = third.Recv()
	}
	if err != nil {
		t.Fatalf("stream after the first ended: %v", err)
	}
}
