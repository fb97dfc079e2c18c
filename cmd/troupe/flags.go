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
		"initial-election-tick-advance", "listen-peer-urls", "listen-client-urls", "listen-client-http-urls",
		"max-snapshots", "max-wals", "memory-mlock", "quota-backend-bytes", "backend-bbolt-freelist-type",
		"backend-batch-interval", "backend-batch-limit", "max-txn-ops", "max-request-bytes", "max-concurrent-streams",
		"grpc-keepalive-min-time", "grpc-keepalive-interval", "grpc-keepalive-timeout", "socket-reuse-port",
		"socket-reuse-address", "enable-grpc-gateway", "raft-read-timeout", "raft-write-timeout", "feature-gates"}},
	{"Clustering", []string{"initial-advertise-peer-urls", "initial-cluster", "initial-cluster-state",
		"initial-cluster-token", "advertise-client-urls", "discovery", "discovery-token", "discovery-endpoints",
		"discovery-dial-timeout", "discovery-request-timeout", "discovery-keepalive-time", "discovery-keepalive-timeout",
		"discovery-insecure-transport", "discovery-insecure-skip-tls-verify", "discovery-cert", "discovery-key",
		"discovery-cacert", "discovery-user", "discovery-password", "discovery-fallback", "discovery-proxy",
		"discovery-srv", "discovery-srv-name", "strict-reconfig-check", "pre-vote", "auto-compaction-retention",
		"auto-compaction-mode", "v2-deprecation"}},
	{"Security", []string{"cert-file", "key-file", "client-cert-auth", "client-cert-file", "client-key-file",
		"client-crl-file", "client-cert-allowed-hostname", "trusted-ca-file", "auto-tls", "peer-cert-file",
		"peer-key-file", "peer-client-cert-auth", "peer-client-cert-file", "peer-client-key-file",
		"peer-trusted-ca-file", "peer-cert-allowed-cn", "peer-cert-allowed-hostname", "peer-auto-tls",
		"self-signed-cert-validity", "peer-crl-file", "cipher-suites", "cors", "host-whitelist", "tls-min-version",
		"tls-max-version"}},
	{"Auth", []string{"auth-token", "bcrypt-cost", "auth-token-ttl"}},
	{"Profiling and Monitoring", []string{"enable-pprof", "metrics", "listen-metrics-urls"}},
	{"Logging", []string{"logger", "log-outputs", "log-level", "log-format", "enable-log-rotation",
		"log-rotation-config-json", "warning-unary-request-duration"}},
	{"Experimental distributed tracing", []string{"experimental-enable-distributed-tracing",
		"enable-distributed-tracing", "experimental-distributed-tracing-address", "distributed-tracing-address",
		"experimental-distributed-tracing-service-name", "distributed-tracing-service-name",
		"experimental-distributed-tracing-instance-id", "distributed-tracing-instance-id",
		"experimental-distributed-tracing-sampling-rate", "distributed-tracing-sampling-rate"}},
	{"Experimental feature", []string{"experimental-initial-corrupt-check", "experimental-corrupt-check-time",
		"corrupt-check-time", "experimental-compact-hash-check-enabled", "experimental-compact-hash-check-time",
		"compact-hash-check-time", "experimental-enable-lease-checkpoint", "experimental-compaction-batch-limit",
		"compaction-batch-limit", "experimental-peer-skip-client-san-verification", "peer-skip-client-san-verification",
		"experimental-watch-progress-notify-interval", "watch-progress-notify-interval",
		"experimental-warning-apply-duration", "warning-apply-duration", "experimental-txn-mode-write-with-shared-buffer",
		"experimental-bootstrap-defrag-threshold-megabytes", "bootstrap-defrag-threshold-megabytes",
		"experimental-warning-unary-request-duration", "max-learners", "experimental-compaction-sleep-interval",
		"compaction-sleep-interval", "experimental-downgrade-check-time", "downgrade-check-time",
		"experimental-enable-lease-checkpoint-persist", "experimental-memory-mlock",
		"experimental-snapshot-catchup-entries", "snapshot-catchup-entries", "experimental-stop-grpc-service-on-defrag"}},
	{"Unsafe feature", []string{"force-new-cluster", "unsafe-no-fsync"}},
	{"troupe", []string{"listen-actor-url"}},
}

// serveUsage prints the flags in etcd's help layout:
//
//	--name 'default'
//	  Human-readable name for this member.
func serveUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage:

  troupe serve [flags]
    Start a troupe member, an etcd v3 compatible server.

  troupe serve --version
    Show the version of troupe.

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
	printed := map[string]bool{configFileFlag: true, "version": true} // in the header above
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
		if !printed[f.Name] && f.Usage != "" { // etcd 2's ignored flags have none
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
