package main

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
)

// pprofEnv names the environment variable that, set to host:port, serves
// Go's profiling endpoints (/debug/pprof/) there: a debugging aid for
// measuring a member under load, off unless set. etcd's --enable-pprof
// serves them on the client URL instead; troupe keeps them off the
// client listener.
const pprofEnv = "TROUPE_PPROF_ADDR"

func startPprof(log *slog.Logger) {
	addr := os.Getenv(pprofEnv)
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	go func() {
		// Owned by the process: it serves until the process exits.
		if err := http.ListenAndServe(addr, mux); err != nil {
			log.Warn("pprof endpoint stopped", "addr", addr, "err", err)
		}
	}()
	log.Info("serving pprof", "addr", addr)
}
