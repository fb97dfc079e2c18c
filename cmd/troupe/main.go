// Command troupe is an etcd v3 compatible key-value store built from
// supervised actors. `troupe serve` runs a member; see `troupe --help`.
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit statuses: 0 on a clean stop, 1 when the node fails, 2 for bad
// flags or configuration (as the flag package does).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "snapshot":
		return snapshot(args[1:], stdout, stderr)
	case "bench":
		return benchCmd(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		return version(stdout)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "troupe: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage:

  troupe serve [flags]
    Start a troupe member (an etcd v3.4 compatible server).

  troupe snapshot save|status|restore ...
    Save a member's database, show a snapshot file's status, or build a
    new data dir from a snapshot (also one saved from etcd 3.4);
    'troupe snapshot --help' for the flags.

  troupe bench <workload>|compare [flags]
    Load any etcd v3 endpoint and report throughput and latency, or
    compare two servers side by side; 'troupe bench --help' for more.

  troupe version
    Show the version of troupe.

  troupe --help
    Show this help; 'troupe serve --help' lists the server flags.
`)
}
