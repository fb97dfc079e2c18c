//go:build k8s

package k8s

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupedb/troupe/internal/polltest"
)

// stepCRD defines a custom resource, waits until it is Established and
// served, then creates and lists custom objects in pages.
func (r *run) stepCRD(t *testing.T) {
	const group, plural = "e2e.troupe.io", "widgets"
	crd := map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": plural + "." + group},
		"spec": map[string]any{
			"group": group, "scope": "Namespaced",
			"names": map[string]any{"plural": plural, "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object",
					"properties": map[string]any{"spec": map[string]any{
						"type": "object", "properties": map[string]any{"size": map[string]any{"type": "integer"}},
					}},
				}},
			}},
		},
	}
	crdPath := "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
	var created object
	r.api.do(t, http.MethodPost, crdPath, crd, http.StatusCreated, &created)
	// The apiextensions controllers update its status meanwhile.
	r.requireCreateRevision(t, "/registry/apiextensions.k8s.io/customresourcedefinitions/"+plural+"."+group,
		rvOf(t, created.Metadata.ResourceVersion))
	polltest.Eventually(t, time.Minute, "the CRD is Established", func() (bool, string) {
		var got struct {
			Status struct {
				Conditions []struct{ Type, Status string } `json:"conditions"`
			} `json:"status"`
		}
		r.api.do(t, http.MethodGet, crdPath+"/"+plural+"."+group, nil, http.StatusOK, &got)
		for _, c := range got.Status.Conditions {
			if c.Type == "Established" && c.Status == "True" {
				return true, ""
			}
		}
		return false, fmt.Sprint(got.Status.Conditions)
	})

	path := "/apis/" + group + "/v1/namespaces/" + r.ns + "/" + plural
	widget := func(i int) map[string]any {
		return map[string]any{"apiVersion": group + "/v1", "kind": "Widget",
			"metadata": map[string]any{"name": fmt.Sprintf("w-%d", i)}, "spec": map[string]any{"size": i}}
	}
	// The new resource is served a moment after Established.
	polltest.Eventually(t, time.Minute, "the first widget is created", func() (bool, string) {
		code, body, err := r.api.try(http.MethodPost, path, widget(0))
		return err == nil && code == http.StatusCreated, fmt.Sprintf("%d %v %.200s", code, err, body)
	})
	for i := 1; i < 5; i++ {
		var w object
		r.api.do(t, http.MethodPost, path, widget(i), http.StatusCreated, &w)
		r.requireModRevision(t, "/registry/"+group+"/"+plural+"/"+r.ns+"/"+w.Metadata.Name, rvOf(t, w.Metadata.ResourceVersion))
	}
	// The schema is enforced: a string size is refused.
	bad := widget(9)
	bad["spec"] = map[string]any{"size": "big"}
	if code, body, err := r.api.try(http.MethodPost, path, bad); err != nil || code != http.StatusUnprocessableEntity {
		t.Fatalf("widget with a string size: %d %v %.300s, want 422", code, err, body)
	}
	var got []string
	q := url.Values{"limit": {"2"}}
	for page := 0; page < 10; page++ {
		var l objectList
		r.api.do(t, http.MethodGet, path+"?"+q.Encode(), nil, http.StatusOK, &l)
		for _, it := range l.Items {
			got = append(got, it.Metadata.Name)
		}
		if l.Metadata.Continue == "" {
			break
		}
		q.Set("continue", l.Metadata.Continue)
	}
	if want := []string{"w-0", "w-1", "w-2", "w-3", "w-4"}; !slices.Equal(got, want) {
		t.Fatalf("widgets listed in pages of 2: %v, want %v", got, want)
	}
}

