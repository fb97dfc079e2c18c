package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHTTPKnobsOnAMember starts a member with etcd's HTTP flags and
// checks its client URL: no gateway, pprof served, another Host refused,
// the allowed origin named.
func TestHTTPKnobsOnAMember(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	fs := flagSet(&cfg)
	if err := fs.Parse([]string{"--enable-grpc-gateway=false", "--enable-pprof", "--host-whitelist=127.0.0.1",
		"--cors=http://a.example:80", "--metrics=extensive"}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.ResolveFlags(fs); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	base := cfg.ListenClientURLs[0].String()
	do := func(method, path, host, origin string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader("{}"))
		if host != "" {
			req.Host = host
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, _ := do("POST", "/v3/kv/range", "", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("gateway off: /v3/kv/range answered %d, want 404", resp.StatusCode)
	}
	if resp, body := do("GET", "/debug/pprof/", "", ""); resp.StatusCode != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof: %d", resp.StatusCode)
	}
	if resp, body := do("GET", "/version", "evil.example:2379", ""); resp.StatusCode != http.StatusMisdirectedRequest || !strings.Contains(body, "CVE-2018-5702") {
		t.Errorf("other host: %d %q", resp.StatusCode, body)
	}
	if resp, _ := do("GET", "/version", "", "http://a.example:80"); resp.Header.Get("Access-Control-Allow-Origin") != "http://a.example:80" {
		t.Errorf("allowed origin: headers %v", resp.Header)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client(t, cfg).Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if _, body := do("GET", "/metrics", "", ""); !strings.Contains(body, `grpc_server_handling_seconds_count{grpc_method="Put"`) {
		t.Errorf("--metrics=extensive: no grpc_server_handling_seconds in /metrics")
	}
}

// TestListenClientHTTPURLs: with --listen-client-http-urls the HTTP
// endpoints (the gateway among them) move there and the client URL
// serves gRPC only.
func TestListenClientHTTPURLs(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	httpURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	fs := flagSet(&cfg)
	if err := fs.Parse([]string{"--listen-client-http-urls=" + httpURL}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client(t, cfg).Put(ctx, "k", "v"); err != nil {
		t.Fatalf("gRPC on the client URL: %v", err)
	}
	resp, err := http.Post(httpURL+"/v3/kv/range", "application/json", strings.NewReader(`{"key":"aw=="}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"value":"dg=="`) {
		t.Fatalf("gateway on the HTTP URL: %d %s", resp.StatusCode, body)
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	if resp, err := hc.Get(cfg.ListenClientURLs[0].String() + "/health"); err == nil {
		resp.Body.Close()
		t.Fatalf("the client URL still answers HTTP/1: %d", resp.StatusCode)
	}
}
