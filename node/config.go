package node

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/troupedb/troupe/persistence/membership"
)

// Defaults, as etcd 3.6 has them, except that troupe listens on 127.0.0.1
// rather than localhost (which may resolve to ::1 first) and keeps its data
// in "<name>.troupe".
const (
	DefaultName                = "default"
	DefaultListenClientURL     = "http://127.0.0.1:2379"
	DefaultListenPeerURL       = "http://127.0.0.1:2380"
	DefaultInitialClusterState = ClusterStateNew
	DefaultInitialClusterToken = "etcd-cluster"
	DefaultSnapshotCount       = 10000 // etcd 3.6's (3.4: 100000)
	DefaultHeartbeatInterval   = 100 * time.Millisecond
	DefaultElectionTimeout     = 1000 * time.Millisecond
	DefaultQuotaBackendBytes   = 2 * 1024 * 1024 * 1024 // what --quota-backend-bytes=0 means
	DefaultMaxRequestBytes     = 1572864                // 1.5 MiB
	DefaultMaxTxnOps           = 128
	DefaultLogLevel            = "info"
	// DefaultListenActorURL derives the actor API's address from the
	// client URL (see Config.ActorAddress), so that several members on one
	// host, started with etcd's flags alone, do not collide on it.
	DefaultListenActorURL = "auto"
	// DefaultWatchProgressNotifyInterval is etcd's default of
	// --experimental-watch-progress-notify-interval.
	DefaultWatchProgressNotifyInterval = 10 * time.Minute

	// MaxElectionTimeout is etcd's upper bound on --election-timeout.
	MaxElectionTimeout = 50 * time.Second
)

// Values of --initial-cluster-state.
const (
	ClusterStateNew      = "new"
	ClusterStateExisting = "existing"
)

// DataDirSuffix is appended to --name when --data-dir is not given.
const DataDirSuffix = ".troupe"