// stepLeases checks the objects the apiserver stores with an etcd lease
// (Events, its own endpoint lease) and coordination Leases, which are
// plain objects renewed by optimistic updates.
func (r *run) stepLeases(t *testing.T) {
	event := map[string]any{
		"apiVersion": "v1", "kind": "Event",
		"metadata":       map[string]any{"name": "ev-1"},
		"involvedObject": map[string]any{"kind": "ConfigMap", "namespace": r.ns, "name": cmName(0), "apiVersion": "v1"},
		"reason":         "E2E", "message": "lease-backed", "type": "Normal",
	}
	var ev object
	r.api.do(t, http.MethodPost, "/api/v1/namespaces/"+r.ns+"/events", event, http.StatusCreated, &ev)
	resp := r.requireModRevision(t, "/registry/events/"+r.ns+"/ev-1", rvOf(t, ev.Metadata.ResourceVersion))
	r.requireLease(t, "event ev-1", resp.Kvs[0].Lease, time.Hour)

	// The apiserver's own endpoint reconciler keeps its address under an
	// etcd lease.
	masters, err := r.st.cli.Get(storeCtx(t), "/registry/masterleases/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(masters.Kvs) == 0 {
		t.Fatal("no /registry/masterleases/ key")
	}
	r.requireLease(t, string(masters.Kvs[0].Key), masters.Kvs[0].Lease, 10*time.Second)

	leases := "/apis/coordination.k8s.io/v1/namespaces/" + r.ns + "/leases"
	lease := map[string]any{
		"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
		"metadata": map[string]any{"name": "l-1"},
		"spec":     map[string]any{"holderIdentity": "e2e-a", "leaseDurationSeconds": 10},
	}
	var l1 map[string]any
	r.api.do(t, http.MethodPost, leases, lease, http.StatusCreated, &l1)
	stale := clone(l1)
	renewed := clone(l1)
	renewed["spec"].(map[string]any)["renewTime"] = time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")
	var l2 object
	r.api.do(t, http.MethodPut, leases+"/l-1", renewed, http.StatusOK, &l2)
	r.requireModRevision(t, "/registry/leases/"+r.ns+"/l-1", rvOf(t, l2.Metadata.ResourceVersion))
	stale["spec"].(map[string]any)["holderIdentity"] = "e2e-b"
	code, body, err := r.api.try(http.MethodPut, leases+"/l-1", stale)
	if err != nil || code != http.StatusConflict {
		t.Fatalf("lease takeover with a stale resourceVersion: %d %v %.300s, want 409", code, err, body)
	}
	// The apiserver's identity lease in kube-system, renewed by itself.
	polltest.Eventually(t, time.Minute, "the apiserver's identity lease exists", func() (bool, string) {
		var l objectList
		r.api.do(t, http.MethodGet, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", nil, http.StatusOK, &l)
		for _, it := range l.Items {
			if strings.HasPrefix(it.Metadata.Name, "apiserver-") {
				return true, ""
			}
		}
		return false, fmt.Sprint(len(l.Items), " leases")
	})
}

// clone copies a decoded JSON object deeply enough to change its nested
// objects (lists stay shared).
func clone(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			v = clone(sub)
		}
		out[k] = v
	}
	return out
}

// requireLease checks that what holds a live etcd lease of at least min
// granted TTL.
func (r *run) requireLease(t *testing.T, what string, id int64, min time.Duration) {
	t.Helper()
	if id == 0 {
		t.Fatalf("%s has no etcd lease", what)
	}
	ttl, err := r.st.cli.TimeToLive(storeCtx(t), clientv3.LeaseID(id))
	if err != nil {
		t.Fatalf("%s: lease %x: %v", what, id, err)
	}
	if ttl.TTL <= 0 || time.Duration(ttl.GrantedTTL)*time.Second < min {
		t.Fatalf("%s: lease %x has TTL %ds of %ds, want a live one of at least %v", what, id, ttl.TTL, ttl.GrantedTTL, min)
	}
}

// stepCompaction waits for the apiserver's compactor (every
// compactionInterval it compacts to the revision it saw one interval
// earlier, recorded in compact_rev_key) to pass the first configmap, then
// checks that the store refuses reads below it and that the apiserver
// answers an exact list there with 410 Expired.
func (r *run) stepCompaction(t *testing.T) {
	if len(r.created) != configMaps {
		t.Fatal("needs the create step")
	}
	compacted := r.waitCompaction(t, r.created[0])
	key := "/registry/configmaps/" + r.ns + "/" + cmName(0)
	// The compactor records the revision (a Txn) before it compacts (a
	// second request).
	polltest.Eventually(t, 30*time.Second, "the store refuses a read below the compaction", func() (bool, string) {
		_, err := r.st.cli.Get(storeCtx(t), key, clientv3.WithRev(compacted-1))
		return errors.Is(err, rpctypes.ErrCompacted), fmt.Sprintf("read at %d: %v", compacted-1, err)
	})
	if _, err := r.st.cli.Get(storeCtx(t), key, clientv3.WithRev(compacted)); err != nil {
		t.Fatalf("store read at the compacted revision %d: %v", compacted, err)
	}
	q := url.Values{"resourceVersion": {strconv.FormatInt(r.created[0], 10)}, "resourceVersionMatch": {"Exact"}}
	polltest.Eventually(t, time.Minute, "an exact list below the compaction is 410 Expired", func() (bool, string) {
		code, body, err := r.api.try(http.MethodGet, r.configMapsPath(q), nil)
		return err == nil && code == http.StatusGone && bytes.Contains(body, []byte(`"reason":"Expired"`)),
			fmt.Sprintf("%d %v %.300s", code, err, body)
	})
	// Lists at and above the compaction still work.
	r.api.do(t, http.MethodGet, r.configMapsPath(nil), nil, http.StatusOK, nil)
}

// waitCompaction waits until the apiserver has recorded a compaction past
// rev in compact_rev_key and returns its revision; the compaction itself
// may still be under way.
func (r *run) waitCompaction(t *testing.T, past int64) int64 {
	t.Helper()
	var compacted, version int64
	polltest.Eventually(t, 4*compactionInterval+time.Minute, fmt.Sprintf("the apiserver compacts past revision %d", past), func() (bool, string) {
		resp, err := r.st.cli.Get(storeCtx(t), "compact_rev_key")
		if err != nil || len(resp.Kvs) == 0 {
			return false, fmt.Sprint(err)
		}
		version = resp.Kvs[0].Version
		compacted, err = strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
		return err == nil && version >= 2 && compacted > past, fmt.Sprintf("compact_rev_key=%s version %d", resp.Kvs[0].Value, version)
	})
	t.Logf("compacted to revision %d (compaction number %d)", compacted, version-1)
	return compacted
}

