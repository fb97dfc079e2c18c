package transport

import (
	"net/url"
	"testing"
)

// TestSocketReusePort: with SO_REUSEPORT a second listener binds the port
// the first holds (as a second etcd with --socket-reuse-port would);
// without it the bind fails.
func TestSocketReusePort(t *testing.T) {
	reuse := SocketOpts{ReusePort: true, ReuseAddress: true}
	first, err := Listen(url.URL{Scheme: "http", Host: "127.0.0.1:0"}, nil, reuse)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	u := url.URL{Scheme: "http", Host: first.Addr().String()}

	if lis, err := Listen(u, nil, SocketOpts{ReuseAddress: true}); err == nil {
		lis.Close()
		t.Fatal("bound a taken port without SO_REUSEPORT")
	}
	second, err := Listen(u, nil, reuse)
	if err != nil {
		t.Fatalf("SO_REUSEPORT: %v", err)
	}
	second.Close()
	bound, err := BindAll([]url.URL{u}, nil, reuse)
	if err != nil {
		t.Fatalf("BindAll with SO_REUSEPORT: %v", err)
	}
	bound.Close()
}