// Config is a member's configuration, with etcd's flag names and meaning.
// Start it from Default, change fields or parse flags registered by
// RegisterFlags, then call Validate.
type Config struct {
	// Name is the human-readable name of this member (--name). It keys this
	// member in InitialCluster.
	Name string
	// DataDir holds the WAL, snapshots and backend (--data-dir). When only
	// --name is given it defaults to "<name>.troupe".
	DataDir string
	// WALDir is a dedicated directory for the WAL (--wal-dir); empty: the
	// WAL lives in <data-dir>/member/wal. See WALPath.
	WALDir string
	// ForceNewCluster restarts a member that has a WAL as the only member
	// of its cluster, keeping its id and committed data: every other
	// member is removed (--force-new-cluster). Ignored for a new member.
	ForceNewCluster bool

	// ListenClientURLs are where the etcd v3 gRPC API listens.
	ListenClientURLs []url.URL
	// ListenClientHTTPURLs, when set, serve the client HTTP endpoints,
	// and ListenClientURLs gRPC only (etcd's --listen-client-http-urls).
	ListenClientHTTPURLs []url.URL
	// ListenMetricsURLs serve /metrics and /health (etcd's
	// --listen-metrics-urls); empty: only on the client URLs.
	ListenMetricsURLs []url.URL
	// AdvertiseClientURLs are told to clients (member list, endpoints).
	AdvertiseClientURLs []url.URL
	// ListenPeerURLs are where raft traffic from other members arrives.
	ListenPeerURLs []url.URL
	// InitialAdvertisePeerURLs are this member's peer URLs as the rest of
	// the cluster sees them; they must match this member in InitialCluster.
	InitialAdvertisePeerURLs []url.URL

	// InitialCluster is "name=peerURL,name=peerURL,..." for bootstrapping.
	// When not given it is built from Name and InitialAdvertisePeerURLs.
	InitialCluster string
	// InitialClusterState is "new" or "existing" (joining a running cluster).
	InitialClusterState string
	// InitialClusterToken separates clusters bootstrapped from the same
	// member list; it seeds the cluster and member IDs.
	InitialClusterToken string

	// SnapshotCount is the number of applied entries that triggers a
	// snapshot, after which older WAL segments can be released.
	SnapshotCount uint64
	// HeartbeatInterval is raft's tick; the flag is in milliseconds.
	HeartbeatInterval time.Duration
	// ElectionTimeout must be at least 5 heartbeats (etcd's rule) and at most
	// MaxElectionTimeout; the flag is in milliseconds.
	ElectionTimeout time.Duration

	// QuotaBackendBytes raises the NOSPACE alarm when the backend grows past
	// it: 0 means DefaultQuotaBackendBytes, a negative value disables the
	// quota (as etcd). See BackendQuotaBytes.
	QuotaBackendBytes int64
	// MaxRequestBytes is the largest client request accepted.
	MaxRequestBytes uint
	// MaxTxnOps is the most operations one Txn may carry.
	MaxTxnOps uint

	// AutoCompactionMode is "periodic" or "revision"; AutoCompactionRetention
	// is etcd's retention string ("0" = off; see node/compaction.go).
	AutoCompactionMode      string
	AutoCompactionRetention string

	// LogLevel is debug, info, warn or error.
	LogLevel string
	// LogFormat is "" (tint on a terminal, JSON otherwise), "text" or "json".
	LogFormat string

	// ListenActorURL is the protoactor remote address (host:port) of the
	// actor API; "auto" derives it (see ActorAddress), empty disables it.
	// troupe's own, not an etcd flag.
	ListenActorURL string

	// WatchProgressNotifyInterval is how often a watch that asked for
	// progress notifications gets one
	// (--experimental-watch-progress-notify-interval).
	WatchProgressNotifyInterval time.Duration

	// Knobs of etcd 3.6 (registered in etcdflags.go, which says what
	// each means in troupe).
	PreVote                bool
	StrictReconfigCheck    bool
	MaxSnapshots           uint // 0: unlimited
	MaxWALs                uint // 0: unlimited
	SnapshotCatchUpEntries uint64
	BackendBatchInterval   time.Duration // 0: the applier's default
	BackendBatchLimit      int           // 0: the backend's default
	MaxConcurrentStreams   uint32
	GRPCKeepAliveMinTime   time.Duration
	GRPCKeepAliveInterval  time.Duration
	GRPCKeepAliveTimeout   time.Duration
	// CORS and HostWhitelist are the origins and hosts the HTTP endpoints
	// accept; "*" (or nothing) allows all.
	CORS          []string
	HostWhitelist []string
	EnablePprof   bool
	Metrics       string // basic or extensive
	// WarningUnaryRequestDuration: slower unary requests are logged at warn.
	WarningUnaryRequestDuration time.Duration
	// Backend: bbolt's mlock and freelist ("array", else map), a
	// defragmentation at start-up when this many MiB are free (0: never),
	// and no fsync at all (unsafe).
	MemoryMlock                       bool
	BackendFreelistType               string
	BootstrapDefragThresholdMegabytes uint
	UnsafeNoFsync                     bool
	// WarningApplyDuration: slower applies are logged at warn.
	WarningApplyDuration time.Duration
	// CompactionBatchLimit: a compaction's deletes reach the backend in
	// transactions of at most this many (0: with the write batch).
	CompactionBatchLimit int
	// MaxLearners is etcd's --max-learners.
	MaxLearners int
	LogOutputs  []string
	// EnableLogRotation rotates the one file of LogOutputs with
	// lumberjack, configured by LogRotationConfigJSON (etcd's flags).
	EnableLogRotation     bool
	LogRotationConfigJSON string
	// SocketReuseAddress and SocketReusePort set SO_REUSEADDR and
	// SO_REUSEPORT on the client, client HTTP and metrics listeners; the
	// peer listener is protoactor's and takes neither (see Warnings).
	SocketReuseAddress, SocketReusePort bool
	// InitialElectionTickAdvance (etcd's default true) lets a member of a
	// multi-member cluster fast-forward its election ticks once its peers
	// answer; false waits a whole election timeout first.
	InitialElectionTickAdvance bool
	// RaftWriteTimeout fails a write to another member that blocks
	// longer (etcd's --raft-write-timeout; raised to 5s, its minimum).
	RaftWriteTimeout time.Duration
	// ClientTLS and PeerTLS are etcd's TLS flags of each side
	// (node/security.go); SelfSignedCertValidity (years), CipherSuites
	// and TLSMinVersion / TLSMaxVersion apply to both.
	ClientTLS, PeerTLS           TLSConfig
	SelfSignedCertValidity       uint
	CipherSuites                 []string
	TLSMinVersion, TLSMaxVersion string
	// FeatureGates is --feature-gates, with the --experimental-* flags
	// that name a gate folded in by ResolveFlags.
	FeatureGates FeatureGates

	// Corruption checks (etcd 3.6's; see actors/corruptcheck).
	// InitialCorruptCheck compares this member's hash with the others'
	// before it serves clients and stops it on a mismatch
	// (--experimental-initial-corrupt-check, feature gate
	// InitialCorruptCheck). CorruptCheckTime is the time between the
	// leader's checks of the followers' hashes, which raise the CORRUPT
	// alarm; 0 is off (--experimental-corrupt-check-time).
	// CompactHashCheck turns on the leader's comparison of the hashes
	// every member keeps at each compaction, every CompactHashCheckTime
	// (feature gate CompactHashCheck,
	// --experimental-compact-hash-check-time, default 1m; 0 is off).
	InitialCorruptCheck  bool
	CorruptCheckTime     time.Duration
	CompactHashCheck     bool
	CompactHashCheckTime time.Duration

	// Auth tokens and passwords, as etcd's flags: AuthToken is
	// --auth-token ("simple", "jwt,..." or "" for none), AuthTokenTTL
	// --auth-token-ttl (seconds a simple token lives unused; 0: 300),
	// BcryptCost --bcrypt-cost (out of bcrypt's 4..31: 10, as etcd).
	AuthToken    string
	AuthTokenTTL uint
	BcryptCost   uint

	// Logger receives all logs; nil means slog.Default(). Not a flag.
	Logger *slog.Logger

	// PeerFilter is a test hook on every raft message this member sends:
	// drop it or delay it (see actors/peers Config.Filter). Not a flag.
	PeerFilter func(from, to uint64, m *raftpb.Message) (drop bool, delay time.Duration)

	// WALSegmentBytes is the size of WAL segment files; 0 means the WAL's
	// default (64 MiB). Not a flag: tests set it small to see segments
	// released after snapshots.
	WALSegmentBytes int64

	// Which flags were given explicitly; set by the flag values only, so a
	// Config built in code is never checked against flag-only rules.
	set struct {
		dataDir, initialCluster, listenClient, advertiseClient bool
	}
	// tls is what Start built from the TLS flags.
	tls tlsState
	// etcd36 holds what the etcd 3.6 flags parsed before ResolveFlags
	// folds it into the fields above (see etcdflags.go).
	etcd36 etcd36State
}