// stepRestart stops each member in turn under the apiserver and starts
// it again: the apiserver notices (a single member down fails /readyz),
// keeps writing while a cluster has a quorum, recovers, serves reads and
// writes, and a watch resumed from a resourceVersion taken before the
// restarts sees every change. It first waits for a compaction past the
// last configmap change, so that the apiserver's own watches resume on a
// compacted store, as they do for any resource quiet for a compaction
// interval.
func (r *run) stepRestart(t *testing.T) {
	if len(r.history) == 0 {
		t.Fatal("needs the create step")
	}
	r.waitCompaction(t, r.history[len(r.history)-1].rv)
	var l objectList
	r.api.do(t, http.MethodGet, r.configMapsPath(nil), nil, http.StatusOK, &l)
	from := rvOf(t, l.Metadata.ResourceVersion)
	before := len(r.history)

	r.outageFrom = len(r.api.log())
	r.st.restartEach(t, func(t *testing.T, member int) {
		if r.st.size == 1 {
			polltest.Eventually(t, time.Minute, "/readyz reports etcd down", func() (bool, string) {
				code, body, err := r.api.try(http.MethodGet, "/readyz?verbose", nil)
				return err == nil && code != http.StatusOK && bytes.Contains(body, []byte("[-]etcd")), fmt.Sprintf("%d %v", code, err)
			})
			return
		}
		// The others still make a quorum: writes go on.
		r.createRetrying(t, fmt.Sprintf("cm-member-%d-down", member))
	})
	polltest.Eventually(t, 2*time.Minute, "/readyz ok after the restart", func() (bool, string) {
		code, body, err := r.api.try(http.MethodGet, "/readyz", nil)
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %v %.300s", code, err, body)
	})
	r.outageTo = len(r.api.log())

	rv := r.createRetrying(t, "cm-after-restart")
	var got object
	r.api.do(t, http.MethodGet, r.configMapsPath(nil)+"/cm-after-restart", nil, http.StatusOK, &got)
	if rvOf(t, got.Metadata.ResourceVersion) != rv {
		t.Fatalf("get after restart: resourceVersion %s, want %d", got.Metadata.ResourceVersion, rv)
	}
	r.updateConfigMap(t, "cm-after-restart", "updated")
	var now objectList
	r.api.do(t, http.MethodGet, r.configMapsPath(nil), nil, http.StatusOK, &now)
	want := len(l.Items)
	for _, c := range r.history[before:] {
		if c.typ == "ADDED" {
			want++
		}
	}
	if len(now.Items) != want {
		t.Fatalf("list after restart: %d items, want %d", len(now.Items), want)
	}
	// A client retries 429 (the apiserver's cache is being rebuilt) after
	// the time the answer names; 410 (its history lost) would force it to
	// list everything again, which etcd spares it.
	path := r.configMapsPath(url.Values{"watch": {"1"}, "resourceVersion": {strconv.FormatInt(from, 10)}})
	var w *watchStream
	retried := 0
	polltest.Eventually(t, time.Minute, "the watch from before the restart reopens", func() (bool, string) {
		var code int
		var body []byte
		var err error
		w, code, body, err = r.api.openWatch(t, path)
		if err != nil || code == http.StatusTooManyRequests {
			retried++
			return false, fmt.Sprintf("%d %v %.300s", code, err, body)
		}
		if w == nil {
			t.Fatalf("watch from %d, taken before the restart: status %d: %.500s", from, code, body)
		}
		return true, ""
	})
	if retried > 0 {
		t.Logf("the watch from before the restart was refused %d time(s) with 429 (the apiserver rebuilt its cache) before it opened", retried)
	}
	expectChanges(t, w, r.history[before:])
}

// createRetrying creates a configmap while the store may be recovering:
// it retries transport errors and 5xx answers; an AlreadyExists after a
// retry means an earlier attempt went through.
func (r *run) createRetrying(t *testing.T, name string) int64 {
	t.Helper()
	var got object
	polltest.Eventually(t, time.Minute, "create "+name, func() (bool, string) {
		code, body, err := r.api.try(http.MethodPost, r.configMapsPath(nil), configMap(name, "v"))
		switch {
		case err == nil && code == http.StatusCreated:
			return jsonInto(body, &got) == nil, ""
		case err == nil && code == http.StatusConflict && bytes.Contains(body, []byte("AlreadyExists")):
			code, body, err = r.api.try(http.MethodGet, r.configMapsPath(nil)+"/"+name, nil)
			return err == nil && code == http.StatusOK && jsonInto(body, &got) == nil, ""
		}
		return false, fmt.Sprintf("%d %v %.300s", code, err, body)
	})
	rv := rvOf(t, got.Metadata.ResourceVersion)
	r.history = append(r.history, change{"ADDED", name, rv})
	return rv
}
