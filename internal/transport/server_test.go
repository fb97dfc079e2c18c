package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/troupedb/troupe/internal/tlstest"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"golang.org/x/net/http2"
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

// TestServerFlowControl: the client endpoint announces static windows, a
// stream's as large as the largest request, and so never pings a client
// to estimate the bandwidth-delay product (one PING per request of an
// otherwise idle connection); a request of --max-request-bytes goes
// through.
func TestServerFlowControl(t *testing.T) {
	const maxRequestBytes = 1536 * 1024 // etcd's default
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(ServerOptions(nil, maxRequestBytes, GRPCLimits{})...)
	pb.RegisterKVServer(srv, sizeKV{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	var fromServer recordingConn
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			c, err := lis.DialContext(ctx)
			fromServer.Conn = c
			return &fromServer, err
		}),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	kv := pb.NewKVClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// etcd's limit is on the request's encoded size, the key and value
	// with a few bytes of framing.
	value := make([]byte, maxRequestBytes-16)
	resp, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: value})
	if err != nil {
		t.Fatalf("put of %d bytes: %v", len(value), err)
	}
	if resp.Header.Revision != int64(len(value)) {
		t.Fatalf("server got %d bytes, want %d", resp.Header.Revision, len(value))
	}
	for i := range 20 {
		if _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}

	var streamWindow, connIncrement uint32
	pings := 0
	fr := http2.NewFramer(io.Discard, bytes.NewReader(fromServer.bytes()))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break // the end of what the server sent
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
				streamWindow = v
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 && connIncrement == 0 {
				connIncrement = f.Increment
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				pings++
			}
		}
	}
	if want := uint32(maxRequestBytes + grpcOverheadBytes); streamWindow != want {
		t.Errorf("stream window %d, want %d (the largest request)", streamWindow, want)
	}
	if want := uint32(connWindowBytes - 65535); connIncrement != want {
		t.Errorf("first connection window update %d, want %d (to a %d-byte window)", connIncrement, want, connWindowBytes)
	}
	if pings != 0 {
		t.Errorf("server sent %d PINGs over 21 requests, want none (no bandwidth-delay estimation)", pings)
	}
}

// sizeKV answers a Put with the size of its value as the revision, and a
// Range with a value of Limit bytes.
type sizeKV struct{ pb.UnimplementedKVServer }

func (sizeKV) Range(_ context.Context, req *pb.RangeRequest) (*pb.RangeResponse, error) {
	kv := &mvccpb.KeyValue{Key: req.Key, Value: bytes.Repeat([]byte{'r'}, int(req.Limit))}
	return &pb.RangeResponse{Header: &pb.ResponseHeader{}, Kvs: []*mvccpb.KeyValue{kv}, Count: 1}, nil
}

func (sizeKV) Put(_ context.Context, req *pb.PutRequest) (*pb.PutResponse, error) {
	return &pb.PutResponse{Header: &pb.ResponseHeader{Revision: int64(len(req.Value))}}, nil
}

// recordingConn keeps a copy of every byte read from the server.
type recordingConn struct {
	net.Conn
	mu   sync.Mutex
	read bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.read.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *recordingConn) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.read.Bytes())
}

// TestServerTLSRequests: over TLS gRPC reads HTTP/2 frames from the
// *tls.Conn without a buffer of its own and writes through one of a TLS
// record (tlsReadBufferBytes, tlsWriteBufferBytes); requests from one byte
// to --max-request-bytes and responses of up to 3 MiB, frames split
// across TLS records, on concurrent streams of one connection, all arrive
// whole.
func TestServerTLSRequests(t *testing.T) {
	const maxRequestBytes = 1536 * 1024
	p := newPKI(t)
	info := p.info()
	info.SkipClientSANVerify = true
	sec := mustSecurity(t, info, nil)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewConnMux(sec.listener(raw))
	srv := grpc.NewServer(ServerOptions(sec, maxRequestBytes, GRPCLimits{})...)
	pb.RegisterKVServer(srv, sizeKV{})
	var serving sync.WaitGroup
	serving.Go(m.Serve)
	serving.Go(func() { _ = srv.Serve(m.GRPC()) })
	t.Cleanup(func() {
		srv.Stop()
		_ = raw.Close()
		serving.Wait()
	})
	p.ca.Issue(t, tlstest.LeafOpts{CN: "client", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}).Write(t, p.path("c.pem"), p.path("c.key"))
	client := mustSecurity(t, TLSInfo{CertFile: p.path("c.pem"), KeyFile: p.path("c.key"), TrustedCAFile: p.path("ca.pem")}, nil)
	conn, err := Dialer{Security: client}.Dial(raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	kv := pb.NewKVClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	sizes := []int{1, 100, 16*1024 - 3, 16*1024 + 7, 100 * 1024, maxRequestBytes - 16}
	errs := make(chan error, 8*len(sizes))
	var puts sync.WaitGroup
	for range 4 {
		for _, size := range sizes {
			puts.Go(func() {
				resp, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: bytes.Repeat([]byte{'v'}, size)})
				if err == nil && resp.Header.Revision != int64(size) {
					err = fmt.Errorf("server got %d bytes", resp.Header.Revision)
				}
				if err != nil {
					errs <- fmt.Errorf("put of %d bytes: %w", size, err)
				}
			})
			puts.Go(func() {
				resp, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("k"), Limit: int64(size) * 2})
				if err == nil && (len(resp.Kvs) != 1 || !bytes.Equal(resp.Kvs[0].Value, bytes.Repeat([]byte{'r'}, size*2))) {
					err = errors.New("the value is not what the server sent")
				}
				if err != nil {
					errs <- fmt.Errorf("range of %d bytes: %w", size*2, err)
				}
			})
		}
	}
	puts.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