// Default returns etcd 3.6's defaults, listening on 127.0.0.1.
func Default() Config {
	c := Config{
		Name:                     DefaultName,
		DataDir:                  DefaultName + DataDirSuffix,
		ListenClientURLs:         []url.URL{mustURL(DefaultListenClientURL)},
		AdvertiseClientURLs:      []url.URL{mustURL(DefaultListenClientURL)},
		ListenPeerURLs:           []url.URL{mustURL(DefaultListenPeerURL)},
		InitialAdvertisePeerURLs: []url.URL{mustURL(DefaultListenPeerURL)},
		InitialClusterState:      DefaultInitialClusterState,
		InitialClusterToken:      DefaultInitialClusterToken,
		SnapshotCount:            DefaultSnapshotCount,
		HeartbeatInterval:        DefaultHeartbeatInterval,
		ElectionTimeout:          DefaultElectionTimeout,
		MaxRequestBytes:          DefaultMaxRequestBytes,
		MaxTxnOps:                DefaultMaxTxnOps,
		LogLevel:                 DefaultLogLevel,
		ListenActorURL:           DefaultListenActorURL,
		AutoCompactionMode:       DefaultAutoCompactionMode,
		AutoCompactionRetention:  DefaultAutoCompactionRetention,

		WatchProgressNotifyInterval: DefaultWatchProgressNotifyInterval,

		PreVote:                true,
		StrictReconfigCheck:    true,
		MaxSnapshots:           DefaultMaxSnapshots,
		MaxWALs:                DefaultMaxWALs,
		SnapshotCatchUpEntries: DefaultSnapshotCatchUpEntries,
		MaxConcurrentStreams:   math.MaxUint32,
		GRPCKeepAliveMinTime:   DefaultGRPCKeepAliveMinTime,
		GRPCKeepAliveInterval:  DefaultGRPCKeepAliveInterval,
		GRPCKeepAliveTimeout:   DefaultGRPCKeepAliveTimeout,
		CORS:                   []string{"*"},
		HostWhitelist:          []string{"*"},
		Metrics:                MetricsBasic,
		LogOutputs:             []string{LogOutputDefault},
		CompactHashCheckTime:   DefaultCompactHashCheckTime,

		WarningUnaryRequestDuration: DefaultWarningUnaryRequestDuration,
		BackendFreelistType:         "map",
		MaxLearners:                 membership.MaxLearners,
		WarningApplyDuration:        DefaultWarningApplyDuration,
		CompactionBatchLimit:        DefaultCompactionBatchLimit,
		InitialElectionTickAdvance:  true,
		RaftWriteTimeout:            DefaultRaftWriteTimeout,
		LogRotationConfigJSON:       DefaultLogRotationConfig,
		AuthToken:                   DefaultAuthToken,
		AuthTokenTTL:                DefaultAuthTokenTTL,
		BcryptCost:                  DefaultBcryptCost,
		SelfSignedCertValidity:      1,
		TLSMinVersion:               "TLS1.2",
	}
	c.InitialCluster = c.InitialClusterFromName(c.Name)
	return c
}

