package node

import (
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/troupedb/troupe/internal/etcdapi"
	"github.com/troupedb/troupe/internal/transport"
	"github.com/troupedb/troupe/persistence/membership"
)

// etcd 3.6.8's defaults of the knobs registered here.
const (
	DefaultMaxSnapshots           = 5
	DefaultMaxWALs                = 5
	DefaultSnapshotCatchUpEntries = 5000
	DefaultGRPCKeepAliveMinTime   = 5 * time.Second
	DefaultGRPCKeepAliveInterval  = 2 * time.Hour
	DefaultGRPCKeepAliveTimeout   = 20 * time.Second
	DefaultCompactHashCheckTime   = time.Minute
	// DefaultWarningUnaryRequestDuration is what --warning-unary-request-duration
	// means when neither it nor its experimental name is given.
	DefaultWarningUnaryRequestDuration = 300 * time.Millisecond
	DefaultWarningApplyDuration        = 100 * time.Millisecond
	DefaultCompactionBatchLimit        = 1000
	DefaultRaftWriteTimeout            = 5 * time.Second

	MetricsBasic     = "basic"
	MetricsExtensive = "extensive"

	// LogOutputDefault is etcd's "default" output: stderr (etcd would
	// pick journald under systemd; troupe's JSON on stderr reaches the
	// journal as well).
	LogOutputDefault = "default"
)

// etcdHelp is etcd 3.6.8's --help, word for word (/tmp/etcd36/etcd
// --help): troupe's help shows etcd's text of the flags it refuses, and a
// test holds the flag tables to it.
//
//go:embed etcd-3.6.8-help.txt
var etcdHelp string

// etcdUsage returns etcd's help text of flag name, "" if it has none.
func etcdUsage(name string) string {
	_, rest, ok := strings.Cut(etcdHelp, "\n  --"+name+" ")
	if !ok {
		_, rest, ok = strings.Cut(etcdHelp, "\n  --"+name+"\n")
		if !ok {
			return ""
		}
	} else if _, after, found := strings.Cut(rest, "\n"); found {
		rest = after
	}
	var lines []string
	for _, line := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(line, "    ") {
			break
		}
		lines = append(lines, strings.TrimPrefix(line, "    "))
	}
	return strings.Join(lines, "\n")
}

// Reasons shared by many refused flags.
const (
	reasonV2Discovery = "v2 discovery is not supported (etcd 3.6 deprecates it too); list the members in --initial-cluster"
	reasonV3Discovery = "v3 discovery is not supported by troupe; list the members in --initial-cluster"
	reasonSRV         = "DNS SRV discovery is not supported by troupe; list the members in --initial-cluster"
	reasonTracing     = "distributed tracing is not supported by troupe"
	reasonDowngrade   = "cluster downgrade is not supported by troupe (the Downgrade RPC is unimplemented), so it has nothing to check"

	reasonRaftRead        = "troupe's peers talk over protoactor remote's gRPC streams, not etcd's rafthttp: the peer listener is protoactor's own (its connections take no deadlines), and on the connections it dials a member reads nothing back but the handshake, so a read deadline would cut idle links (gRPC's pings, 10s at the least, cannot renew a 5s one)"
	reasonCompactionSleep = "troupe writes a compaction's delete chunks (--compaction-batch-limit) in its backend commit, and backend commits go in order: a pause between chunks would hold every later write's commit (and the applier past 4x --backend-batch-limit), not the compaction alone, so troupe does not pause (etcd's 0 means 10ms)"
)

// refusedFlags are etcd 3.6.8 flags troupe does not implement. Each is
// registered so that it is refused by name, with the reason, from the
// command line, its ETCD_ variable and the configuration file alike;
// given with etcd's default it asks for nothing troupe lacks, and is
// accepted (configuration files often list every key).
var refusedFlags = []refusedFlag{
	// v2 and v3 discovery, DNS discovery.
	{"discovery", "", kindString, reasonV2Discovery},
	{"discovery-proxy", "", kindString, reasonV2Discovery},
	{"discovery-srv", "", kindString, reasonSRV},
	{"discovery-srv-name", "", kindString, reasonSRV},
	{"discovery-token", "", kindString, reasonV3Discovery},
	{"discovery-endpoints", "", kindString, reasonV3Discovery},
	{"discovery-dial-timeout", "2s", kindDuration, reasonV3Discovery},
	{"discovery-request-timeout", "5s", kindDuration, reasonV3Discovery},
	{"discovery-keepalive-time", "2s", kindDuration, reasonV3Discovery},
	{"discovery-keepalive-timeout", "6s", kindDuration, reasonV3Discovery},
	{"discovery-insecure-transport", "true", kindBool, reasonV3Discovery},
	{"discovery-insecure-skip-tls-verify", "false", kindBool, reasonV3Discovery},
	{"discovery-cert", "", kindString, reasonV3Discovery},
	{"discovery-key", "", kindString, reasonV3Discovery},
	{"discovery-cacert", "", kindString, reasonV3Discovery},
	{"discovery-user", "", kindString, reasonV3Discovery},
	{"discovery-password", "", kindString, reasonV3Discovery},

	// Member.
	{"raft-read-timeout", "5s", kindDuration, reasonRaftRead},

	// Distributed tracing.
	{"experimental-enable-distributed-tracing", "false", kindBool, reasonTracing},
	{"enable-distributed-tracing", "false", kindBool, reasonTracing},
	{"experimental-distributed-tracing-address", "localhost:4317", kindString, reasonTracing},
	{"distributed-tracing-address", "localhost:4317", kindString, reasonTracing},
	{"experimental-distributed-tracing-service-name", "etcd", kindString, reasonTracing},
	{"distributed-tracing-service-name", "etcd", kindString, reasonTracing},
	{"experimental-distributed-tracing-instance-id", "", kindString, reasonTracing},
	{"distributed-tracing-instance-id", "", kindString, reasonTracing},
	{"experimental-distributed-tracing-sampling-rate", "0", kindNumber, reasonTracing},
	{"distributed-tracing-sampling-rate", "0", kindNumber, reasonTracing},

	// Experimental.
	{"experimental-downgrade-check-time", "5s", kindDuration, reasonDowngrade},
	{"downgrade-check-time", "5s", kindDuration, reasonDowngrade},
	{"experimental-compaction-sleep-interval", "0s", kindDuration, reasonCompactionSleep},
	{"compaction-sleep-interval", "0s", kindDuration, reasonCompactionSleep},
}

