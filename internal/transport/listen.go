package transport

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
)

// Listen listens on the host:port of u (a --listen-client-urls or
// --listen-metrics-urls address) over TCP with so's options, secured by
// sec when u is https (see Security.For). The error is
// net.Listen's as it is: the caller knows which flag to name in its own
// error (see listeners.ListenError).
func Listen(u url.URL, sec *Security, so SocketOpts) (net.Listener, error) {
	lis, err := so.listen(u.Host)
	if err != nil {
		return nil, err
	}
	return sec.For(u).listener(lis), nil
}

// SplitHostPort splits a remote's listen address (host:port) into what
// protoactor's remote.Configure takes. The error is net.SplitHostPort's, or
// "port: " and strconv.Atoi's; the caller names the address.
func SplitHostPort(address string) (host string, port int, err error) {
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.Atoi(portText)
	if err != nil {
		return "", 0, fmt.Errorf("port: %w", err)
	}
	return host, port, nil
}