func mustURL(s string) url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return *u
}

// InitialClusterFromName returns "name=u1,name=u2" for this member's
// InitialAdvertisePeerURLs, as etcd builds --initial-cluster by default.
func (c *Config) InitialClusterFromName(name string) string {
	parts := make([]string, 0, len(c.InitialAdvertisePeerURLs))
	for _, u := range c.InitialAdvertisePeerURLs {
		parts = append(parts, name+"="+u.String())
	}
	return strings.Join(parts, ",")
}

// BackendQuotaBytes is the effective backend quota: QuotaBackendBytes, with
// 0 meaning DefaultQuotaBackendBytes; a negative result means no quota.
func (c *Config) BackendQuotaBytes() int64 {
	if c.QuotaBackendBytes == 0 {
		return DefaultQuotaBackendBytes
	}
	return c.QuotaBackendBytes
}

// ParseInitialCluster parses "name=url,name=url" into peer URLs per member
// name; a name may appear more than once, one URL each time.
func ParseInitialCluster(s string) (map[string][]url.URL, error) {
	members := map[string][]url.URL{}
	seen := map[string]string{}
	for _, term := range strings.Split(s, ",") {
		term = strings.TrimSpace(term)
		if term == "" {
			continue
		}
		name, raw, ok := strings.Cut(term, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--initial-cluster term %q is not name=peerURL", term)
		}
		u, err := parseURL("--initial-cluster", raw)
		if err != nil {
			return nil, err
		}
		if other, dup := seen[u.String()]; dup {
			return nil, fmt.Errorf("--initial-cluster lists peer URL %s twice (members %q and %q); give each member its own URLs", u.String(), other, name)
		}
		seen[u.String()] = name
		members[name] = append(members[name], *u)
	}
	if len(members) == 0 {
		return nil, errors.New("--initial-cluster is empty; set it like 'default=http://127.0.0.1:2380'")
	}
	return members, nil
}

