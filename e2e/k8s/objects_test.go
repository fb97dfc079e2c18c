//go:build k8s

package k8s

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
)

// The few fields of Kubernetes objects the steps look at.

type objectMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace,omitempty"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
}

type object struct {
	APIVersion string            `json:"apiVersion,omitempty"`
	Kind       string            `json:"kind,omitempty"`
	Metadata   objectMeta        `json:"metadata"`
	Data       map[string]string `json:"data,omitempty"`
}

type objectList struct {
	Metadata struct {
		ResourceVersion    string `json:"resourceVersion"`
		Continue           string `json:"continue"`
		RemainingItemCount *int64 `json:"remainingItemCount"`
	} `json:"metadata"`
	Items []object `json:"items"`
}

// apiStatus is the body of an error answer (and of a watch ERROR event).
type apiStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Code    int    `json:"code"`
}

func rvOf(t *testing.T, rv string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("resourceVersion %q is not a positive revision", rv)
	}
	return n
}

func (r *run) configMapsPath(query url.Values) string {
	p := "/api/v1/namespaces/" + r.ns + "/configmaps"
	if len(query) > 0 {
		p += "?" + query.Encode()
	}
	return p
}

func cmName(i int) string { return fmt.Sprintf("cm-%02d", i) }

func configMap(name, value string) object {
	return object{APIVersion: "v1", Kind: "ConfigMap", Metadata: objectMeta{Name: name}, Data: map[string]string{"v": value}}
}

// createConfigMap creates name and records the change for the watch steps.
func (r *run) createConfigMap(t *testing.T, name, value string) int64 {
	t.Helper()
	var got object
	r.api.do(t, http.MethodPost, r.configMapsPath(nil), configMap(name, value), http.StatusCreated, &got)
	rv := rvOf(t, got.Metadata.ResourceVersion)
	r.history = append(r.history, change{"ADDED", name, rv})
	return rv
}

// updateConfigMap replaces name's data, expecting success, and records it.
func (r *run) updateConfigMap(t *testing.T, name, value string) int64 {
	t.Helper()
	var cur object
	r.api.do(t, http.MethodGet, r.configMapsPath(nil)+"/"+name, nil, http.StatusOK, &cur)
	cur.Data = map[string]string{"v": value}
	var got object
	r.api.do(t, http.MethodPut, r.configMapsPath(nil)+"/"+name, cur, http.StatusOK, &got)
	rv := rvOf(t, got.Metadata.ResourceVersion)
	if rv <= rvOf(t, cur.Metadata.ResourceVersion) {
		t.Fatalf("update of %s: resourceVersion %d not above %s", name, rv, cur.Metadata.ResourceVersion)
	}
	r.history = append(r.history, change{"MODIFIED", name, rv})
	return rv
}

// requireStatus decodes an error body and checks its code and reason.
func requireStatus(t *testing.T, body []byte, code int, reason string) apiStatus {
	t.Helper()
	var s apiStatus
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("error body is not a Status: %v: %.500s", err, body)
	}
	if s.Code != code || s.Reason != reason || s.Status != "Failure" {
		t.Fatalf("status %+v, want code %d reason %s", s, code, reason)
	}
	return s
}

func jsonInto(body []byte, out any) error { return json.Unmarshal(body, out) }
