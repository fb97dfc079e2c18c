//go:build k8s

package k8s

import (
	"bytes"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const configMaps = 25

func (r *run) stepReadiness(t *testing.T) {
	for _, c := range []struct {
		path   string
		checks []string
	}{
		{"/readyz?verbose", []string{"[+]etcd ok", "[+]etcd-readiness ok", "readyz check passed"}},
		{"/livez?verbose", []string{"[+]etcd ok", "livez check passed"}},
		{"/readyz/etcd", []string{"ok"}},
		{"/livez/etcd", []string{"ok"}},
	} {
		body := r.api.do(t, http.MethodGet, c.path, nil, http.StatusOK, nil)
		for _, want := range c.checks {
			if !bytes.Contains(body, []byte(want)) {
				t.Errorf("GET %s: no %q in:\n%s", c.path, want, body)
			}
		}
	}
}

// stepCreate creates the namespace and cm-00..cm-24 in it, and checks that
// each resourceVersion is the key's mod revision in the store.
func (r *run) stepCreate(t *testing.T) {
	ns := object{APIVersion: "v1", Kind: "Namespace", Metadata: objectMeta{Name: r.ns}}
	var gotNS object
	r.api.do(t, http.MethodPost, "/api/v1/namespaces", ns, http.StatusCreated, &gotNS)
	r.requireModRevision(t, "/registry/namespaces/"+r.ns, rvOf(t, gotNS.Metadata.ResourceVersion))

	r.created = nil
	for i := range configMaps {
		rv := r.createConfigMap(t, cmName(i), strconv.Itoa(i))
		if len(r.created) > 0 && rv <= r.created[len(r.created)-1] {
			t.Fatalf("create %s: resourceVersion %d not above the previous %d", cmName(i), rv, r.created[len(r.created)-1])
		}
		r.created = append(r.created, rv)
	}
	for i, rv := range r.created {
		r.requireModRevision(t, "/registry/configmaps/"+r.ns+"/"+cmName(i), rv)
	}
	var got object
	r.api.do(t, http.MethodGet, r.configMapsPath(nil)+"/"+cmName(0), nil, http.StatusOK, &got)
	if rvOf(t, got.Metadata.ResourceVersion) != r.created[0] || got.Data["v"] != "0" {
		t.Fatalf("get %s: %+v, want resourceVersion %d and v=0", cmName(0), got, r.created[0])
	}
	// A second create of the same name is refused.
	_, body, err := r.api.try(http.MethodPost, r.configMapsPath(nil), configMap(cmName(0), "again"))
	if err != nil {
		t.Fatal(err)
	}
	requireStatus(t, body, http.StatusConflict, "AlreadyExists")
}

// listPages lists with query page by page and returns the names and the
// resourceVersion of every page.
func (r *run) listPages(t *testing.T, query url.Values) (names []string, rvs []int64, remaining []*int64) {
	t.Helper()
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	for page := 0; ; page++ {
		if page > configMaps+2 {
			t.Fatalf("list %v: pagination does not end", query)
		}
		var l objectList
		r.api.do(t, http.MethodGet, r.configMapsPath(q), nil, http.StatusOK, &l)
		for _, it := range l.Items {
			names = append(names, it.Metadata.Name)
		}
		rvs = append(rvs, rvOf(t, l.Metadata.ResourceVersion))
		remaining = append(remaining, l.Metadata.RemainingItemCount)
		if l.Metadata.Continue == "" {
			return names, rvs, remaining
		}
		// A continue token carries the revision; it replaces the one asked for.
		q.Del("resourceVersion")
		q.Del("resourceVersionMatch")
		q.Set("continue", l.Metadata.Continue)
	}
}

func names(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, cmName(i))
	}
	return out
}