// ignoredFlags are flags of etcd 2 that etcd 3.6 still accepts and
// ignores, with a warning.
var ignoredFlags = []string{
	"cluster-active-size", "cluster-remove-delay", "cluster-sync-interval", "config", "force",
	"max-result-buffer", "max-retry-attempts", "peer-heartbeat-interval", "peer-election-timeout",
	"retry-interval", "snapshot", "v", "vv",
}

// experimentalRenames are etcd 3.6's renamed --experimental-* flags: the
// old name still works (with a warning), overrides the new one's
// default, and may not be given together with the new one.
var experimentalRenames = map[string]string{
	"experimental-compact-hash-check-time":              "compact-hash-check-time",
	"experimental-corrupt-check-time":                   "corrupt-check-time",
	"experimental-compaction-batch-limit":               "compaction-batch-limit",
	"experimental-watch-progress-notify-interval":       "watch-progress-notify-interval",
	"experimental-warning-apply-duration":               "warning-apply-duration",
	"experimental-bootstrap-defrag-threshold-megabytes": "bootstrap-defrag-threshold-megabytes",
	"experimental-memory-mlock":                         "memory-mlock",
	"experimental-snapshot-catchup-entries":             "snapshot-catchup-entries",
	"experimental-compaction-sleep-interval":            "compaction-sleep-interval",
	"experimental-downgrade-check-time":                 "downgrade-check-time",
	"experimental-peer-skip-client-san-verification":    "peer-skip-client-san-verification",
	"experimental-enable-distributed-tracing":           "enable-distributed-tracing",
	"experimental-distributed-tracing-address":          "distributed-tracing-address",
	"experimental-distributed-tracing-service-name":     "distributed-tracing-service-name",
	"experimental-distributed-tracing-instance-id":      "distributed-tracing-instance-id",
	"experimental-distributed-tracing-sampling-rate":    "distributed-tracing-sampling-rate",
}

// experimentalGates are the --experimental-* booleans that etcd 3.6
// turned into feature gates.
var experimentalGates = map[string]string{
	"experimental-stop-grpc-service-on-defrag":       GateStopGRPCServiceOnDefrag,
	"experimental-initial-corrupt-check":             GateInitialCorruptCheck,
	"experimental-compact-hash-check-enabled":        GateCompactHashCheck,
	"experimental-txn-mode-write-with-shared-buffer": GateTxnModeWriteWithSharedBuffer,
	"experimental-enable-lease-checkpoint":           GateLeaseCheckpoint,
	"experimental-enable-lease-checkpoint-persist":   GateLeaseCheckpointPersist,
}

// deprecationWarnings are what etcd 3.6.8 logs, at warn, for each
// deprecated flag given.
var deprecationWarnings = map[string]string{
	"max-snapshots":  "--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8.",
	"v2-deprecation": "--v2-deprecation is deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input.",
	"experimental-compact-hash-check-enabled":           "--experimental-compact-hash-check-enabled is deprecated in 3.6 and will be decommissioned in 3.7. Use '--feature-gates=CompactHashCheck=true' instead.",
	"experimental-compact-hash-check-time":              "--experimental-compact-hash-check-time is deprecated in 3.6 and will be decommissioned in 3.7. Use '--compact-hash-check-time' instead.",
	"experimental-txn-mode-write-with-shared-buffer":    "--experimental-txn-mode-write-with-shared-buffer is deprecated in v3.6 and will be decommissioned in v3.7. Use '--feature-gates=TxnModeWriteWithSharedBuffer=true' instead.",
	"experimental-corrupt-check-time":                   "--experimental-corrupt-check-time is deprecated in v3.6 and will be decommissioned in v3.7. Use '--corrupt-check-time' instead.",
	"experimental-compaction-batch-limit":               "--experimental-compaction-batch-limit is deprecated in v3.6 and will be decommissioned in v3.7. Use '--compaction-batch-limit' instead.",
	"experimental-watch-progress-notify-interval":       "--experimental-watch-progress-notify-interval is deprecated in v3.6 and will be decommissioned in v3.7. Use '--watch-progress-notify-interval' instead.",
	"experimental-warning-apply-duration":               "--experimental-warning-apply-duration is deprecated in v3.6 and will be decommissioned in v3.7. Use '--warning-apply-duration' instead.",
	"experimental-bootstrap-defrag-threshold-megabytes": "--experimental-bootstrap-defrag-threshold-megabytes is deprecated in v3.6 and will be decommissioned in v3.7. Use '--bootstrap-defrag-threshold-megabytes' instead.",
	"experimental-memory-mlock":                         "--experimental-memory-mlock is deprecated in v3.6 and will be decommissioned in v3.7. Use '--memory-mlock' instead.",
	"experimental-snapshot-catchup-entries":             "--experimental-snapshot-catchup-entries is deprecated in v3.6 and will be decommissioned in v3.7. Use '--snapshot-catchup-entries' instead.",
	"experimental-compaction-sleep-interval":            "--experimental-compaction-sleep-interval is deprecated in v3.6 and will be decommissioned in v3.7. Use 'compaction-sleep-interval' instead.",
	"experimental-downgrade-check-time":                 "--experimental-downgrade-check-time is deprecated in v3.6 and will be decommissioned in v3.7. Use '--downgrade-check-time' instead.",
	"experimental-enable-distributed-tracing":           "--experimental-enable-distributed-tracing is deprecated in 3.6 and will be decommissioned in 3.7. Use --enable-distributed-tracing instead.",
	"experimental-distributed-tracing-address":          "--experimental-distributed-tracing-address is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-address instead.",
	"experimental-distributed-tracing-service-name":     "--experimental-distributed-tracing-service-name is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-service-name instead.",
	"experimental-distributed-tracing-instance-id":      "--experimental-distributed-tracing-instance-id is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-instance-id instead.",
	"experimental-distributed-tracing-sampling-rate":    "--experimental-distributed-tracing-sampling-rate is deprecated in 3.6 and will be decommissioned in 3.7. Use --distributed-tracing-sampling-rate instead.",
}

