package node

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

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
