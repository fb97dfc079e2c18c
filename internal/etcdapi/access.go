package etcdapi

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
)

// HTTPOptions are etcd's access rules of the client HTTP endpoints
// (--cors, --host-whitelist) and its --enable-pprof.
type HTTPOptions struct {
	// CORS lists the origins answered with CORS headers naming them;
	// empty or "*" allows all (the headers then say "*").
	CORS []string
	// HostWhitelist lists the Host header values (without port) a
	// plaintext request may carry; empty or "*" allows all. etcd checks
	// it against DNS rebinding (CVE-2018-5702).
	HostWhitelist []string
	// EnablePprof serves Go's profiles at /debug/pprof/.
	EnablePprof bool
	// NoGateway is --enable-grpc-gateway=false: no JSON gateway at /v3/.
	NoGateway bool
	Logger    *slog.Logger
}

func allowsAll(list []string) bool { return len(list) == 0 || slices.Contains(list, "*") }

// access wraps the client HTTP mux as etcd's accessController does: a
// plaintext request whose host is not whitelisted gets 421 with etcd's
// text, allowed origins get the CORS headers, OPTIONS is answered 200.
func (o HTTPOptions) access(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil && !allowsAll(o.HostWhitelist) {
			host := hostname(r)
			if !slices.Contains(o.HostWhitelist, host) {
				if o.Logger != nil {
					o.Logger.Warn("rejecting HTTP request to prevent DNS rebinding attacks", "host", host)
				}
				http.Error(w, errCVE20185702(host), http.StatusMisdirectedRequest)
				return
			}
		}
		if allowsAll(o.CORS) {
			addCORSHeader(w, "*")
		} else if origin := r.Header.Get("Origin"); slices.Contains(o.CORS, origin) {
			addCORSHeader(w, origin)
		}
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// hostname is the request's Host without its port.
func hostname(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		return h
	}
	return r.Host
}

func addCORSHeader(w http.ResponseWriter, origin string) {
	w.Header().Add("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE")
	w.Header().Add("Access-Control-Allow-Origin", origin)
	w.Header().Add("Access-Control-Allow-Headers", "accept, content-type, authorization")
}

// errCVE20185702 is etcd's answer to a host not whitelisted, word for word.
func errCVE20185702(host string) string {
	return fmt.Sprintf(`
etcd received your request, but the Host header was unrecognized.

To fix this, choose one of the following options:
- Enable TLS, then any HTTPS request will be allowed.
- Add the hostname you want to use to the whitelist in settings.
  - e.g. etcd --host-whitelist %q

This requirement has been added to help prevent "DNS Rebinding" attacks (CVE-2018-5702).
`, host)
}

// registerPprof serves Go's profiles where etcd's --enable-pprof does.
func registerPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