// etcd36State is what the etcd 3.6 flags parsed and ResolveFlags has yet
// to fold into Config, and what it found to say.
type etcd36State struct {
	refused []string // one line each: "--flag=value: reason"
	// Values of the --experimental-* booleans that name a gate.
	gates map[string]*bool
	// v2Deprecation and discoveryFallback are accepted for etcd's sake.
	v2Deprecation, discoveryFallback string
	grpcGateway                      bool
	registered                       bool // by registerEtcd36Flags: a Config from flags
	logger                           string
	warnings                         []string
	ignored                          []string
	// warnUnaryExp is --experimental-warning-unary-request-duration; 0
	// when not given.
	warnUnaryExp time.Duration
}

type valueKind int

const (
	kindString valueKind = iota
	kindBool
	kindDuration
	kindNumber
)

type refusedFlag struct {
	name, def string
	kind      valueKind
	reason    string
}

// registerEtcd36Flags registers the rest of etcd 3.6.8's flags: the
// knobs troupe implements, the aliases etcd keeps for them, and the
// flags it refuses or ignores.
func (c *Config) registerEtcd36Flags(fs *flag.FlagSet) {
	st := &c.etcd36
	st.gates = map[string]*bool{}
	st.v2Deprecation, st.discoveryFallback, st.grpcGateway, st.logger = "write-only", "exit", true, "zap"
	st.registered = true

	fs.Var(&c.FeatureGates, "feature-gates", featureGatesUsage())
	for name, gate := range experimentalGates {
		b := gateSpecs[gate].def
		st.gates[name] = &b
		fs.BoolVar(&b, name, b, fmt.Sprintf("Deprecated in v3.6 and will be decommissioned in v3.7. Use '--feature-gates=%s=true' instead.", gate))
	}

	fs.DurationVar(&c.WatchProgressNotifyInterval, "watch-progress-notify-interval", c.WatchProgressNotifyInterval, "Duration of periodical watch progress notification.")
	fs.BoolVar(&c.PreVote, "pre-vote", c.PreVote, "Enable the raft Pre-Vote algorithm to prevent disruption when a node that has been partitioned away rejoins the cluster.")
	fs.BoolVar(&c.StrictReconfigCheck, "strict-reconfig-check", c.StrictReconfigCheck, "Reject reconfiguration requests that would cause quorum loss.")
	fs.UintVar(&c.MaxSnapshots, "max-snapshots", c.MaxSnapshots, "Maximum number of snapshot files to retain (0 is unlimited). Deprecated in v3.6 and will be decommissioned in v3.8.")
	fs.UintVar(&c.MaxWALs, "max-wals", c.MaxWALs, "Maximum number of wal files to retain (0 is unlimited).")
	fs.Uint64Var(&c.SnapshotCatchUpEntries, "snapshot-catchup-entries", c.SnapshotCatchUpEntries, "Number of entries for a slow follower to catch up after compacting the raft storage entries.")
	fs.DurationVar(&c.BackendBatchInterval, "backend-batch-interval", c.BackendBatchInterval, "BackendBatchInterval is the maximum time before commit the backend transaction.")
	fs.IntVar(&c.BackendBatchLimit, "backend-batch-limit", c.BackendBatchLimit, "BackendBatchLimit is the maximum operations before commit the backend transaction.")
	fs.Var((*uint32Value)(&c.MaxConcurrentStreams), "max-concurrent-streams", "Maximum concurrent streams that each client can open at a time.")
	fs.DurationVar(&c.GRPCKeepAliveMinTime, "grpc-keepalive-min-time", c.GRPCKeepAliveMinTime, "Minimum duration interval that a client should wait before pinging server.")
	fs.DurationVar(&c.GRPCKeepAliveInterval, "grpc-keepalive-interval", c.GRPCKeepAliveInterval, "Frequency duration of server-to-client ping to check if a connection is alive (0 to disable).")
	fs.DurationVar(&c.GRPCKeepAliveTimeout, "grpc-keepalive-timeout", c.GRPCKeepAliveTimeout, "Additional duration of wait before closing a non-responsive connection (0 to disable).")
	fs.BoolVar(&st.grpcGateway, "enable-grpc-gateway", st.grpcGateway, "Enable GRPC gateway.")
	fs.Var(&listValue{list: &c.CORS}, "cors", "Comma-separated whitelist of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).")
	fs.Var(&listValue{list: &c.HostWhitelist}, "host-whitelist", "Acceptable hostnames from HTTP client requests, if server is not secure (empty or * means allow all).")
	fs.BoolVar(&c.EnablePprof, "enable-pprof", c.EnablePprof, "Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof/\"")
	fs.StringVar(&c.Metrics, "metrics", c.Metrics, "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics.")
	fs.StringVar(&st.logger, "logger", st.logger, "Currently only supports 'zap' for structured logging (troupe logs with log/slog, in zap's JSON fields where etcd's matter).")
	fs.Var(&listValue{list: &c.LogOutputs}, "log-outputs", "Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd, or list of comma separated output targets.")
	fs.BoolVar(&c.InitialElectionTickAdvance, "initial-election-tick-advance", c.InitialElectionTickAdvance, "Whether to fast-forward initial election ticks on boot for faster election.")
	fs.DurationVar(&c.RaftWriteTimeout, "raft-write-timeout", c.RaftWriteTimeout, "Write timeout set on each rafthttp connection")
	fs.BoolVar(&c.SocketReuseAddress, "socket-reuse-address", c.SocketReuseAddress, "Enable to set socket option SO_REUSEADDR on listeners allowing rebinding of a port in TIME_WAIT state.")
	fs.BoolVar(&c.SocketReusePort, "socket-reuse-port", c.SocketReusePort, "Enable to set socket option SO_REUSEPORT on listeners allowing rebinding of a port already in use.")
	fs.BoolVar(&c.EnableLogRotation, "enable-log-rotation", c.EnableLogRotation, "Enable log rotation of a single log-outputs file target.")
	fs.StringVar(&c.LogRotationConfigJSON, "log-rotation-config-json", c.LogRotationConfigJSON, "Configures log rotation if enabled with a JSON logger config.")
	fs.StringVar(&st.v2Deprecation, "v2-deprecation", st.v2Deprecation, "Phase of v2store deprecation. Deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input.")
	fs.StringVar(&st.discoveryFallback, "discovery-fallback", st.discoveryFallback, "Expected behavior ('exit') when discovery services fails. Note that v2 proxy is removed.")

	fs.DurationVar(&c.WarningUnaryRequestDuration, "warning-unary-request-duration", c.WarningUnaryRequestDuration, "Set time duration after which a warning is logged if a unary request takes more than this duration.")
	fs.DurationVar(&st.warnUnaryExp, "experimental-warning-unary-request-duration", 0, "Deprecated in v3.6 and will be decommissioned in v3.7. Use '--warning-unary-request-duration' instead.")
	fs.Var(&urlsValue{urls: &c.ListenClientHTTPURLs}, "listen-client-http-urls", "List of URLs to listen on for http only client traffic. Enabling this flag removes http services from --listen-client-urls.")
	fs.BoolVar(&c.MemoryMlock, "memory-mlock", c.MemoryMlock, "Enable to enforce etcd pages (in particular bbolt) to stay in RAM.")
	fs.BoolVar(&c.MemoryMlock, "experimental-memory-mlock", c.MemoryMlock, renamedUsage("experimental-memory-mlock"))
	fs.StringVar(&c.BackendFreelistType, "backend-bbolt-freelist-type", c.BackendFreelistType, "BackendFreelistType specifies the type of freelist that boltdb backend uses(array and map are supported types).")
	fs.UintVar(&c.BootstrapDefragThresholdMegabytes, "bootstrap-defrag-threshold-megabytes", c.BootstrapDefragThresholdMegabytes, "Enable the defrag during etcd server bootstrap on condition that it will free at least the provided threshold of disk space. Needs to be set to non-zero value to take effect.")
	fs.UintVar(&c.BootstrapDefragThresholdMegabytes, "experimental-bootstrap-defrag-threshold-megabytes", c.BootstrapDefragThresholdMegabytes, renamedUsage("experimental-bootstrap-defrag-threshold-megabytes"))
	fs.DurationVar(&c.WarningApplyDuration, "warning-apply-duration", c.WarningApplyDuration, "Warning is generated if requests take more than this duration.")
	fs.DurationVar(&c.WarningApplyDuration, "experimental-warning-apply-duration", c.WarningApplyDuration, renamedUsage("experimental-warning-apply-duration"))
	fs.IntVar(&c.CompactionBatchLimit, "compaction-batch-limit", c.CompactionBatchLimit, "CompactionBatchLimit sets the maximum revisions deleted in each compaction batch.")
	fs.IntVar(&c.CompactionBatchLimit, "experimental-compaction-batch-limit", c.CompactionBatchLimit, renamedUsage("experimental-compaction-batch-limit"))
	fs.IntVar(&c.MaxLearners, "max-learners", c.MaxLearners, "Set the max number of learner members allowed in the cluster membership.")
	fs.BoolVar(&c.UnsafeNoFsync, "unsafe-no-fsync", c.UnsafeNoFsync, "Disables fsync, unsafe, will cause data loss.")
	fs.DurationVar(&c.CorruptCheckTime, "corrupt-check-time", c.CorruptCheckTime, "Duration of time between cluster corruption check passes.")
	fs.DurationVar(&c.CompactHashCheckTime, "compact-hash-check-time", c.CompactHashCheckTime, "Duration of time between leader checks followers compaction hashes.")
	fs.StringVar(&c.AuthToken, "auth-token", c.AuthToken, "Specify auth token specific options.")
	fs.UintVar(&c.BcryptCost, "bcrypt-cost", c.BcryptCost, "Specify bcrypt algorithm cost factor for auth password hashing.")
	fs.UintVar(&c.AuthTokenTTL, "auth-token-ttl", c.AuthTokenTTL, "The lifetime in seconds of the auth token.")

	// The old names set the same fields: given alone they win, given
	// with the new name ResolveFlags refuses both, as etcd 3.6.
	for _, old := range []struct {
		name string
		set  func(string)
	}{
		{"experimental-watch-progress-notify-interval", func(n string) {
			fs.DurationVar(&c.WatchProgressNotifyInterval, n, c.WatchProgressNotifyInterval, renamedUsage(n))
		}},
		{"experimental-snapshot-catchup-entries", func(n string) { fs.Uint64Var(&c.SnapshotCatchUpEntries, n, c.SnapshotCatchUpEntries, renamedUsage(n)) }},
		{"experimental-corrupt-check-time", func(n string) { fs.DurationVar(&c.CorruptCheckTime, n, c.CorruptCheckTime, renamedUsage(n)) }},
		{"experimental-compact-hash-check-time", func(n string) { fs.DurationVar(&c.CompactHashCheckTime, n, c.CompactHashCheckTime, renamedUsage(n)) }},
	} {
		old.set(old.name)
	}

	c.registerTLSFlags(fs)
	c.useEtcdWording(fs)
	for _, r := range refusedFlags {
		usage := "troupe: refused unless " + quoteDefault(r.def) + ": " + r.reason + "."
		if u := etcdUsage(r.name); u != "" {
			usage = u + "\n" + usage
		}
		fs.Var(&refusedValue{st: st, flag: r}, r.name, usage)
	}
	for _, name := range ignoredFlags {
		fs.Var(&ignoredValue{st: st, name: name}, name, "")
	}
}

