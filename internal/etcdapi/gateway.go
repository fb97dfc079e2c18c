package etcdapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
// ignored. Errors of unary calls are etcd 3.4's and 3.5's
// {"error":m,"message":m,"code":c} (3.6 dropped "error"; clients of either
// find what they read); an unknown path or method gets net/http's plain
// "Not Found" or "Method Not Allowed", as from etcd 3.4.
func newGateway(conn *grpc.ClientConn) (http.Handler, error) {
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{
			Marshaler: &runtime.JSONPb{
				MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false},
				UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
			},
		}),
		runtime.WithErrorHandler(gatewayError),
		runtime.WithRoutingErrorHandler(gatewayRoutingError),
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

// gatewayErrorBody is grpc-gateway v1's error body, fields in the order
// etcd 3.4 writes them (details, always empty in etcd, left out).
type gatewayErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Code    int32  `json:"code"`
}

// gatewayHTTPStatus maps a gRPC code to an HTTP status as grpc-gateway
// v1 does, in etcd 3.4 and 3.5: v2 answers 400 for FailedPrecondition
// (etcd's "lease already exists", "too many requests") and 499 for
// Canceled, where etcd 3.4 answers 412 and 408.
func gatewayHTTPStatus(c codes.Code) int {
	switch c {
	case codes.FailedPrecondition:
		return http.StatusPreconditionFailed
	case codes.Canceled:
		return http.StatusRequestTimeout
	}
	return runtime.HTTPStatusFromCode(c)
}

// gatewayRoutingError answers a path the gateway does not serve (404) or
// a method it does not take (405) as etcd 3.4 does: net/http's plain text.
func gatewayRoutingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, httpStatus int) {
	http.Error(w, http.StatusText(httpStatus), httpStatus)
}

// gatewayError answers a failed unary call (or a request the gateway
// could not read) with its gRPC status mapped to an HTTP status, as
// grpc-gateway does, in etcd 3.4's body.
func gatewayError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	var custom *runtime.HTTPStatusError
	code := 0
	if errors.As(err, &custom) {
		err, code = custom.Err, custom.HTTPStatus
	}
	s := status.Convert(err)
	if code == 0 {
		code = gatewayHTTPStatus(s.Code())
	}
	b, _ := json.Marshal(gatewayErrorBody{Error: s.Message(), Code: int32(s.Code()), Message: s.Message()})
	w.Header().Del("Trailer")
	w.Header().Del("Transfer-Encoding")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