// Validate checks the configuration as etcd does and returns an error that
// names the flag at fault and how to fix it.
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("--name is empty; give this member a name such as 'default'")
	}
	if c.DataDir == "" {
		return errors.New("--data-dir is empty; give a directory such as '" + c.Name + DataDirSuffix + "'")
	}
	for _, f := range []struct {
		flag string
		urls []url.URL
	}{
		{"--listen-client-urls", c.ListenClientURLs},
		{"--advertise-client-urls", c.AdvertiseClientURLs},
		{"--listen-peer-urls", c.ListenPeerURLs},
		{"--initial-advertise-peer-urls", c.InitialAdvertisePeerURLs},
	} {
		if err := checkURLs(f.flag, f.urls); err != nil {
			return err
		}
	}
	if c.set.listenClient && !c.set.advertiseClient {
		return errors.New("--advertise-client-urls is required when --listen-client-urls is set explicitly")
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	if err := c.validateRaft(); err != nil {
		return err
	}
	if c.MaxRequestBytes == 0 {
		return fmt.Errorf("--max-request-bytes must be > 0 (default %d)", DefaultMaxRequestBytes)
	}
	if c.WatchProgressNotifyInterval <= 0 {
		return fmt.Errorf("--experimental-watch-progress-notify-interval must be > 0 (default %s)", DefaultWatchProgressNotifyInterval)
	}
	if c.MaxTxnOps == 0 {
		return fmt.Errorf("--max-txn-ops must be > 0 (default %d)", DefaultMaxTxnOps)
	}
	if _, _, err := c.autoCompaction(); err != nil {
		return err
	}
	if _, err := ParseLogLevel(c.LogLevel); err != nil {
		return err
	}
	if err := checkLogFormat(c.LogFormat); err != nil {
		return err
	}
	if _, err := c.ActorAddress(); err != nil {
		return err
	}
	if err := c.checkAuthToken(); err != nil {
		return err
	}
	if err := c.validateEtcd36(); err != nil {
		return err
	}
	return c.validateTLS()
}

// ActorAddress is where the actor API listens: "" when it is off, the
// given host:port, or for "auto" 127.0.0.1 at the first client URL's port
// minus one (127.0.0.1:2378 for etcd's 2379; 22378 and 32378 for the
// 22379 and 32379 of etcd's three-member Procfile). Loopback whatever the
// client URL's host: the actor API has no auth yet (it has TLS, the
// client side's, when a client URL is https).
func (c *Config) ActorAddress() (string, error) {
	switch c.ListenActorURL {
	case "":
		return "", nil
	case DefaultListenActorURL:
		if len(c.ListenClientURLs) == 0 {
			return "", errors.New("--listen-actor-url auto: no --listen-client-urls to derive it from; give host:port, or '' to disable the actor API")
		}
		u := c.ListenClientURLs[0]
		port, err := strconv.Atoi(u.Port())
		if err != nil || port <= 1 {
			return "", fmt.Errorf("--listen-actor-url auto: cannot derive a port from client URL %s (its port minus one); give host:port, or '' to disable the actor API", u.String())
		}
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port-1)), nil
	}
	if err := checkHostPort(c.ListenActorURL); err != nil {
		return "", fmt.Errorf("--listen-actor-url %q: %w; use host:port such as 127.0.0.1:2378, 'auto' (the client URL's port minus one, on 127.0.0.1), or '' to disable the actor API", c.ListenActorURL, err)
	}
	return c.ListenActorURL, nil
}

