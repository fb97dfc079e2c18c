package transport

import (
	"errors"
	"net"
	"net/url"
	"testing"
)

func TestBindAllTakeOnceAndClose(t *testing.T) {
	a, other := url.URL{Scheme: "http", Host: "127.0.0.1:0"}, url.URL{Scheme: "http", Host: "127.0.0.1:1"}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	taken := url.URL{Scheme: "http", Host: held.Addr().String()}

	// one taken URL: an error naming it, and nothing left bound
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	first := url.URL{Scheme: "http", Host: probe.Addr().String()}
	probe.Close()
	_, err = BindAll([]url.URL{first, taken}, nil, SocketOpts{})
	var be *BindError
	if !errors.As(err, &be) || be.URL != taken.String() {
		t.Fatalf("BindAll with %s taken: %v, want a BindError naming it", taken.Host, err)
	}
	if l, err := net.Listen("tcp", first.Host); err != nil {
		t.Fatalf("%s still bound after the failed BindAll: %v", first.Host, err)
	} else {
		l.Close()
	}

	bound, err := BindAll([]url.URL{a}, nil, SocketOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if bound.Take(other) != nil {
		t.Fatal("Take of a URL not bound returned a listener")
	}
	lis := bound.Take(a)
	if lis == nil {
		t.Fatal("Take of a bound URL returned nil")
	}
	defer lis.Close()
	if bound.Take(a) != nil {
		t.Fatal("a second Take returned the listener again")
	}
	bound.Close() // does not close what was taken
	if _, err := net.Dial("tcp", lis.Addr().String()); err != nil {
		t.Fatalf("a taken listener was closed by Close: %v", err)
	}
	var none *Bound
	if none.Take(a) != nil {
		t.Fatal("Take on a nil Bound returned a listener")
	}
	none.Close()
}