// troupeNotes say where troupe's meaning of an accepted flag differs
// from etcd's help text; serve --help prints them under it.
var troupeNotes = map[string]string{
	"data-dir":                             "troupe: defaults to '<name>.troupe'.",
	"listen-client-urls":                   "troupe: http or https (TLS: gRPC by ALPN h2, HTTP by http/1.1, on the same port).",
	"listen-peer-urls":                     "troupe: raft traffic goes over protoactor remote (gRPC) on that host:port; all http or all https.",
	"client-crl-file":                      "troupe: PEM or DER; re-read when it changes, as --trusted-ca-file and the certificates are.",
	"peer-crl-file":                        "troupe: PEM or DER; re-read when it changes, as --peer-trusted-ca-file and the certificates are.",
	"log-format":                           "troupe: also 'text' (tint, coloured on a terminal); empty (the default) is text on a terminal and json otherwise.",
	"log-outputs":                          "troupe: no 'systemd/journal' of its own ('default' is stderr, which reaches the journal under systemd).",
	"backend-batch-interval":               "troupe: 0 is 100ms.",
	"backend-batch-limit":                  "troupe: 0 is 10000.",
	"enable-grpc-gateway":                  "troupe: the JSON gateway at /v3/ on the client (or client http) URLs.",
	"experimental-enable-lease-checkpoint": "troupe: checkpoints leases whatever the gate says.",
	"experimental-enable-lease-checkpoint-persist":   "troupe: persists checkpoints whatever the gate says (as etcd 3.6).",
	"initial-election-tick-advance":                  "troupe: a peer counts as connected once it answers the peer actor's probes.",
	"socket-reuse-address":                           "troupe: client, client http and metrics listeners (Go sets SO_REUSEADDR on every listener anyway, the peer one too).",
	"socket-reuse-port":                              "troupe: client, client http and metrics listeners; not the peer listener (protoactor remote's own).",
	"raft-write-timeout":                             "troupe: on the protoactor remote connections this member dials, which carry all it sends to other members.",
	"experimental-txn-mode-write-with-shared-buffer": "troupe: no effect (a detail of etcd's backend).",
	"experimental-stop-grpc-service-on-defrag":       "troupe: refused when true (not supported yet).",
}

