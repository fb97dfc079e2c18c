package actorapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/status"

	"github.com/troupedb/troupe/client/actorclient"
	"github.com/troupedb/troupe/internal/polltest"
)

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startServer(t *testing.T, cfg ServeConfig) *Server {
	t.Helper()
	cfg.Address = "127.0.0.1:0"
	cfg.LeaveGRPCLogger = true // see clientSystem
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	s, err := Serve(cfg)
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// startClientSystem is a second actor system, as a program using the actor
// API runs it: its own remote, so that replies can reach it.
func startClientSystem(t *testing.T) *actor.ActorSystem {
	t.Helper()
	logger := quietLogger()
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return logger }))
	r := remote.NewRemote(system, remote.Configure("127.0.0.1", 0,
		remote.WithDialOptions(DialOptions(DefaultMaxMessageBytes)...)))
	r.Start()
	t.Cleanup(func() { r.Shutdown(true); system.Shutdown() })
	return system
}

func newClient(t *testing.T, s *Server) *actorclient.Client {
	t.Helper()
	return actorclient.New(clientSystem(t, s), s.Address(), actorclient.WithTimeout(10*time.Second))
}

func TestPutRangeTxnRoundTrip(t *testing.T) {
	s := startServer(t, ServeConfig{KV: newFakeKV()})
	c := newClient(t, s)
	ctx := context.Background()

	put, err := c.Put(ctx, &etcdserverpb.PutRequest{Key: []byte("k"), Value: []byte("v1")})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if put.Header.GetRevision() != 2 || put.Header.GetMemberId() != 2 {
		t.Fatalf("Put header = %v", put.Header)
	}
	got, err := c.Range(ctx, &etcdserverpb.RangeRequest{Key: []byte("k")})
	if err != nil {
		t.Fatalf("Range: %v", err)
	}
	if got.Count != 1 || string(got.Kvs[0].Value) != "v1" || got.Kvs[0].ModRevision != 2 {
		t.Fatalf("Range = %v", got)
	}

	txn, err := c.Txn(ctx, &etcdserverpb.TxnRequest{
		Compare: []*etcdserverpb.Compare{{
			Key: []byte("k"), Target: etcdserverpb.Compare_VALUE, Result: etcdserverpb.Compare_EQUAL,
			TargetUnion: &etcdserverpb.Compare_Value{Value: []byte("v1")},
		}},
		Success: []*etcdserverpb.RequestOp{
			{Request: &etcdserverpb.RequestOp_RequestPut{RequestPut: &etcdserverpb.PutRequest{Key: []byte("k"), Value: []byte("v2")}}},
			{Request: &etcdserverpb.RequestOp_RequestRange{RequestRange: &etcdserverpb.RangeRequest{Key: []byte("k")}}},
		},
	})
	if err != nil {
		t.Fatalf("Txn: %v", err)
	}
	if !txn.Succeeded || len(txn.Responses) != 2 || string(txn.Responses[1].GetResponseRange().Kvs[0].Value) != "v2" {
		t.Fatalf("Txn = %v", txn)
	}

	del, err := c.Delete(ctx, &etcdserverpb.DeleteRangeRequest{Key: []byte("k")})
	if err != nil || del.Deleted != 1 {
		t.Fatalf("Delete = %v, %v", del, err)
	}
	if _, err := c.Compact(ctx, &etcdserverpb.CompactionRequest{Revision: 2}); err != nil {
		t.Fatalf("Compact: %v", err)
	}
}

func TestErrorRoundTrip(t *testing.T) {
	s := startServer(t, ServeConfig{KV: newFakeKV()})
	c := newClient(t, s)
	ctx := context.Background()

	_, err := c.Put(ctx, &etcdserverpb.PutRequest{Value: []byte("no key")})
	assertEtcdError(t, err, rpctypes.ErrGRPCEmptyKey)
	if !errors.Is(rpctypes.Error(err), rpctypes.ErrEmptyKey) {
		t.Fatalf("rpctypes.Error(%v) = %v, want ErrEmptyKey", err, rpctypes.Error(err))
	}
	_, err = c.Compact(ctx, &etcdserverpb.CompactionRequest{Revision: 100})
	assertEtcdError(t, err, rpctypes.ErrGRPCFutureRev)
}

// assertEtcdError checks that err is want as clientv3 would see it: same
// gRPC code and message.
func assertEtcdError(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	got, _ := status.FromError(err)
	exp, _ := status.FromError(want)
	if got.Code() != exp.Code() || got.Message() != exp.Message() {
		t.Fatalf("status = %v %q, want %v %q", got.Code(), got.Message(), exp.Code(), exp.Message())
	}
}

