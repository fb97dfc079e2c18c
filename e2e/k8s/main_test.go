//go:build k8s

// Package k8s runs an unmodified kube-apiserver (v1.34) against a troupe
// member, then against three, and drives it over its REST API as
// Kubernetes' own clients do: readiness, creates, paginated and exact
// lists, update conflicts, watches, CRDs, lease-backed objects, the
// apiserver's compaction, a member restart, and a log free of storage
// timeouts; then against three members with client and peer mTLS, the
// apiserver presenting a client certificate (--etcd-cafile,
// --etcd-certfile, --etcd-keyfile) as kubeadm sets it up. The same harness
// runs against real etcd for comparison.
//
// The build tag keeps it out of `go test ./...`: it needs a kube-apiserver
// binary (about 11 minutes to build). Run it with `task test:k8s`, which
// builds and caches one with scripts/kube-apiserver.sh, or by hand:
//
//	go test -tags k8s -count=1 -v ./e2e/k8s -k8s.apiserver=/path/to/kube-apiserver
//	TROUPE_E2E_SERVER=etcd go test -tags k8s ...   # etcd 3.6.8 from $TROUPE_ETCD36
package k8s

import (
	"flag"
	"os"
	"testing"

	"github.com/troupedb/troupe/e2e/e2etest"
)

var (
	apiserverFlag = flag.String("k8s.apiserver", "", "kube-apiserver binary (default $KUBE_APISERVER)")
	kubectlFlag   = flag.String("k8s.kubectl", "", "kubectl binary (default $KUBECTL, else kubectl in PATH)")
	logDirFlag    = flag.String("k8s.logdir", "", "keep each kube-apiserver log in this directory (default $TROUPE_K8S_LOGDIR; else they go with the test's temp dir)")
)

func TestMain(m *testing.M) { os.Exit(e2etest.Main(m)) }

func firstSet(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
