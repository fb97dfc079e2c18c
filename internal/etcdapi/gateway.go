package etcdapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
)

// newGateway returns etcd's JSON gateway: POST /v3/kv/range and the rest
// of what go.etcd.io/etcd/api/v3/etcdserverpb/gw registers (KV, Watch,
// Lease, Cluster, Maintenance, Auth), translating each request into a gRPC
// call on conn. conn is a connection to this member's own client endpoint,
// as etcd's gateway dials its own: the calls pass the same interceptors
// (metrics, the learner and require-leader gates) as gRPC clients' do.
//
// The JSON is etcd 3.6's: proto field names, unset fields left out, 64-bit
// numbers as strings, bytes in base64, unknown fields of a request
// ignored. Errors are grpc-gateway v2's, as etcd 3.6's: the gRPC status as
// JSON ({"code":c,"message":m}) with its HTTP status (400 for
// FailedPrecondition, 499 for Canceled; 404 for an unknown path, 501 for
// a method a path does not take). 3.4 and 3.5 wrote
// {"error":m,"message":m,"code":c}, with 412 and 408, and routing errors
// as plain text.
func newGateway(conn *grpc.ClientConn) (http.Handler, error) {
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{
			Marshaler: &runtime.JSONPb{
				MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false},
				UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
			},
		}),
		// Every call says it comes from the gateway, whose connection
		// presents this member's certificate: its CN must never be taken
		// for the user (etcd relies on the Accept header alone, which a
		// client may leave out).
		runtime.WithMetadata(func(context.Context, *http.Request) metadata.MD {
			return metadata.Pairs(gatewayCallKey, "1")
		}),
	)
	// The context only matters to the *FromEndpoint variants, which own
	// their connection; conn's owner closes it.
	ctx := context.Background()
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		gw.RegisterKVHandler, gw.RegisterWatchHandler, gw.RegisterLeaseHandler,
		gw.RegisterClusterHandler, gw.RegisterMaintenanceHandler, gw.RegisterAuthHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			return nil, err
		}
	}
	return v3beta(mux), nil
}

// v3beta serves /v3beta/... as /v3/..., as etcd does for older clients.
func v3beta(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/v3beta/"); ok {
			r.URL.Path = "/v3/" + rest
			r.URL.RawPath = ""
		}
		h.ServeHTTP(w, r)
	})
}
