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

// streamWorkers is the number of goroutines gRPC keeps for running RPCs;
// RPCs beyond it get a goroutine of their own, as without the option.
const streamWorkers = 256

// ServerOptions are the gRPC server options of a client endpoint (the etcd
// v3 API), secured by sec: requests up to maxRequestBytes
// (--max-request-bytes) plus etcd's framing allowance, responses of any
// size, streams without a bound, reused stream goroutines and etcd's
// keep-alive enforcement. Interceptors are the caller's.
func ServerOptions(sec *Security, maxRequestBytes int) []grpc.ServerOption {
	return append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRequestBytes + grpcOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(math.MaxUint32),
		// Reused stream goroutines keep their grown stacks; a new goroutine
		// per RPC regrows its stack every time.
		grpc.NumStreamWorkers(streamWorkers),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: false}),
	}, sec.serverOptions()...)
}
