package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// flagGroups orders `troupe serve --help` as etcd --help does; flags not
// listed here still print, under "Other".
var flagGroups = []struct {
	title string
	names []string
}{
	{"Member", []string{"name", "data-dir", "wal-dir", "snapshot-count", "heartbeat-interval", "election-timeout",
		"listen-peer-urls", "listen-client-urls", "quota-backend-bytes", "max-txn-ops", "max-request-bytes",
		"listen-metrics-urls"}},
	{"Clustering", []string{"initial-advertise-peer-urls", "initial-cluster", "initial-cluster-state",
		"initial-cluster-token", "advertise-client-urls", "auto-compaction-retention", "auto-compaction-mode"}},
	{"Logging", []string{"log-level", "log-format"}},
	{"Experimental feature", []string{"experimental-watch-progress-notify-interval"}},
	{"Unsafe feature", []string{"force-new-cluster"}},
	{"troupe", []string{"listen-actor-url"}},
}

// serveUsage prints the flags in etcd's help layout:
//
//	--name 'default'
//	  Human-readable name for this member.
func serveUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage:

  troupe serve [flags]
    Start a troupe member, an etcd v3.4 compatible server.

  troupe serve --config-file PATH
    Path to the server configuration file, in etcd's YAML format (keys are
    the flag names: 'name: m1', 'heartbeat-interval: 100'; URL lists are
    comma-separated strings). Also ETCD_CONFIG_FILE. Note that if a
    configuration file is provided, other command line flags and
    environment variables will be ignored. Unlike etcd, a key that is not
    a flag below is refused.

  Every flag can also be set through an environment variable: ETCD_ and
  the flag name in capitals, dashes as underscores (ETCD_DATA_DIR for
  --data-dir, ETCD_LISTEN_ACTOR_URL for --listen-actor-url). A flag given
  on the command line must not also be set in its environment variable;
  an ETCD_ variable that names no flag is logged as unrecognized.
`)
	printed := map[string]bool{configFileFlag: true} // in the header above
	for _, g := range flagGroups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, name := range g.names {
			if f := fs.Lookup(name); f != nil {
				printFlag(w, f)
				printed[name] = true
			}
		}
	}
	var other []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !printed[f.Name] {
			other = append(other, f)
		}
	})
	if len(other) > 0 {
		fmt.Fprint(w, "\nOther:\n")
		for _, f := range other {
			printFlag(w, f)
		}
	}
}

func printFlag(w io.Writer, f *flag.Flag) {
	fmt.Fprintf(w, "  --%s '%s'\n", f.Name, f.DefValue)
	for _, line := range strings.Split(f.Usage, "\n") {
		fmt.Fprintf(w, "    %s\n", line)
	}
}
