// Command nullkv is the floor of troupe's client path: a gRPC server that
// answers etcd's KV Put, Range, Txn and DeleteRange, and Maintenance
// Status, with canned responses (no store, no raft), behind the server
// options and the listener code a troupe member uses
// (transport.ServerOptions, transport.Listen, transport.ConnMux). Its CPU
// per op under a `troupe bench` load is what gRPC, HTTP/2 and protobuf
// alone cost a server here, so it bounds what troupe can reach while it
// serves through grpc-go. e2e BenchmarkNullKV measures it; `troupe bench
// compare --a '/path/nullkv --listen-client-urls {client_url}'` too.
//
// With --interceptors it also runs the unary interceptors a member runs
// that do not need a member (the gRPC metrics and the panic recovery), to
// tell their cost apart.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"

	"github.com/troupedb/troupe/internal/metrics"
	"github.com/troupedb/troupe/internal/transport"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "nullkv:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("nullkv", flag.ContinueOnError)
	listen := fs.String("listen-client-urls", "http://127.0.0.1:2379", "where to serve (http only)")
	interceptors := fs.Bool("interceptors", false, "run the metrics and recovery interceptors as a member does")
	// Flags a bench template passes to a member; accepted and ignored.
	for _, name := range []string{"name", "data-dir", "advertise-client-urls", "listen-peer-urls", "initial-advertise-peer-urls", "initial-cluster", "initial-cluster-token", "initial-cluster-state", "listen-actor-url"} {
		fs.String(name, "", "ignored")
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	u, err := url.Parse(*listen)
	if err != nil {
		return fmt.Errorf("--listen-client-urls %q: %w", *listen, err)
	}
	lis, err := transport.Listen(*u, nil, transport.SocketOpts{})
	if err != nil {
		return fmt.Errorf("listen on %s: %w", u, err)
	}
	var opts []grpc.ServerOption
	if *interceptors {
		opts = append(opts, grpc.ChainUnaryInterceptor(metrics.UnaryServerInterceptor, recovery.UnaryServerInterceptor()))
	}
	const maxRequestBytes = 1536 * 1024 // etcd's --max-request-bytes default
	srv := grpc.NewServer(append(opts, transport.ServerOptions(nil, maxRequestBytes, transport.GRPCLimits{})...)...)
	pb.RegisterKVServer(srv, nullKV{})
	pb.RegisterMaintenanceServer(srv, nullMaintenance{})
	mux := transport.NewConnMux(lis)
	hs := &http.Server{Handler: http.NotFoundHandler()}
	go func() { _ = srv.Serve(mux.GRPC()) }()
	go func() { _ = hs.Serve(mux.HTTP()) }()
	go mux.Serve()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = lis.Close()
	srv.Stop()
	return hs.Close()
}

// header is a member's response header; every field is set so that the
// encoded responses are as large as a member's.
func header() *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: 0x1c2a3b4c5d6e7f80, MemberId: 0x8f7e6d5c4b3a2910, Revision: 123456, RaftTerm: 2}
}

type nullKV struct{ pb.UnimplementedKVServer }

func (nullKV) Put(context.Context, *pb.PutRequest) (*pb.PutResponse, error) {
	return &pb.PutResponse{Header: header()}, nil
}

// Range answers one key with a 256-byte value, the shape of the bench's
// range workload.
func (nullKV) Range(_ context.Context, req *pb.RangeRequest) (*pb.RangeResponse, error) {
	kv := &mvccpb.KeyValue{Key: req.Key, Value: value, CreateRevision: 1000, ModRevision: 123456, Version: 3}
	return &pb.RangeResponse{Header: header(), Kvs: []*mvccpb.KeyValue{kv}, Count: 1}, nil
}

var value = make([]byte, 256)

func (nullKV) DeleteRange(context.Context, *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	return &pb.DeleteRangeResponse{Header: header()}, nil
}

// Txn answers a successful txn with one put response per success op.
func (nullKV) Txn(_ context.Context, req *pb.TxnRequest) (*pb.TxnResponse, error) {
	resp := &pb.TxnResponse{Header: header(), Succeeded: true}
	for range req.Success {
		resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: header()}}})
	}
	return resp, nil
}

type nullMaintenance struct {
	pb.UnimplementedMaintenanceServer
}

// Status answers as a healthy single-member leader, which is what a bench
// waits for before it loads the server.
func (nullMaintenance) Status(context.Context, *pb.StatusRequest) (*pb.StatusResponse, error) {
	h := header()
	return &pb.StatusResponse{Header: h, Version: "3.6.8", Leader: h.MemberId, RaftIndex: 1, RaftTerm: 2, RaftAppliedIndex: 1}, nil
}