// useEtcdWording gives every flag registered so far that etcd 3.6.8 has
// etcd's help text, with troupe's note where the meaning differs.
func (c *Config) useEtcdWording(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		u := etcdUsage(f.Name)
		if u == "" {
			return
		}
		if note := troupeNotes[f.Name]; note != "" {
			u += "\n" + note
		}
		f.Usage = u
	})
}

func renamedUsage(old string) string {
	return fmt.Sprintf("Deprecated in v3.6 and will be decommissioned in v3.7. Use '--%s' instead.", experimentalRenames[old])
}

func quoteDefault(def string) string {
	if def == "" {
		return "empty"
	}
	return "'" + def + "'"
}

// ResolveFlags applies etcd 3.6's rules between flags, once the command
// line, the environment or the configuration file set them: a renamed
// --experimental-* flag given alone sets its new name, given with it is
// an error; an --experimental-* boolean that names a feature gate sets
// the gate, unless --feature-gates names it too (an error); then the
// gates set their Config fields. set reports whether a flag was given.
func (c *Config) ResolveFlags(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return c.resolveFlags(given)
}

func (c *Config) resolveFlags(given map[string]bool) error {
	st := &c.etcd36
	for _, old := range sortedKeys(experimentalRenames) {
		if given[old] && given[experimentalRenames[old]] {
			return fmt.Errorf("cannot set --%s and --%s at the same time, please use --%s only", old, experimentalRenames[old], experimentalRenames[old])
		}
	}
	if err := c.resolveWarningUnary(given); err != nil {
		return err
	}
	fromFlags := map[string]bool{}
	for _, name := range sortedKeys(experimentalGates) {
		if !given[name] {
			continue
		}
		gate, val := experimentalGates[name], *st.gates[name]
		if c.FeatureGates.set(gate) || strings.Contains(c.FeatureGates.String(), gate) {
			return fmt.Errorf("cannot specify both flags: --%s=%v and --feature-gates=%s=%v at the same time, please just use --feature-gates=%s=%v",
				name, val, gate, c.FeatureGates.Enabled(gate), gate, c.FeatureGates.Enabled(gate))
		}
		fromFlags[gate] = val
	}
	if err := c.FeatureGates.setFromMap(fromFlags); err != nil {
		return err
	}
	c.InitialCorruptCheck = c.FeatureGates.Enabled(GateInitialCorruptCheck)
	c.CompactHashCheck = c.FeatureGates.Enabled(GateCompactHashCheck)

	for _, name := range sortedKeys(deprecationWarnings) {
		if given[name] {
			st.warnings = append(st.warnings, deprecationWarnings[name])
		}
	}
	return nil
}