func (c *Config) validateCluster() error {
	switch c.InitialClusterState {
	case ClusterStateNew, ClusterStateExisting:
	default:
		return fmt.Errorf("--initial-cluster-state %q is not 'new' or 'existing'", c.InitialClusterState)
	}
	members, err := ParseInitialCluster(c.InitialCluster)
	if err != nil {
		return err
	}
	own, ok := members[c.Name]
	if !ok {
		return fmt.Errorf("--initial-cluster %q has no member named %q (--name); add '%s' to it", c.InitialCluster, c.Name, c.InitialClusterFromName(c.Name))
	}
	if !sameURLs(own, c.InitialAdvertisePeerURLs) {
		return fmt.Errorf("--initial-cluster has %s=%s but --initial-advertise-peer-urls is %s; make them list the same URLs", c.Name, joinURLs(own), joinURLs(c.InitialAdvertisePeerURLs))
	}
	return nil
}

func (c *Config) validateRaft() error {
	if c.SnapshotCount == 0 {
		return fmt.Errorf("--snapshot-count must be > 0 (default %d)", DefaultSnapshotCount)
	}
	hb, el := c.HeartbeatInterval.Milliseconds(), c.ElectionTimeout.Milliseconds()
	if hb <= 0 || c.HeartbeatInterval%time.Millisecond != 0 {
		return fmt.Errorf("--heartbeat-interval must be a whole number of milliseconds > 0 (set to %v)", c.HeartbeatInterval)
	}
	if el <= 0 || c.ElectionTimeout%time.Millisecond != 0 {
		return fmt.Errorf("--election-timeout must be a whole number of milliseconds > 0 (set to %v)", c.ElectionTimeout)
	}
	if 5*hb > el {
		return fmt.Errorf("--election-timeout[%dms] should be at least as 5 times as --heartbeat-interval[%dms]; raise --election-timeout to %d or more", el, hb, 5*hb)
	}
	if c.ElectionTimeout > MaxElectionTimeout {
		return fmt.Errorf("--election-timeout[%dms] is too long, and should be set less than %dms", el, MaxElectionTimeout.Milliseconds())
	}
	return nil
}

// checkURLs refuses what troupe cannot serve: etcd allows unix sockets,
// troupe listens on TCP only (so far).
func checkURLs(flagName string, urls []url.URL) error {
	if len(urls) == 0 {
		return fmt.Errorf("%s is empty; give at least one URL such as %s", flagName, exampleURL(flagName))
	}
	for _, u := range urls {
		if err := checkURL(flagName, &u); err != nil {
			return err
		}
	}
	return nil
}

func exampleURL(flagName string) string {
	if strings.Contains(flagName, "peer") {
		return DefaultListenPeerURL
	}
	return DefaultListenClientURL
}

func checkURL(flagName string, u *url.URL) error {
	switch u.Scheme {
	case "http", "https":
	default:
		return fmt.Errorf("%s %q: scheme must be http or https (like %s)", flagName, u.String(), exampleURL(flagName))
	}
	if u.Path != "" && u.Path != "/" {
		return fmt.Errorf("%s %q: URL must not contain a path; use scheme://host:port", flagName, u.String())
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s %q: URL must be scheme://host:port only", flagName, u.String())
	}
	if err := checkHostPort(u.Host); err != nil {
		return fmt.Errorf("%s %q: %w; use scheme://host:port like %s", flagName, u.String(), err, exampleURL(flagName))
	}
	return nil
}

func checkHostPort(hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return errors.New("address does not have the form host:port")
	}
	if host == "" {
		return errors.New("host is empty")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("port %q is not a number in 1-65535", port)
	}
	return nil
}

