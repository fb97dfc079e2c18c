package etcdapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })

func serveAccess(o HTTPOptions, method, host, origin string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://"+host+"/version", nil)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	rec := httptest.NewRecorder()
	o.access(okHandler).ServeHTTP(rec, req)
	return rec
}

// TestHostWhitelist: etcd's --host-whitelist rejects a plaintext request
// for another host with 421 and its CVE-2018-5702 text; "*" (the
// default) or an empty list allows all.
func TestHostWhitelist(t *testing.T) {
	o := HTTPOptions{HostWhitelist: []string{"etcd.example", "127.0.0.1"}}
	for _, tc := range []struct {
		host string
		code int
	}{
		{"etcd.example:2379", 200}, {"127.0.0.1:2379", 200}, {"etcd.example", 200},
		{"evil.example:2379", http.StatusMisdirectedRequest}, {"localhost:2379", http.StatusMisdirectedRequest},
	} {
		rec := serveAccess(o, "GET", tc.host, "")
		if rec.Code != tc.code {
			t.Errorf("host %s: %d, want %d", tc.host, rec.Code, tc.code)
		}
		if tc.code == http.StatusMisdirectedRequest && !strings.Contains(rec.Body.String(), `  - e.g. etcd --host-whitelist "`+strings.Split(tc.host, ":")[0]+`"`) {
			t.Errorf("host %s: body %q", tc.host, rec.Body.String())
		}
	}
	for _, all := range [][]string{nil, {"*"}, {"a.example", "*"}} {
		if rec := serveAccess(HTTPOptions{HostWhitelist: all}, "GET", "evil.example:2379", ""); rec.Code != 200 {
			t.Errorf("whitelist %q: %d, want 200", all, rec.Code)
		}
	}
}

// TestCORS: etcd's --cors answers an allowed origin with headers naming
// it, "*" for all, nothing for another origin, and OPTIONS with 200.
func TestCORS(t *testing.T) {
	o := HTTPOptions{CORS: []string{"http://a.example"}}
	rec := serveAccess(o, "GET", "127.0.0.1:2379", "http://a.example")
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "http://a.example" {
		t.Errorf("allowed origin: header %q", got)
	}
	if got := rec.Header().Get("Access-Control-Allow-Methods"); got != "POST, GET, OPTIONS, PUT, DELETE" {
		t.Errorf("methods header %q", got)
	}
	rec = serveAccess(o, "GET", "127.0.0.1:2379", "http://b.example")
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "" || rec.Body.String() != "ok" {
		t.Errorf("other origin: header %q body %q", got, rec.Body.String())
	}
	rec = serveAccess(HTTPOptions{CORS: []string{"*"}}, "GET", "127.0.0.1:2379", "http://b.example")
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("all origins: header %q", got)
	}
	rec = serveAccess(o, http.MethodOptions, "127.0.0.1:2379", "http://a.example")
	if rec.Code != 200 || rec.Body.String() != "" {
		t.Errorf("OPTIONS: %d %q, want 200 and no body", rec.Code, rec.Body.String())
	}
}

func TestPprofHandlers(t *testing.T) {
	mux := http.NewServeMux()
	registerPprof(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "goroutine") {
		t.Fatalf("/debug/pprof/ answered %d", rec.Code)
	}
}
