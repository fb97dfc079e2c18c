package transport

import (
	"math"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// grpcOverheadBytes is what etcd allows on top of --max-request-bytes for
// gRPC framing; larger messages are refused by gRPC itself.
const grpcOverheadBytes = 512 * 1024

// connWindowBytes is the static flow-control window of a client
// connection: gRPC's own ceiling for the windows its estimator grows to
// (16 MiB), so a fast link carries as many requests at once as it would
// with the estimator on.
const connWindowBytes = 16 << 20

// On a TLS connection gRPC reads without a buffer of its own and writes
// through a buffer of one TLS record. gRPC reads a bare TCP connection
// into pooled buffers, but keeps a 32 KiB buffer for the life of any other
// connection, a *tls.Conn among them, which buffers a whole record itself:
// HTTP/2 frames read from it directly cost no extra syscalls. A flush of
// gRPC's (pooled) write buffer is held while crypto/tls seals and writes
// it, one record and one write syscall per 16 KiB either way, so a larger
// buffer only holds more memory. Measured at 256 connections (mTLS put,
// peak RSS): read buffer 32 KiB -> 4 KiB 84.1 -> 76.0 MiB, 4 KiB -> none
// 76.2 -> 74.8; write buffer 32 KiB -> 16 KiB about -6 MiB (16 -> 8 KiB
// 70.2 -> 67.4 MiB, at the cost of a write per 8 KiB).
const (
	tlsReadBufferBytes  = 0
	tlsWriteBufferBytes = 16 << 10 // TLS's largest record plaintext
)

// streamWorkers is the number of goroutines gRPC keeps for running RPCs;
// RPCs beyond it get a goroutine of their own, as without the option.
const streamWorkers = 256

// GRPCLimits are etcd's --max-concurrent-streams and --grpc-keepalive-*
// flags; the zero value means etcd's defaults.
type GRPCLimits struct {
	// MaxConcurrentStreams bounds the streams of one client connection;
	// 0 means unbounded (etcd's default, math.MaxUint32).
	MaxConcurrentStreams uint32
	// KeepAliveMinTime is the shortest interval between client pings
	// the server tolerates (keepalive enforcement); 0 means 5 s. A
	// negative value turns the policy off, as etcd's 0 does.
	KeepAliveMinTime time.Duration
	// KeepAliveInterval and KeepAliveTimeout make the server ping an
	// idle client and close the connection when the ping is not
	// answered in time; both must be > 0 for it (etcd: 2 h and 20 s,
	// which ServerOptions uses when both are 0).
	KeepAliveInterval, KeepAliveTimeout time.Duration
}

// ServerOptions are the gRPC server options of a client endpoint (the etcd
// v3 API), secured by sec: requests up to maxRequestBytes
// (--max-request-bytes) plus etcd's framing allowance, responses of any
// size, lim's streams and keep-alive settings, static flow-control
// windows, and reused stream goroutines. Interceptors are the caller's.
func ServerOptions(sec *Security, maxRequestBytes int, lim GRPCLimits) []grpc.ServerOption {
	streams := lim.MaxConcurrentStreams
	if streams == 0 {
		streams = math.MaxUint32
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRequestBytes + grpcOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(streams),
		// Reused stream goroutines keep their grown stacks; a new goroutine
		// per RPC regrows its stack every time.
		grpc.NumStreamWorkers(streamWorkers),
		// Static windows turn off gRPC's bandwidth-delay estimator, which
		// answers the first data of an idle connection with a window update
		// and a PING: with one unary RPC per round trip, as etcd clients
		// send, that is a ping, its ack and a window update per request
		// (measured, put 256 clients: 7.3 -> 5.8 syscalls per op).
		// A stream's window takes the largest request allowed, so
		// one never waits a round trip for a window update.
		grpc.StaticStreamWindowSize(streamWindowBytes(maxRequestBytes)),
		grpc.StaticConnWindowSize(max(connWindowBytes, streamWindowBytes(maxRequestBytes))),
	}
	minTime := lim.KeepAliveMinTime
	if minTime == 0 {
		minTime = 5 * time.Second
	}
	if minTime > 0 {
		opts = append(opts, grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: minTime, PermitWithoutStream: false}))
	}
	interval, timeout := lim.KeepAliveInterval, lim.KeepAliveTimeout
	if interval == 0 && timeout == 0 {
		interval, timeout = 2*time.Hour, 20*time.Second
	}
	if interval > 0 && timeout > 0 {
		opts = append(opts, grpc.KeepaliveParams(keepalive.ServerParameters{Time: interval, Timeout: timeout}))
	}
	if sec != nil {
		opts = append(opts, grpc.ReadBufferSize(tlsReadBufferBytes), grpc.WriteBufferSize(tlsWriteBufferBytes))
	}
	return append(opts, sec.serverOptions()...)
}

// streamWindowBytes is the flow-control window of one stream: the largest
// request gRPC accepts (maxRequestBytes and the framing allowance), at
// most HTTP/2's largest window. It bounds only what a client may send
// ahead of the server's reads on a stream; a unary request is read whole
// anyway.
func streamWindowBytes(maxRequestBytes int) int32 {
	return int32(min(int64(maxRequestBytes)+grpcOverheadBytes, math.MaxInt32))
}