func parseURL(flagName, s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %v", flagName, s, err)
	}
	if err := checkURL(flagName, u); err != nil {
		return nil, err
	}
	return u, nil
}

func sameURLs(a, b []url.URL) bool {
	if len(a) != len(b) {
		return false
	}
	set := map[string]int{}
	for _, u := range a {
		set[canonical(u)]++
	}
	for _, u := range b {
		set[canonical(u)]--
	}
	for _, n := range set {
		if n != 0 {
			return false
		}
	}
	return true
}

func canonical(u url.URL) string {
	u.Path = ""
	return strings.ToLower(u.Scheme + "://" + u.Host)
}

func joinURLs(urls []url.URL) string {
	s := make([]string, len(urls))
	for i, u := range urls {
		s[i] = u.String()
	}
	return strings.Join(s, ",")
}

// RegisterFlags binds c's fields to etcd's flag names in fs, with etcd's
// help text; the current field values are the defaults shown. Durations
// are given in milliseconds as etcd does.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Var(&nameValue{c}, "name", "Human-readable name for this member.")
	fs.Var(&dataDirValue{c}, "data-dir", "Path to the data directory. Defaults to '<name>"+DataDirSuffix+"'.")
	fs.StringVar(&c.WALDir, "wal-dir", c.WALDir, "Path to the dedicated wal directory.")
	fs.Uint64Var(&c.SnapshotCount, "snapshot-count", c.SnapshotCount, "Number of committed transactions to trigger a snapshot to disk.")
	fs.Var((*msValue)(&c.HeartbeatInterval), "heartbeat-interval", "Time (in milliseconds) of a heartbeat interval.")
	fs.Var((*msValue)(&c.ElectionTimeout), "election-timeout", "Time (in milliseconds) for an election to timeout. See tuning documentation for details.")
	fs.Var(&urlsValue{urls: &c.ListenPeerURLs}, "listen-peer-urls", "List of URLs to listen on for peer traffic.")
	fs.Var(&urlsValue{urls: &c.ListenClientURLs, set: &c.set.listenClient}, "listen-client-urls", "List of URLs to listen on for client traffic.")
	fs.Var(&urlsValue{urls: &c.ListenMetricsURLs}, "listen-metrics-urls", "List of URLs to listen on for the metrics and health endpoints.")
	fs.Int64Var(&c.QuotaBackendBytes, "quota-backend-bytes", c.QuotaBackendBytes, "Raise alarms when backend size exceeds the given quota (0 defaults to low space quota).")
	fs.UintVar(&c.MaxTxnOps, "max-txn-ops", c.MaxTxnOps, "Maximum number of operations permitted in a transaction.")
	fs.UintVar(&c.MaxRequestBytes, "max-request-bytes", c.MaxRequestBytes, "Maximum client request size in bytes the server will accept.")
	fs.StringVar(&c.AutoCompactionRetention, "auto-compaction-retention", c.AutoCompactionRetention, "Auto compaction retention length. 0 means disable auto compaction.")
	fs.StringVar(&c.AutoCompactionMode, "auto-compaction-mode", c.AutoCompactionMode, "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention.")

	fs.Var(&peerURLsValue{c}, "initial-advertise-peer-urls", "List of this member's peer URLs to advertise to the rest of the cluster.")
	fs.Var(&initialClusterValue{c}, "initial-cluster", "Initial cluster configuration for bootstrapping.")
	fs.StringVar(&c.InitialClusterState, "initial-cluster-state", c.InitialClusterState, "Initial cluster state ('new' or 'existing').")
	fs.StringVar(&c.InitialClusterToken, "initial-cluster-token", c.InitialClusterToken, "Initial cluster token for the etcd cluster during bootstrap.")
	fs.BoolVar(&c.ForceNewCluster, "force-new-cluster", c.ForceNewCluster, "Force to create a new one-member cluster.")
	fs.Var(&urlsValue{urls: &c.AdvertiseClientURLs, set: &c.set.advertiseClient}, "advertise-client-urls", "List of this member's client URLs to advertise to the public.")

	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "Configures log level. Only supports debug, info, warn, error.")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "Log format: 'text' (coloured on a terminal), 'json', or '' for text on a terminal and json otherwise. troupe only.")
	fs.StringVar(&c.ListenActorURL, "listen-actor-url", c.ListenActorURL, "host:port of the protoactor remote endpoint serving the actor API; 'auto': 127.0.0.1 at the first client URL's port minus one (2378 for 2379); '' disables it. Over TLS (the client certificate flags) when a client URL is https; callers use actorclient.RemoteOptions. troupe only.")
	c.registerEtcd36Flags(fs)
}