func TestOversizedRequestRefused(t *testing.T) {
	kv := newFakeKV()
	s := startServer(t, ServeConfig{KV: kv, MaxRequestBytes: 1024})
	c := newClient(t, s)
	ctx := context.Background()

	_, err := c.Put(ctx, &etcdserverpb.PutRequest{Key: []byte("big"), Value: make([]byte, 2048)})
	assertEtcdError(t, err, rpctypes.ErrGRPCRequestTooLarge)
	got, err := c.Range(ctx, &etcdserverpb.RangeRequest{Key: []byte("big")})
	if err != nil || got.Count != 0 {
		t.Fatalf("after refused put: Range = %v, %v", got, err)
	}
	// Far above the gRPC limit of the remote: lost on the wire, the
	// server survives and answers the next request.
	_, err = c.Put(ctx, &etcdserverpb.PutRequest{Key: []byte("small"), Value: make([]byte, 512)})
	if err != nil {
		t.Fatalf("Put small: %v", err)
	}
}

func TestTooManyInFlightRefused(t *testing.T) {
	kv := newFakeKV()
	kv.entered, kv.gate = make(chan struct{}, 1), make(chan struct{})
	s := startServer(t, ServeConfig{KV: kv, MaxInFlight: 1})
	c := newClient(t, s)
	ctx := context.Background()

	first := make(chan error, 1)
	go func() {
		_, err := c.Put(ctx, &etcdserverpb.PutRequest{Key: []byte("a"), Value: []byte("1")})
		first <- err
	}()
	<-kv.entered // the only slot is taken
	_, err := c.Put(ctx, &etcdserverpb.PutRequest{Key: []byte("b"), Value: []byte("2")})
	assertEtcdError(t, err, rpctypes.ErrGRPCRequestTooManyRequests)
	close(kv.gate)
	if err := <-first; err != nil {
		t.Fatalf("first Put: %v", err)
	}
}

func TestConcurrentRequests(t *testing.T) {
	s := startServer(t, ServeConfig{KV: newFakeKV()})
	c := newClient(t, s)
	ctx := context.Background()

	const n = 500
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Appendf(nil, "key-%d", i)
			if _, err := c.Put(ctx, &etcdserverpb.PutRequest{Key: key, Value: key}); err != nil {
				errs <- fmt.Errorf("put %s: %w", key, err)
				return
			}
			got, err := c.Range(ctx, &etcdserverpb.RangeRequest{Key: key})
			if err != nil {
				errs <- fmt.Errorf("range %s: %w", key, err)
				return
			}
			if got.Count != 1 || string(got.Kvs[0].Value) != string(key) {
				errs <- fmt.Errorf("range %s = %v", key, got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestContextDeadline(t *testing.T) {
	kv := newFakeKV()
	kv.entered, kv.gate = make(chan struct{}, 1), make(chan struct{})
	s := startServer(t, ServeConfig{KV: kv})
	c := newClient(t, s)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Put(ctx, &etcdserverpb.PutRequest{Key: []byte("a")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	close(kv.gate)
	// The late reply of the first Put goes out before this one's: once
	// this one is back, nothing is in flight towards the client.
	if _, err := c.Put(context.Background(), &etcdserverpb.PutRequest{Key: []byte("b")}); err != nil {
		t.Fatalf("Put after deadline: %v", err)
	}
}

func TestStopLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		kv := newFakeKV()
		s, err := Serve(ServeConfig{Address: "127.0.0.1:0", KV: kv, Logger: quietLogger(), LeaveGRPCLogger: true})
		if err != nil {
			t.Fatal(err)
		}
		c := actorclient.New(s.System(), s.Address())
		for i := range 20 {
			if _, err := c.Put(context.Background(), &etcdserverpb.PutRequest{Key: fmt.Appendf(nil, "k%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		s.Stop()
	}()
	// Connections wind down asynchronously; poll, do not sleep a fixed time.
	polltest.Eventually(t, 10*time.Second, "goroutines end after Stop", func() (bool, string) {
		after := runtime.NumGoroutine()
		if after <= before+2 {
			return true, ""
		}
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		return false, fmt.Sprintf("%d before, %d after\n%s", before, after, onlyActorapi(string(buf[:n])))
	})
}

func onlyActorapi(stacks string) string {
	var keep []string
	for _, g := range strings.Split(stacks, "\n\n") {
		if !strings.Contains(g, "testing.") || strings.Contains(g, "actorapi") {
			keep = append(keep, g)
		}
	}
	return strings.Join(keep, "\n\n")
}