func (r *run) stepList(t *testing.T) {
	if len(r.created) != configMaps {
		t.Fatal("needs the create step")
	}
	last := r.created[configMaps-1]

	// Pages of a consistent list share the revision of the first page.
	got, rvs, remaining := r.listPages(t, url.Values{"limit": {"10"}})
	if !slices.Equal(got, names(0, configMaps)) {
		t.Fatalf("paginated list: %v", got)
	}
	if len(rvs) != 3 || rvs[0] < last || rvs[1] != rvs[0] || rvs[2] != rvs[0] {
		t.Fatalf("paginated list: page resourceVersions %v, want 3 equal ones >= %d", rvs, last)
	}
	if remaining[0] == nil || *remaining[0] != 15 || remaining[1] == nil || *remaining[1] != 5 {
		t.Fatalf("paginated list: remainingItemCount %v %v, want 15 and 5", remaining[0], remaining[1])
	}

	// Exact: the list as it was at the 10th create, whole and in pages.
	exact := r.created[9]
	for _, limit := range []string{"", "4"} {
		q := url.Values{"resourceVersion": {strconv.FormatInt(exact, 10)}, "resourceVersionMatch": {"Exact"}}
		if limit != "" {
			q.Set("limit", limit)
		}
		got, rvs, _ := r.listPages(t, q)
		if !slices.Equal(got, names(0, 10)) {
			t.Fatalf("exact list at %d (limit %q): %v, want cm-00..cm-09", exact, limit, got)
		}
		for _, rv := range rvs {
			if rv != exact {
				t.Fatalf("exact list at %d (limit %q): page resourceVersions %v", exact, limit, rvs)
			}
		}
	}

	// NotOlderThan the last create, and any (resourceVersion=0, from the
	// watch cache) once the cache has seen it.
	for _, q := range []url.Values{
		{"resourceVersion": {strconv.FormatInt(last, 10)}, "resourceVersionMatch": {"NotOlderThan"}},
		{"resourceVersion": {"0"}},
	} {
		got, rvs, _ := r.listPages(t, q)
		if !slices.Equal(got, names(0, configMaps)) || rvs[0] < last {
			t.Fatalf("list %v: %v at %v", q, got, rvs)
		}
	}

	// A consistent list of a resource nobody writes.
	var quiet objectList
	r.api.do(t, http.MethodGet, "/api/v1/namespaces/"+r.ns+"/podtemplates", nil, http.StatusOK, &quiet)
	if len(quiet.Items) != 0 || rvOf(t, quiet.Metadata.ResourceVersion) < last {
		t.Fatalf("podtemplates: %d items at %s", len(quiet.Items), quiet.Metadata.ResourceVersion)
	}

	r.kubectlChunks(t)
}

// kubectlChunks lists the configmaps with kubectl in chunks of 7, as an
// operator would, and checks kubectl asked for pages.
func (r *run) kubectlChunks(t *testing.T) {
	bin := firstSet(*kubectlFlag, os.Getenv("KUBECTL"))
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("kubectl"); err != nil {
			t.Fatalf("kubectl not found (install Debian's kubernetes-client or pass -k8s.kubectl=PATH): %v", err)
		}
	}
	home := t.TempDir() // no ~/.kube/config of the machine
	cmd := exec.Command(bin, "--server", r.api.url, "--token", r.api.token,
		"--certificate-authority", filepath.Join(r.api.certDir, "apiserver.crt"),
		"--request-timeout=30s", "-v=6",
		"get", "configmaps", "-n", r.ns, "--chunk-size=7", "-o", "name")
	cmd.Env = append(os.Environ(), "HOME="+home, "KUBECONFIG=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl get --chunk-size=7: %v\n%s", err, stderr.String())
	}
	var want []string
	for _, n := range names(0, configMaps) {
		want = append(want, "configmap/"+n)
	}
	if got := strings.Fields(stdout.String()); !slices.Equal(got, want) {
		t.Fatalf("kubectl get --chunk-size=7: %v", got)
	}
	if n := strings.Count(stderr.String(), "limit=7"); n != 4 || !strings.Contains(stderr.String(), "continue=") {
		t.Fatalf("kubectl made %d requests with limit=7, want 4 pages with continue tokens:\n%s", n, stderr.String())
	}
}

// stepUpdateConflict updates with the current resourceVersion, then with
// the stale one: the second update and a delete with the stale one as
// precondition are refused with 409 Conflict and change nothing.
func (r *run) stepUpdateConflict(t *testing.T) {
	path := r.configMapsPath(nil) + "/" + cmName(0)
	var stale object
	r.api.do(t, http.MethodGet, path, nil, http.StatusOK, &stale)
	rv := r.updateConfigMap(t, cmName(0), "updated")
	r.requireModRevision(t, "/registry/configmaps/"+r.ns+"/"+cmName(0), rv)

	stale.Data = map[string]string{"v": "stale"}
	code, body, err := r.api.try(http.MethodPut, path, stale)
	if err != nil || code != http.StatusConflict {
		t.Fatalf("update with a stale resourceVersion: %d %v %.500s, want 409", code, err, body)
	}
	s := requireStatus(t, body, http.StatusConflict, "Conflict")
	if !strings.Contains(s.Message, "the object has been modified; please apply your changes to the latest version and try again") {
		t.Fatalf("conflict message %q", s.Message)
	}
	del := map[string]any{"apiVersion": "v1", "kind": "DeleteOptions",
		"preconditions": map[string]string{"resourceVersion": stale.Metadata.ResourceVersion}}
	code, body, err = r.api.try(http.MethodDelete, path, del)
	if err != nil || code != http.StatusConflict {
		t.Fatalf("delete with a stale precondition: %d %v %.500s, want 409", code, err, body)
	}
	requireStatus(t, body, http.StatusConflict, "Conflict")

	var now object
	r.api.do(t, http.MethodGet, path, nil, http.StatusOK, &now)
	if now.Data["v"] != "updated" || rvOf(t, now.Metadata.ResourceVersion) != rv {
		t.Fatalf("after the refused writes: %+v, want v=updated at %d", now, rv)
	}
}