// nameValue sets Name and, unless given explicitly, the DataDir and
// InitialCluster derived from it, whatever the order of the flags.
type nameValue struct{ c *Config }

func (v *nameValue) String() string {
	if v.c == nil {
		return ""
	}
	return v.c.Name
}

func (v *nameValue) Set(s string) error {
	v.c.Name = s
	if !v.c.set.dataDir {
		v.c.DataDir = s + DataDirSuffix
	}
	if !v.c.set.initialCluster {
		v.c.InitialCluster = v.c.InitialClusterFromName(s)
	}
	return nil
}

type dataDirValue struct{ c *Config }

func (v *dataDirValue) String() string {
	if v.c == nil {
		return ""
	}
	return v.c.DataDir
}

func (v *dataDirValue) Set(s string) error {
	v.c.DataDir, v.c.set.dataDir = s, true
	return nil
}

type initialClusterValue struct{ c *Config }

func (v *initialClusterValue) String() string {
	if v.c == nil {
		return ""
	}
	return v.c.InitialCluster
}

func (v *initialClusterValue) Set(s string) error {
	v.c.InitialCluster, v.c.set.initialCluster = s, true
	return nil
}

// peerURLsValue sets InitialAdvertisePeerURLs and, unless given
// explicitly, the InitialCluster derived from them.
type peerURLsValue struct{ c *Config }

func (v *peerURLsValue) String() string {
	if v.c == nil {
		return ""
	}
	return joinURLs(v.c.InitialAdvertisePeerURLs)
}

func (v *peerURLsValue) Set(s string) error {
	if err := (&urlsValue{urls: &v.c.InitialAdvertisePeerURLs}).Set(s); err != nil {
		return err
	}
	if !v.c.set.initialCluster {
		v.c.InitialCluster = v.c.InitialClusterFromName(v.c.Name)
	}
	return nil
}

// urlsValue is a comma-separated list of URLs; Validate checks them.
type urlsValue struct {
	urls *[]url.URL
	set  *bool // optional: records an explicit value
}

func (v *urlsValue) String() string {
	if v.urls == nil {
		return ""
	}
	return joinURLs(*v.urls)
}

func (v *urlsValue) Set(s string) error {
	var urls []url.URL
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := url.Parse(part)
		if err != nil {
			return fmt.Errorf("%q is not a URL; want scheme://host:port such as %s", part, DefaultListenClientURL)
		}
		urls = append(urls, *u)
	}
	*v.urls = urls
	if v.set != nil {
		*v.set = true
	}
	return nil
}

// msValue is a time.Duration given on the command line in milliseconds.
type msValue time.Duration

func (v *msValue) String() string {
	if v == nil {
		return "0"
	}
	return strconv.FormatInt(time.Duration(*v).Milliseconds(), 10)
}

func (v *msValue) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return errors.New("want a whole number of milliseconds")
	}
	*v = msValue(time.Duration(n) * time.Millisecond)
	return nil
}

// requestTimeout bounds how long a request waits for raft, as etcd's:
// 5 s plus two election timeouts.
func (c *Config) requestTimeout() time.Duration { return 5*time.Second + 2*c.ElectionTimeout }
