package e2e

// The JSON gateway with auth on: POST /v3/auth/authenticate gives a token
// that the Authorization header carries on later requests, as etcd 3.6.8.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// gatewayAuthStep is one request: as names the user whose token goes in
// the Authorization header ("" none, "bogus" a made-up token).
type gatewayAuthStep struct {
	as, path, body string
	mask           []string
}

var gatewayAuthScript = []gatewayAuthStep{
	{"", "/v3/kv/range", `{"key":"azE="}`, nil}, // k1 without a token
	{"", "/v3/auth/authenticate", `{"name":"alice","password":"wrong"}`, nil},
	{"", "/v3/auth/authenticate", `{"name":"alice","password":"alicepw"}`, nil},
	{"", "/v3/auth/authenticate", `{"name":"root","password":"` + rootPassword + `"}`, nil},
	{"alice", "/v3/kv/range", `{"key":"azE="}`, nil},
	{"alice", "/v3/kv/range", `{"key":"azI="}`, nil}, // k2: denied
	{"alice", "/v3/kv/put", `{"key":"azE=","value":"eA=="}`, nil},
	{"alice", "/v3/kv/txn", `{"success":[{"request_range":{"key":"azE="}}]}`, nil},
	{"alice", "/v3/auth/user/list", `{}`, nil},
	{"alice", "/v3/maintenance/status", `{}`, nil},
	{"alice", "/v3/watch", `{"create_request":{"key":"azI="}}`, nil}, // k2: created and canceled
	{"bogus", "/v3/kv/range", `{"key":"azE="}`, nil},
	{"root", "/v3/kv/put", `{"key":"azI=","value":"eQ=="}`, nil},
	{"root", "/v3/auth/user/list", `{}`, nil},
	{"root", "/v3/auth/role/get", `{"role":"r-key"}`, nil},
	{"root", "/v3/auth/status", `{}`, nil},
	{"root", "/v3/auth/user/changepw", `{"name":"alice","password":"alicepw2"}`, nil},
	{"alice", "/v3/kv/range", `{"key":"azE="}`, nil}, // the token died with the password
	{"root", "/v3/auth/disable", `{}`, nil},
	{"", "/v3/kv/range", `{"key":"azI="}`, nil},
}

// runGatewayAuth sends gatewayAuthScript to s, auth enabled by enableAuth.
func runGatewayAuth(t *testing.T, s *e2etest.Server) []string {
	enableAuth(t, s)
	tokens := map[string]string{"bogus": "bogus.1"}
	var out []string
	for _, st := range gatewayAuthScript {
		req, err := http.NewRequestWithContext(ctx(t), "POST", s.Endpoint()+st.path, bytes.NewBufferString(st.body))
		must(t, err)
		req.Header.Set("Content-Type", "application/json")
		if st.as != "" {
			req.Header.Set("Authorization", tokens[st.as])
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		var body []byte
		if st.path == "/v3/watch" {
			// the stream's first line, then hang up
			line, err := readLine(resp.Body)
			must(t, err)
			body = line
		} else {
			body, err = io.ReadAll(resp.Body)
			must(t, err)
		}
		resp.Body.Close()
		if st.path == "/v3/auth/authenticate" && resp.StatusCode == http.StatusOK {
			var a struct{ Token string }
			must(t, json.Unmarshal(body, &a))
			var r struct{ Name string }
			must(t, json.Unmarshal([]byte(st.body), &r))
			tokens[r.Name] = a.Token
			body = bytes.Replace(body, []byte(a.Token), []byte(maskToken(a.Token)), 1)
		}
		out = append(out, fmt.Sprintf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), normalizeJSON(t, body, st.mask)))
	}
	return out
}

func readLine(r io.Reader) ([]byte, error) {
	var line []byte
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return line, nil
			}
			line = append(line, buf[0])
		}
		if err != nil {
			return line, err
		}
	}
}

// TestAuthGatewayAsEtcd compares gatewayAuthScript's answers.
func TestAuthGatewayAsEtcd(t *testing.T) {
	ref := e2etest.Start(t, e2etest.Config{Kind: e2etest.Etcd, Args: []string{"--bcrypt-cost", "4"}})
	sut := e2etest.Start(t, e2etest.Config{Args: []string{"--bcrypt-cost", "4"}})
	want, got := runGatewayAuth(t, ref), runGatewayAuth(t, sut)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s %s as %q differs:\n--- etcd\n%s\n--- %s\n%s", gatewayAuthScript[i].path, gatewayAuthScript[i].body, gatewayAuthScript[i].as, want[i], sut.Kind(), got[i])
		}
		if dumpAnswers() {
			t.Logf("%s %s as %q:\n%s", gatewayAuthScript[i].path, gatewayAuthScript[i].body, gatewayAuthScript[i].as, want[i])
		}
	}
}
