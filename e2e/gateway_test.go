package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// gatewayStep is one JSON request to the gateway. stream > 0 reads that
// many JSON lines of a streamed answer (/v3/watch, /v3/lease/keepalive)
// after, for a watch, the puts in then are made. mask names fields whose
// values differ between two servers for reasons of their own (sizes,
// indexes, the remaining TTL); raw compares the body byte for byte but for
// JSON whitespace.
type gatewayStep struct {
	path, body string
	stream     int
	then       []string // bodies of /v3/kv/put requests made once the stream answered its first line
	mask       []string
	raw        bool
}

func gatewayScript() []gatewayStep {
	return []gatewayStep{
		{path: "/v3/kv/put", body: `{"key":"YQ==","value":"MQ=="}`},                   // a=1
		{path: "/v3/kv/put", body: `{"key":"Yg==","value":"Mg==","prev_kv":true}`},    // b=2
		{path: "/v3/kv/put", body: `{"key":"YQ==","value":"Mw==","prev_kv":true}`},    // a=3
		{path: "/v3/kv/range", body: `{"key":"YQ=="}`},                                // a
		{path: "/v3/kv/range", body: `{"key":"AA==","range_end":"AA==","limit":"1"}`}, // all, more
		{path: "/v3/kv/range", body: `{"key":"YQ==","range_end":"Yw==","count_only":true}`},
		{path: "/v3/kv/range", body: `{"key":"YQ==","revision":"2"}`},             // a at rev 2
		{path: "/v3/kv/range", body: `{}`, raw: true},                             // key not provided
		{path: "/v3/kv/range", body: `{"key":"YQ==","revision":"99"}`, raw: true}, // future revision
		{path: "/v3/kv/range", body: `not json`, raw: true},                       // unreadable request
		{path: "/v3/kv/nope", body: `{}`, raw: true},                              // unknown path
		{path: "/v3beta/kv/range", body: `{"key":"Yg==","unknown_field":1}`},      // old prefix, unknown field
		{path: "/v3/kv/txn", body: `{"compare":[{"key":"YQ==","target":"VALUE","result":"EQUAL","value":"Mw=="}],` +
			`"success":[{"request_put":{"key":"Yw==","value":"NA=="}},{"request_range":{"key":"YQ=="}}],` +
			`"failure":[{"request_range":{"key":"Yg=="}}]}`},
		{path: "/v3/kv/txn", body: `{"compare":[{"key":"YQ==","target":"MOD","result":"LESS","mod_revision":"2"}],` +
			`"success":[{"request_delete_range":{"key":"YQ=="}}],"failure":[{"request_range":{"key":"Yg=="}}]}`},
		{path: "/v3/kv/deleterange", body: `{"key":"Yg==","range_end":"ZA==","prev_kv":true}`}, // b, c
		{path: "/v3/kv/compaction", body: `{"revision":"3"}`},
		{path: "/v3/kv/range", body: `{"key":"YQ==","revision":"2"}`, raw: true}, // compacted
		{path: "/v3/lease/grant", body: `{"TTL":"60","ID":"1000"}`},
		{path: "/v3/lease/grant", body: `{"TTL":"60","ID":"1000"}`}, // already exists: an error in the body
		{path: "/v3/kv/put", body: `{"key":"bA==","value":"eA==","lease":"1000"}`},
		{path: "/v3/lease/timetolive", body: `{"ID":"1000","keys":true}`, mask: []string{"TTL"}},
		{path: "/v3/lease/keepalive", body: `{"ID":"1000"}`, stream: 1, mask: []string{"TTL"}},
		{path: "/v3/lease/revoke", body: `{"ID":"1000"}`},
		{path: "/v3/lease/revoke", body: `{"ID":"1000"}`, raw: true}, // lease not found
		{path: "/v3/kv/range", body: `{"key":"bA=="}`},
		{path: "/v3/watch", body: `{"create_request":{"key":"dw==","prev_kv":true}}`, stream: 3,
			then: []string{`{"key":"dw==","value":"MQ=="}`, `{"key":"dw==","value":"Mg=="}`}},
		{path: "/v3/maintenance/status", body: `{}`,
			mask: []string{"dbSize", "dbSizeInUse", "leader", "raftIndex", "raftTerm", "raftAppliedIndex"}},
	}
}

// gatewayAnswer is what a step got: status, content type and the body,
// normalized unless the step is raw.
type gatewayAnswer struct {
	code        int
	contentType string
	body        string
}

func gatewayPost(ctx context.Context, t *testing.T, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewBufferString(body))
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	return resp
}

// runGateway sends the script to s and returns its answers.
func runGateway(t *testing.T, s *e2etest.Server) []gatewayAnswer {
	var out []gatewayAnswer
	for _, st := range gatewayScript() {
		c, cancel := context.WithCancel(ctx(t))
		resp := gatewayPost(c, t, s.Endpoint()+st.path, st.body)
		a := gatewayAnswer{code: resp.StatusCode, contentType: resp.Header.Get("Content-Type")}
		var body []byte
		if st.stream > 0 {
			lines := bufio.NewReader(resp.Body)
			for i := range st.stream {
				line, err := lines.ReadBytes('\n')
				if err != nil {
					t.Fatalf("%s %s: line %d of the stream: %v", s.Kind(), st.path, i, err)
				}
				body = append(body, normalizeJSON(t, line, st.mask)...)
				body = append(body, '\n')
				if i == 0 {
					for _, put := range st.then {
						r := gatewayPost(ctx(t), t, s.Endpoint()+"/v3/kv/put", put)
						_, _ = io.Copy(io.Discard, r.Body)
						r.Body.Close()
					}
				}
			}
		} else {
			b, err := io.ReadAll(resp.Body)
			must(t, err)
			body = b
			switch {
			case !st.raw:
				body = normalizeJSON(t, b, st.mask)
			case json.Valid(b):
				// keys in the server's order, without the spaces
				// protojson puts at random
				var c bytes.Buffer
				must(t, json.Compact(&c, b))
				body = c.Bytes()
			}
		}
		cancel()
		resp.Body.Close()
		a.body = string(body)
		out = append(out, a)
	}
	return out
}

// normalizeJSON re-encodes a JSON answer with its keys sorted (protojson
// spaces its output at random) and the member's own fields, and mask,
// replaced by "*".
func normalizeJSON(t *testing.T, b []byte, mask []string) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	masked := map[string]bool{"cluster_id": true, "member_id": true, "raft_term": true}
	for _, m := range mask {
		masked[m] = true
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if masked[k] {
					v[k] = "*"
					continue
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	out, err := json.Marshal(v)
	must(t, err)
	return out
}

// TestGatewayAsEtcd sends the same JSON requests to the gateway of real
// etcd and of the server under test (POST /v3/...) and requires the same
// status, content type and body, member-specific fields masked; errors
// are compared byte for byte but for JSON whitespace.
func TestGatewayAsEtcd(t *testing.T) {
	etcd := e2etest.Start(t, e2etest.Config{Kind: e2etest.Etcd})
	sut := e2etest.Start(t, e2etest.Config{})
	want := runGateway(t, etcd)
	got := runGateway(t, sut)
	script := gatewayScript()
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("step %d POST %s %s:\n--- etcd\n%s\n--- %s\n%s", i, script[i].path, script[i].body,
				fmt.Sprintf("%d %s %s", want[i].code, want[i].contentType, want[i].body), sut.Kind(),
				fmt.Sprintf("%d %s %s", got[i].code, got[i].contentType, got[i].body))
		}
	}
}
