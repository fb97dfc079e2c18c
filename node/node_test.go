package node

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func freePort(t *testing.T) int {
	t.Helper()
	// A port is free only until someone binds it: the ports of a cluster
	// are all picked before any member starts, so the kernel may hand the
	// same one out twice. Never return a port this test binary returned.
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if _, dup := handedOut.LoadOrStore(port, true); !dup {
			return port
		}
	}
	t.Fatal("no free port not handed out before in 100 tries")
	return 0
}

// handedOut holds the ports freePort returned.
var handedOut sync.Map

// testConfig returns a single-member config on free loopback ports.
func testConfig(t *testing.T, dir string) Config {
	cfg := Default()
	cfg.DataDir = dir
	cu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	cfg.ListenClientURLs = []url.URL{*cu}
	cfg.AdvertiseClientURLs = []url.URL{*cu}
	cfg.ListenPeerURLs = []url.URL{*pu}
	cfg.InitialAdvertisePeerURLs = []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ListenActorURL = ""
	if testing.Verbose() {
		cfg.Logger, _ = NewLogger(os.Stderr, "debug", "text")
	} else {
		cfg.Logger, _ = NewLogger(os.Stderr, "error", "text")
	}
	return cfg
}

func client(t *testing.T, cfg Config) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{
		Endpoints: []string{cfg.ListenClientURLs[0].Host}, DialTimeout: 5 * time.Second,
		Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStartPutRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	n, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	put, err := c.Put(ctx, "foo", "bar")
	if err != nil {
		t.Fatal(err)
	}
	get, err := c.Get(ctx, "foo")
	if err != nil {
		t.Fatal(err)
	}
	if len(get.Kvs) != 1 || string(get.Kvs[0].Value) != "bar" || get.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("get = %v, put rev %d", get.Kvs, put.Header.Revision)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	c.Close()

	n, err = Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	c = client(t, cfg)
	get, err = c.Get(ctx, "foo")
	if err != nil {
		t.Fatal(err)
	}
	if len(get.Kvs) != 1 || get.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("after restart get = %v", get.Kvs)
	}
}
