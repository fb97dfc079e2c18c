// Package e2e runs troupe (or, with -e2e.server=etcd, real etcd 3.6.8) as a
// real process on 127.0.0.1 and checks it with real clients: clientv3,
// raw gRPC and etcdctl. Every test is developed against etcd, so a failure
// against troupe is a compatibility bug in troupe.
package e2e

import (
	"os"
	"testing"

	"github.com/troupedb/troupe/e2e/e2etest"
)

func TestMain(m *testing.M) { os.Exit(e2etest.Main(m)) }