// resolveWarningUnary applies etcd 3.6's rule of the two names of
// --warning-unary-request-duration: not both (set to non-zero values),
// the old one alone with a warning.
func (c *Config) resolveWarningUnary(given map[string]bool) error {
	st := &c.etcd36
	st.warnings = st.warnings[:0]
	newSet := given["warning-unary-request-duration"] && c.WarningUnaryRequestDuration != 0
	switch {
	case newSet && st.warnUnaryExp != 0:
		return errors.New("both --experimental-warning-unary-request-duration and --warning-unary-request-duration flags are set. " +
			"Use only --warning-unary-request-duration")
	case newSet:
	case st.warnUnaryExp != 0:
		st.warnings = append(st.warnings, "--experimental-warning-unary-request-duration is deprecated, and will be decommissioned in v3.7. "+
			"Use --warning-unary-request-duration instead.")
		c.WarningUnaryRequestDuration = st.warnUnaryExp
	}
	return nil
}

// Warnings are what etcd 3.6 logs at warn about the flags given: the
// deprecated ones, and etcd 2 flags it ignores.
func (c *Config) Warnings() []string {
	out := append(slices.Clone(c.etcd36.warnings), c.tlsWarnings()...)
	if c.SocketReusePort {
		out = append(out, peerSocketWarning)
	}
	for _, name := range c.etcd36.ignored {
		out = append(out, fmt.Sprintf("flag %q is no longer supported - ignoring", name))
	}
	return out
}

// validateEtcd36 checks the etcd 3.6 knobs; a refused flag comes first.
func (c *Config) validateEtcd36() error {
	st := &c.etcd36
	if len(st.refused) > 0 {
		return errors.New(st.refused[0])
	}
	if err := c.FeatureGates.validate(); err != nil {
		return err
	}
	if st.logger != "" && st.logger != "zap" {
		if st.logger == "capnslog" {
			return errors.New("--logger=capnslog is removed in v3.5")
		}
		return fmt.Errorf("--logger %q: troupe supports only 'zap' (its structured logger, as etcd's)", st.logger)
	}
	if err := checkLogOutputs(c.LogOutputs, c.EnableLogRotation, c.LogRotationConfigJSON); err != nil {
		return err
	}
	if err := checkCORS(c.CORS); err != nil {
		return err
	}
	for _, u := range c.ListenClientHTTPURLs {
		if err := checkURL("--listen-client-http-urls", &u); err != nil {
			return err
		}
	}
	switch st.v2Deprecation {
	case "", "write-only", "write-only-drop-data", "gone":
	default:
		return fmt.Errorf("--v2-deprecation %q is not one of write-only, write-only-drop-data, gone", st.v2Deprecation)
	}
	switch st.discoveryFallback {
	case "", "exit":
	case "proxy":
		return fmt.Errorf("v2 proxy is deprecated, and --discovery-fallback can't be configured as %q", "proxy")
	default:
		return fmt.Errorf("--discovery-fallback %q: only 'exit' is valid", st.discoveryFallback)
	}
	switch c.Metrics {
	case "", MetricsBasic, MetricsExtensive:
	default:
		return fmt.Errorf("--metrics %q is not 'basic' or 'extensive'", c.Metrics)
	}
	if c.CompactionBatchLimit < 0 {
		return fmt.Errorf("--compaction-batch-limit must be >= 0 (set to %d; default %d)", c.CompactionBatchLimit, DefaultCompactionBatchLimit)
	}
	if c.MaxLearners < 0 {
		return fmt.Errorf("--max-learners must be >= 0 (set to %d; default %d)", c.MaxLearners, membership.MaxLearners)
	}
	if c.CompactHashCheckTime <= 0 {
		return fmt.Errorf("--compact-hash-check-time must be >0 (set to %v)", c.CompactHashCheckTime)
	}
	if c.CorruptCheckTime < 0 {
		return fmt.Errorf("--corrupt-check-time must be >= 0 (set to %v; 0 turns the periodic check off)", c.CorruptCheckTime)
	}
	if c.BackendBatchInterval < 0 || c.BackendBatchLimit < 0 {
		return errors.New("--backend-batch-interval and --backend-batch-limit must be >= 0 (0 is troupe's default: 100ms and 10000)")
	}
	if c.GRPCKeepAliveMinTime < 0 || c.GRPCKeepAliveInterval < 0 || c.GRPCKeepAliveTimeout < 0 {
		return errors.New("--grpc-keepalive-min-time, --grpc-keepalive-interval and --grpc-keepalive-timeout must be >= 0")
	}
	return nil
}

// grpcLimits are the gRPC server's limits: etcd's 0 (disabled) becomes
// the transport's negative.
func (c *Config) grpcLimits() transport.GRPCLimits {
	off := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	return transport.GRPCLimits{
		MaxConcurrentStreams: c.MaxConcurrentStreams,
		KeepAliveMinTime:     off(c.GRPCKeepAliveMinTime),
		KeepAliveInterval:    off(c.GRPCKeepAliveInterval),
		KeepAliveTimeout:     off(c.GRPCKeepAliveTimeout),
	}
}

// peerSocketWarning says where --socket-reuse-port does not reach.
const peerSocketWarning = "--socket-reuse-port applies to the client, client http and metrics listeners only: " +
	"the peer listener (--listen-peer-urls) is protoactor remote's own, which takes no socket options"

// raftWriteTimeout is --raft-write-timeout raised to etcd's minimum, 5s,
// as etcd raises it (and says so).
func (c *Config) raftWriteTimeout() time.Duration {
	if c.RaftWriteTimeout < DefaultRaftWriteTimeout {
		c.Logger.Info(fmt.Sprintf("raft-write-timeout increased to minimum value: %v", DefaultRaftWriteTimeout))
		return DefaultRaftWriteTimeout
	}
	return c.RaftWriteTimeout
}

func (c *Config) socketOpts() transport.SocketOpts {
	return transport.SocketOpts{ReuseAddress: c.SocketReuseAddress, ReusePort: c.SocketReusePort}
}

