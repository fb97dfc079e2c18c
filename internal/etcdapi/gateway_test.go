package etcdapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	"github.com/troupedb/troupe/internal/hublink"
	"github.com/troupedb/troupe/internal/memberview"
	"github.com/troupedb/troupe/internal/raftclient"
	"github.com/troupedb/troupe/internal/transport"
)

// gatewayOver serves the services of a member whose view is state on an
// in-memory gRPC server and returns their client HTTP handler, whose
// gateway dials that server.
func gatewayOver(t *testing.T, state *memberview.View) *httptest.Server {
	t.Helper()
	sys := actor.NewActorSystem()
	t.Cleanup(sys.Shutdown)
	lis := bufconn.Listen(1 << 20)
	rc := raftclient.New(raftclient.Config{Root: sys.Root, View: state, Waits: raftclient.NewWaits(), RequestTimeout: time.Second})
	s := New(Config{
		Raft: rc, Hub: &hublink.Link{}, Root: sys.Root, MaxRequestBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler),
		Dialer: transport.Dialer{NetDial: func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }},
	})
	srv := grpc.NewServer(s.ServerOptions()...)
	s.Register(srv)
	go func() { _ = srv.Serve(lis) }()
	h, err := s.ClientHandler(url.URL{Scheme: "http", Host: "0.0.0.0:2379"}, &net.TCPAddr{IP: net.IPv4zero, Port: 2379})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(func() { hs.Close(); srv.Stop(); s.Close() })
	return hs
}

func gatewayPost(t *testing.T, hs *httptest.Server, path, body string, header ...string) (int, string) {
	t.Helper()
	req := httptest.NewRequest("POST", hs.URL+path, strings.NewReader(body))
	req.RequestURI = ""
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := new(strings.Builder)
	_, _ = io.Copy(b, resp.Body)
	return resp.StatusCode, b.String()
}

// TestGatewayPassesTheGates: gateway requests reach the services through
// the gRPC server's interceptors: a learner refuses a put, and a request
// that asks for a leader (grpc-gateway forwards Grpc-Metadata-* headers
// as metadata) fails without one, as over gRPC.
func TestGatewayPassesTheGates(t *testing.T) {
	state := memberview.New(memberview.Member{ID: 1}, 1)
	state.SetLearner(true)
	hs := gatewayOver(t, state)
	code, body := gatewayPost(t, hs, "/v3/kv/put", `{"key":"YQ==","value":"MQ=="}`)
	want := `{"code":9,"message":"etcdserver: rpc not supported for learner"}`
	if code != 400 || compactJSON(t, body) != want {
		t.Fatalf("learner put: %d %s, want 400 %s", code, body, want)
	}
	state.SetLearner(false)
	code, body = gatewayPost(t, hs, "/v3/kv/put", `{"key":"YQ==","value":"MQ=="}`, "Grpc-Metadata-hasleader", "true")
	want = `{"code":14,"message":"etcdserver: no leader"}`
	if code != 503 || compactJSON(t, body) != want {
		t.Fatalf("put without a leader: %d %s, want 503 %s", code, body, want)
	}
}

// compactJSON removes the whitespace protojson puts at random (its
// output is unstable on purpose) from a JSON body.
func compactJSON(t *testing.T, body string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(body)); err != nil {
		t.Fatalf("not JSON: %q: %v", body, err)
	}
	return b.String()
}

// TestGatewayRoutingErrors: an unknown path or method is answered as
// etcd 3.6 does, a JSON status (404, and 501 for a method); /v3beta/ is
// /v3/.
func TestGatewayRoutingErrors(t *testing.T) {
	hs := gatewayOver(t, memberview.New(memberview.Member{ID: 1}, 1))
	if code, body := gatewayPost(t, hs, "/v3/nope", `{}`); code != 404 || compactJSON(t, body) != `{"code":5,"message":"Not Found"}` {
		t.Fatalf("unknown path: %d %q", code, body)
	}
	req := httptest.NewRequest("GET", hs.URL+"/v3/kv/range", nil)
	req.RequestURI = ""
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 501 {
		t.Fatalf("GET /v3/kv/range: %d, want 501", resp.StatusCode)
	}
	if code, body := gatewayPost(t, hs, "/v3beta/kv/range", `{}`); code != 400 || !strings.Contains(body, "key is not provided") {
		t.Fatalf("/v3beta/kv/range: %d %s", code, body)
	}
}