func (c *Config) httpOptions() etcdapi.HTTPOptions {
	return etcdapi.HTTPOptions{
		CORS: c.CORS, HostWhitelist: c.HostWhitelist, EnablePprof: c.EnablePprof, Logger: c.Logger,
		NoGateway: c.etcd36.registered && !c.etcd36.grpcGateway,
	}
}

// checkCORS checks --cors as etcd parses it: "*", or URLs of the form
// scheme://host:port (the Origin header must equal one of them).
func checkCORS(origins []string) error {
	for _, o := range origins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		switch {
		case err != nil:
			return fmt.Errorf("--cors %q: %v", o, err)
		case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "unix" && u.Scheme != "unixs":
			return fmt.Errorf("--cors: URL scheme must be http, https, unix, or unixs: %s", o)
		case checkHostPort(u.Host) != nil:
			return fmt.Errorf("--cors: URL address does not have the form \"host:port\": %s", o)
		case u.Path != "":
			return fmt.Errorf("--cors: URL must not contain a path: %s", o)
		}
	}
	return nil
}

// freelistType is bbolt's freelist as etcd picks it: "array" if asked,
// else map.
func (c *Config) freelistType() string {
	if c.BackendFreelistType == "array" {
		return "array"
	}
	return "map"
}

// LogToStdout reports whether --log-outputs asks for stdout.
func (c *Config) LogToStdout() bool { return slices.Equal(c.LogOutputs, []string{"stdout"}) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// refusedValue accepts etcd's default of a flag troupe does not
// implement and records anything else for Validate to refuse, so that
// the refusal is one line whatever the source (flag, ETCD_ variable,
// configuration file key).
type refusedValue struct {
	st   *etcd36State
	flag refusedFlag
}

func (v *refusedValue) String() string {
	if v.st == nil {
		return ""
	}
	return v.flag.def
}

func (v *refusedValue) IsBoolFlag() bool { return v.flag.kind == kindBool }

// Get gives the configuration file the YAML type of etcd's value.
func (v *refusedValue) Get() any {
	switch v.flag.kind {
	case kindBool:
		return false
	case kindDuration:
		return time.Duration(0)
	case kindNumber:
		return int64(0)
	}
	return ""
}

func (v *refusedValue) Set(s string) error {
	same, err := sameValue(v.flag.kind, s, v.flag.def)
	if err != nil {
		return err
	}
	if !same {
		v.st.refused = append(v.st.refused, fmt.Sprintf("--%s=%s: %s", v.flag.name, s, v.flag.reason))
	}
	return nil
}

func sameValue(kind valueKind, s, def string) (bool, error) {
	switch kind {
	case kindBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return false, errors.New("want true or false")
		}
		return strconv.FormatBool(b) == def, nil
	case kindDuration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return false, errors.New("want a duration such as 5s")
		}
		want, _ := time.ParseDuration(def)
		return d == want, nil
	case kindNumber:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return false, errors.New("want a number")
		}
		want, _ := strconv.ParseFloat(def, 64)
		return n == want, nil
	}
	return s == def, nil
}

// ignoredValue is an etcd 2 flag etcd 3.6 ignores with a warning.
type ignoredValue struct {
	st   *etcd36State
	name string
}

func (v *ignoredValue) String() string { return "" }

func (v *ignoredValue) Set(string) error {
	v.st.ignored = append(v.st.ignored, v.name)
	return nil
}

// listValue is a comma-separated list of strings, duplicates dropped, as
// etcd's UniqueStringsValue.
type listValue struct{ list *[]string }

func (v *listValue) String() string {
	if v.list == nil {
		return ""
	}
	return strings.Join(*v.list, ",")
}

func (v *listValue) Set(s string) error {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" && !slices.Contains(out, part) {
			out = append(out, part)
		}
	}
	*v.list = out
	return nil
}

// uint32Value is etcd's Uint32Value: a number up to 2^32-1.
type uint32Value uint32

func (v *uint32Value) String() string {
	if v == nil {
		return "0"
	}
	return strconv.FormatUint(uint64(*v), 10)
}

func (v *uint32Value) Set(s string) error {
	n, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return fmt.Errorf("want a whole number up to %d", uint32(math.MaxUint32))
	}
	*v = uint32Value(n)
	return nil
}

func (v *uint32Value) Get() any { return uint(*v) }

// acceptedFlags are the etcd 3.6.8 flags troupe accepts, with what each
// means here. Every flag of etcd's --help is in acceptedFlags,
// refusedFlags or ignoredFlags (a test holds the table to etcd's help),
// except --config-file and --version (cmd/troupe) and --wal-dir and
// --force-new-cluster (registered with their implementation).
var acceptedFlags = map[string]string{
	"name":                                    "member name, as etcd",
	"data-dir":                                "data directory, '<name>.troupe' by default",
	"snapshot-count":                          "applied entries between snapshots",
	"wal-dir":                                 "dedicated WAL directory (node/waldir.go)",
	"force-new-cluster":                       "restart as a single-member cluster keeping the data (persistence/membership.ForceNewCluster)",
	"heartbeat-interval":                      "raft tick, in ms",
	"election-timeout":                        "raft election timeout, in ms",
	"listen-peer-urls":                        "peer listener (protoactor remote); http or https (peer TLS)",
	"listen-client-urls":                      "gRPC and HTTP (gateway, /health, /metrics) listeners; http or https",
	"listen-metrics-urls":                     "extra /metrics and /health listeners",
	"max-snapshots":                           "snapshot files kept (0: all), as etcd's purge",
	"max-wals":                                "WAL segment files kept (0: all), as etcd's purge",
	"quota-backend-bytes":                     "NOSPACE alarm threshold",
	"backend-batch-interval":                  "longest time applied writes wait for their bbolt commit (0: 100ms)",
	"backend-batch-limit":                     "changes after which the backend commits (0: 10000)",
	"max-txn-ops":                             "operations per Txn",
	"max-request-bytes":                       "largest client request",
	"max-concurrent-streams":                  "gRPC streams per client connection",
	"grpc-keepalive-min-time":                 "gRPC keepalive enforcement policy",
	"grpc-keepalive-interval":                 "gRPC server pings",
	"grpc-keepalive-timeout":                  "gRPC server ping timeout",
	"enable-grpc-gateway":                     "true only: troupe always serves the JSON gateway",
	"feature-gates":                           "etcd 3.6's gates; see gateSpecs",
	"initial-advertise-peer-urls":             "this member's peer URLs",
	"initial-cluster":                         "bootstrap membership",
	"initial-cluster-state":                   "new or existing",
	"initial-cluster-token":                   "seeds cluster and member ids",
	"advertise-client-urls":                   "client URLs told to others",
	"discovery-fallback":                      "'exit' only, as etcd 3.6 (no discovery, so nothing to fall back from)",
	"strict-reconfig-check":                   "refuse member changes that would lose quorum",
	"pre-vote":                                "raft Pre-Vote",
	"auto-compaction-retention":               "auto compaction retention",
	"auto-compaction-mode":                    "periodic or revision",
	"v2-deprecation":                          "accepted and ignored with etcd's warning (troupe has no v2 store)",
	"cors":                                    "CORS origins of the HTTP endpoints",
	"host-whitelist":                          "Host headers the HTTP endpoints accept",
	"enable-pprof":                            "/debug/pprof/ on the client URLs",
	"metrics":                                 "basic or extensive (gRPC handling-time histograms)",
	"logger":                                  "zap only (troupe's structured logger)",
	"log-outputs":                             "default, stderr, stdout or files, several at once (not systemd/journal)",
	"log-level":                               "debug, info, warn, error, panic, fatal",
	"log-format":                              "json, console (text), or automatic",
	"experimental-initial-corrupt-check":      "sets gate InitialCorruptCheck (deprecated)",
	"experimental-corrupt-check-time":         "alias of --corrupt-check-time (deprecated)",
	"corrupt-check-time":                      "period of the cluster corruption check (0: off)",
	"experimental-compact-hash-check-enabled": "sets gate CompactHashCheck (deprecated)",
	"experimental-compact-hash-check-time":    "alias of --compact-hash-check-time (deprecated)",
	"compact-hash-check-time":                 "period of the leader's compaction hash check",
	"experimental-enable-lease-checkpoint":    "sets gate LeaseCheckpoint; troupe always checkpoints leases",
	"experimental-enable-lease-checkpoint-persist":      "sets gate LeaseCheckpointPersist; troupe always persists checkpoints (as etcd 3.6)",
	"experimental-watch-progress-notify-interval":       "alias of --watch-progress-notify-interval (deprecated)",
	"watch-progress-notify-interval":                    "period of watch progress notifications",
	"experimental-txn-mode-write-with-shared-buffer":    "sets gate TxnModeWriteWithSharedBuffer; a performance detail of etcd's backend, no effect in troupe",
	"experimental-snapshot-catchup-entries":             "alias of --snapshot-catchup-entries (deprecated)",
	"snapshot-catchup-entries":                          "raft entries kept behind a snapshot for slow followers",
	"experimental-stop-grpc-service-on-defrag":          "sets gate StopGRPCServiceOnDefrag, which troupe refuses on",
	"listen-client-http-urls":                           "HTTP endpoints (gateway, /health, /metrics) alone on these URLs; --listen-client-urls then serve gRPC only",
	"memory-mlock":                                      "bbolt keeps the backend's pages in RAM (mlock)",
	"experimental-memory-mlock":                         "old name of --memory-mlock (deprecated)",
	"backend-bbolt-freelist-type":                       "bbolt's freelist: 'array', else map (as etcd)",
	"bootstrap-defrag-threshold-megabytes":              "defragment the backend at start-up when this much of it is free (0: never)",
	"experimental-bootstrap-defrag-threshold-megabytes": "old name of --bootstrap-defrag-threshold-megabytes (deprecated)",
	"warning-apply-duration":                            "applies slower than it are logged at warn ('apply request took too long', as etcd)",
	"experimental-warning-apply-duration":               "old name of --warning-apply-duration (deprecated)",
	"compaction-batch-limit":                            "a compaction's deletes reach bbolt in transactions of at most this many (0: with the batch)",
	"experimental-compaction-batch-limit":               "old name of --compaction-batch-limit (deprecated)",
	"max-learners":                                      "learners a member add may leave in the cluster (checked as it applies)",
	"unsafe-no-fsync":                                   "WAL and backend skip fsync: a crash can lose acknowledged writes",
	"warning-unary-request-duration":                    "unary requests slower than it are logged at warn ('request stats', as etcd)",
	"experimental-warning-unary-request-duration":       "old name of --warning-unary-request-duration (deprecated; not both)",
	"initial-election-tick-advance":                     "true: a member of a multi-member cluster fast-forwards election-2 ticks once two peers answer (as etcd); a lone member campaigns at once either way",
	"socket-reuse-address":                              "SO_REUSEADDR on the client and metrics listeners (Go sets it on all anyway)",
	"socket-reuse-port":                                 "SO_REUSEPORT on the client and metrics listeners; not the peer listener (protoactor's), with a warning",
	"raft-write-timeout":                                "a write to another member blocked this long fails its connection (protoactor dials again); at least 5s, as etcd",
	"enable-log-rotation":                               "the one file of --log-outputs rotates (lumberjack, as etcd)",
	"log-rotation-config-json":                          "lumberjack's settings of the rotation, checked as etcd",
	"auth-token":                                        "simple, jwt,<options> or '' (internal/authtoken), refused at start-up with etcd's errors",
	"auth-token-ttl":                                    "seconds a simple token lives unused (0: 300)",
	"bcrypt-cost":                                       "bcrypt cost of new passwords; out of 4..31: 10 with a warning, as etcd",
}
