package node

import (
	"flag"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// helpFlags are the flag names of etcd 3.6.8's --help, stored from
// /tmp/etcd36/etcd --help (and embedded for troupe's own help).
func helpFlags(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z0-9-]+)`).FindAllStringSubmatch(etcdHelp, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	if len(names) < 130 {
		t.Fatalf("only %d flags read from etcd's help", len(names))
	}
	return names
}

// Flags of etcd's help registered outside RegisterFlags, by cmd/troupe
// (its test checks them).
var commandFlags = []string{"config-file", "version"}

func flagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	return fs
}

func TestEveryEtcdFlagIsAcceptedOrRefused(t *testing.T) {
	c := Default()
	fs := flagSet(&c)
	refused := map[string]refusedFlag{}
	for _, r := range refusedFlags {
		refused[r.name] = r
	}
	for _, name := range helpFlags(t) {
		accepted := isAccepted(name)
		_, isRefused := refused[name]
		switch {
		case slices.Contains(commandFlags, name):
			continue
		case accepted == isRefused:
			t.Errorf("--%s: accepted %v, refused %v; want exactly one", name, accepted, isRefused)
		}
		if fs.Lookup(name) == nil {
			t.Errorf("--%s is in the table but not registered", name)
		}
	}
	// And no flag is registered that the table does not explain.
	fs.VisitAll(func(f *flag.Flag) {
		accepted := isAccepted(f.Name)
		_, isRefused := refused[f.Name]
		if !accepted && !isRefused && !slices.Contains(ignoredFlags, f.Name) && f.Name != "listen-actor-url" {
			t.Errorf("--%s is registered but in no table", f.Name)
		}
	})
}

// TestDefaultsAsEtcd: every flag troupe registers under etcd's name has
// etcd 3.6.8's default (as its --help prints it), but for the differences
// troupe makes on purpose, listed here with the reason.
func TestDefaultsAsEtcd(t *testing.T) {
	different := map[string]string{
		"data-dir":                    "'<name>.troupe', not '<name>.etcd'",
		"listen-peer-urls":            "127.0.0.1 rather than localhost (which may resolve to ::1 first)",
		"listen-client-urls":          "127.0.0.1 rather than localhost",
		"initial-advertise-peer-urls": "127.0.0.1 rather than localhost",
		"advertise-client-urls":       "127.0.0.1 rather than localhost",
		"initial-cluster":             "127.0.0.1 rather than localhost",
		"log-format":                  "'' is text on a terminal and json otherwise (etcd: json)",
		"experimental-warning-unary-request-duration": "0s marks it not given; the effective default is --warning-unary-request-duration's 300ms",
	}
	// how etcd's help spells a default troupe's flag package prints otherwise
	spelled := map[string]string{"math.MaxUint32": "4294967295"}
	etcdDefaults := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z0-9-]+) '([^']*)'`).FindAllStringSubmatch(etcdHelp, -1) {
		etcdDefaults[m[1]] = m[2]
	}
	c := Default()
	flagSet(&c).VisitAll(func(f *flag.Flag) {
		want, ok := etcdDefaults[f.Name]
		if !ok || different[f.Name] != "" {
			return
		}
		if s, ok := spelled[want]; ok {
			want = s
		}
		got := f.DefValue
		if d, err := time.ParseDuration(want); err == nil {
			if g, err := time.ParseDuration(got); err == nil && g == d {
				return
			}
		}
		if (want == "" && (got == "0s" || got == "0")) || got == want {
			return
		}
		t.Errorf("--%s: default %q, etcd 3.6.8's %q", f.Name, got, want)
	})
}

// TestRefusedFlags sets every refused flag to etcd's default (accepted)
// and to another value (refused by name with its reason, one line).
func TestRefusedFlags(t *testing.T) {
	other := map[valueKind]string{kindString: "x", kindBool: "true", kindDuration: "42s", kindNumber: "7"}
	for _, r := range refusedFlags {
		c := Default()
		fs := flagSet(&c)
		if err := fs.Parse([]string{"--" + r.name + "=" + r.def}); err != nil {
			t.Errorf("--%s=%s: %v", r.name, r.def, err)
			continue
		}
		if err := c.ResolveFlags(fs); err != nil {
			t.Errorf("--%s=%s: %v", r.name, r.def, err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("--%s=%s (etcd's default) refused: %v", r.name, r.def, err)
		}

		val := other[r.kind]
		if r.kind == kindBool && r.def == "true" {
			val = "false"
		}
		c = Default()
		fs = flagSet(&c)
		if err := fs.Parse([]string{"--" + r.name + "=" + val}); err != nil {
			t.Errorf("--%s=%s: parse: %v", r.name, val, err)
			continue
		}
		err := c.Validate()
		want := "--" + r.name + "=" + val + ": " + r.reason
		if err == nil || err.Error() != want || strings.Contains(err.Error(), "\n") {
			t.Errorf("--%s=%s: err %v, want %q", r.name, val, err, want)
		}
	}
}

func TestRefusedBoolFlagWithoutValue(t *testing.T) {
	c := Default()
	fs := flagSet(&c)
	if err := fs.Parse([]string{"--discovery-insecure-skip-tls-verify"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || err.Error() != "--discovery-insecure-skip-tls-verify=true: "+reasonV3Discovery {
		t.Fatalf("err = %v", err)
	}
}

// etcd 3.6.8's answers to --feature-gates values, recorded by running
// /tmp/etcd36/etcd with them ("invalid value %q for flag -feature-gates:"
// is the flag package's prefix, the same here).
func TestFeatureGatesParseAsEtcd(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{"Foo=true", "unrecognized feature gate: Foo"},
		{"InitialCorruptCheck", "missing bool value for InitialCorruptCheck"},
		{"InitialCorruptCheck=yes", `invalid value of InitialCorruptCheck=yes, err: strconv.ParseBool: parsing "yes": invalid syntax`},
		{"InitialCorruptCheck=true,CompactHashCheck=1", ""},
		{" InitialCorruptCheck = true ,,", ""},
		{"", ""},
	} {
		var g FeatureGates
		err := g.Set(tc.in)
		if (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
		}
	}
	var g FeatureGates
	if err := g.Set("AllAlpha=true,InitialCorruptCheck=false"); err != nil {
		t.Fatal(err)
	}
	if g.Enabled(GateInitialCorruptCheck) || !g.Enabled(GateCompactHashCheck) || !g.Enabled(GateTxnModeWriteWithSharedBuffer) {
		t.Errorf("AllAlpha=true,InitialCorruptCheck=false: %s", g.String())
	}
}

// The experimental flags beside --feature-gates, as etcd 3.6.8 answered
// (its "failed to verify flags" error).
func TestExperimentalGateFlags(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		err          string
		icc, chc     bool
		warningsHave string
	}{
		{args: []string{"--experimental-initial-corrupt-check=true"}, icc: true,
			warningsHave: ""},
		{args: []string{"--experimental-compact-hash-check-enabled"}, chc: true,
			warningsHave: "--experimental-compact-hash-check-enabled is deprecated in 3.6 and will be decommissioned in 3.7. Use '--feature-gates=CompactHashCheck=true' instead."},
		{args: []string{"--feature-gates=InitialCorruptCheck=true,CompactHashCheck=true"}, icc: true, chc: true},
		{args: []string{"--feature-gates=AllAlpha=true,InitialCorruptCheck=false", "--experimental-initial-corrupt-check=true"},
			err: "cannot specify both flags: --experimental-initial-corrupt-check=true and --feature-gates=InitialCorruptCheck=false at the same time, please just use --feature-gates=InitialCorruptCheck=false"},
		{args: []string{"--feature-gates=InitialCorruptCheck=true", "--experimental-initial-corrupt-check=false"},
			err: "cannot specify both flags: --experimental-initial-corrupt-check=false and --feature-gates=InitialCorruptCheck=true at the same time, please just use --feature-gates=InitialCorruptCheck=true"},
		{args: []string{"--feature-gates=AllAlpha=true", "--experimental-compact-hash-check-enabled=true"},
			err: "cannot specify both flags: --experimental-compact-hash-check-enabled=true and --feature-gates=CompactHashCheck=true at the same time, please just use --feature-gates=CompactHashCheck=true"},
		{args: []string{"--feature-gates=AllBeta=false", "--experimental-txn-mode-write-with-shared-buffer=true"},
			err: "cannot specify both flags: --experimental-txn-mode-write-with-shared-buffer=true and --feature-gates=TxnModeWriteWithSharedBuffer=false at the same time, please just use --feature-gates=TxnModeWriteWithSharedBuffer=false"},
		{args: []string{"--experimental-compaction-batch-limit=5", "--compaction-batch-limit=7"},
			err: "cannot set --experimental-compaction-batch-limit and --compaction-batch-limit at the same time, please use --compaction-batch-limit only"},
		{args: []string{"--experimental-snapshot-catchup-entries=9", "--snapshot-catchup-entries=10"},
			err: "cannot set --experimental-snapshot-catchup-entries and --snapshot-catchup-entries at the same time, please use --snapshot-catchup-entries only"},
	} {
		c := Default()
		fs := flagSet(&c)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		err := c.ResolveFlags(fs)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: err %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if c.InitialCorruptCheck != tc.icc || c.CompactHashCheck != tc.chc {
			t.Errorf("%q: InitialCorruptCheck %v CompactHashCheck %v, want %v %v", tc.args, c.InitialCorruptCheck, c.CompactHashCheck, tc.icc, tc.chc)
		}
		if tc.warningsHave != "" && !slices.Contains(c.Warnings(), tc.warningsHave) {
			t.Errorf("%q: warnings %q, want %q", tc.args, c.Warnings(), tc.warningsHave)
		}
	}
}

func TestGatesTroupeRefuses(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"--feature-gates=StopGRPCServiceOnDefrag=true", "--feature-gates=StopGRPCServiceOnDefrag=true: not supported by troupe yet"},
		{"--experimental-stop-grpc-service-on-defrag", "--feature-gates=StopGRPCServiceOnDefrag=true: not supported by troupe yet"},
		{"--feature-gates=SetMemberLocalAddr=true", "--feature-gates=SetMemberLocalAddr=true: troupe's peers"},
		{"--feature-gates=LeaseCheckpointPersist=true", "enabling feature gate LeaseCheckpointPersist requires enabling feature gate LeaseCheckpoint"},
	} {
		c := Default()
		fs := flagSet(&c)
		if err := fs.Parse([]string{tc.args}); err != nil {
			t.Fatal(err)
		}
		if err := c.ResolveFlags(fs); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestRenamedExperimentalFlags(t *testing.T) {
	c := Default()
	fs := flagSet(&c)
	args := []string{"--experimental-watch-progress-notify-interval=3s", "--experimental-snapshot-catchup-entries=77",
		"--experimental-corrupt-check-time=5m", "--experimental-compact-hash-check-time=2m", "--max-snapshots=3",
		"--v2-deprecation=gone", "--peer-heartbeat-interval=5"}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := c.ResolveFlags(fs); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.WatchProgressNotifyInterval != 3*time.Second || c.SnapshotCatchUpEntries != 77 ||
		c.CorruptCheckTime != 5*time.Minute || c.CompactHashCheckTime != 2*time.Minute || c.MaxSnapshots != 3 {
		t.Errorf("got %v %d %v %v %d", c.WatchProgressNotifyInterval, c.SnapshotCatchUpEntries, c.CorruptCheckTime, c.CompactHashCheckTime, c.MaxSnapshots)
	}
	want := []string{
		"--experimental-compact-hash-check-time is deprecated in 3.6 and will be decommissioned in 3.7. Use '--compact-hash-check-time' instead.",
		"--experimental-corrupt-check-time is deprecated in v3.6 and will be decommissioned in v3.7. Use '--corrupt-check-time' instead.",
		"--experimental-snapshot-catchup-entries is deprecated in v3.6 and will be decommissioned in v3.7. Use '--snapshot-catchup-entries' instead.",
		"--experimental-watch-progress-notify-interval is deprecated in v3.6 and will be decommissioned in v3.7. Use '--watch-progress-notify-interval' instead.",
		"--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8.",
		"--v2-deprecation is deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input.",
		`flag "peer-heartbeat-interval" is no longer supported - ignoring`,
	}
	if got := c.Warnings(); !slices.Equal(got, want) {
		t.Errorf("warnings\n%q\nwant\n%q", got, want)
	}
}

// TestSocketReuseFlags: the two flags reach the listeners' options, and
// --socket-reuse-port warns that the peer listener does not take it.
func TestSocketReuseFlags(t *testing.T) {
	c := Default()
	fs := flagSet(&c)
	if err := fs.Parse([]string{"--socket-reuse-address", "--socket-reuse-port=true"}); err != nil {
		t.Fatal(err)
	}
	if err := c.ResolveFlags(fs); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if so := c.socketOpts(); !so.ReuseAddress || !so.ReusePort {
		t.Errorf("socket options %+v", so)
	}
	if !slices.Contains(c.Warnings(), peerSocketWarning) {
		t.Errorf("warnings %q", c.Warnings())
	}
}

// TestConfigFileLogAndSocketKeys: the keys of the flags taken from
// etcd's configuration file, with its YAML types.
func TestConfigFileLogAndSocketKeys(t *testing.T) {
	c := Default()
	path := writeFile(t, "log-outputs: [stderr, /tmp/x.log]\nenable-log-rotation: true\n"+
		"log-rotation-config-json: '{\"maxsize\": 5}'\nsocket-reuse-address: true\nsocket-reuse-port: true\n"+
		"initial-election-tick-advance: false\n")
	if err := c.ApplyFile(path); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.LogOutputs, []string{"stderr", "/tmp/x.log"}) || !c.EnableLogRotation || c.LogRotationConfigJSON != `{"maxsize": 5}` ||
		!c.SocketReuseAddress || !c.SocketReusePort || c.InitialElectionTickAdvance {
		t.Errorf("got %+v", c)
	}
}

// TestRaftWriteTimeoutMinimum: --raft-write-timeout below etcd's 5s is
// raised to it with etcd's info line; above, it is kept.
func TestRaftWriteTimeoutMinimum(t *testing.T) {
	for _, tc := range []struct {
		arg    string
		want   time.Duration
		raised bool
	}{{"--raft-write-timeout=1s", 5 * time.Second, true}, {"--raft-write-timeout=0s", 5 * time.Second, true}, {"--raft-write-timeout=12s", 12 * time.Second, false}} {
		c := Default()
		fs := flagSet(&c)
		if err := fs.Parse([]string{tc.arg}); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		var log strings.Builder
		c.Logger = slog.New(slog.NewTextHandler(&log, nil))
		if got := c.raftWriteTimeout(); got != tc.want || strings.Contains(log.String(), "raft-write-timeout increased to minimum value: 5s") != tc.raised {
			t.Errorf("%s: %v, log %q", tc.arg, got, log.String())
		}
	}
}

func TestEtcd36KnobErrors(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"--logger=capnslog", "--logger=capnslog is removed in v3.5"},
		{"--logger=x", `--logger "x": troupe supports only 'zap'`},
		{"--log-outputs=default,stderr", `multi logoutput for "default" is not supported yet`},
		{"--log-outputs=systemd/journal", `--log-outputs "systemd/journal": troupe does not write to journald itself`},
		{"--enable-log-rotation", "--log-outputs requires a single file path when --log-rotate-config-json is defined"},
		{"--metrics=all", `--metrics "all" is not 'basic' or 'extensive'`},
		{"--discovery-fallback=proxy", `v2 proxy is deprecated, and --discovery-fallback can't be configured as "proxy"`},
		{"--compact-hash-check-time=0s", "--compact-hash-check-time must be >0 (set to 0s)"},
		{"--cors=http://a.example", `--cors: URL address does not have the form "host:port": http://a.example`},
		{"--v2-deprecation=not-yet", `--v2-deprecation "not-yet" is not one of`},
	} {
		c := Default()
		fs := flagSet(&c)
		if err := fs.Parse([]string{tc.arg}); err != nil {
			t.Fatalf("%s: %v", tc.arg, err)
		}
		if err := c.ResolveFlags(fs); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.arg, err, tc.want)
		}
	}
}

func TestConfigFileEtcd36Keys(t *testing.T) {
	c := Default()
	path := writeFile(t, "pre-vote: false\nmax-wals: 2\nfeature-gates: InitialCorruptCheck=true\n"+
		"experimental-compact-hash-check-enabled: true\nexperimental-snapshot-catch-up-entries: 12\n"+
		"compact-hash-check-time: 30000000000\ncors: 'http://a.example:80,http://b.example:8080'\n"+
		"client-transport-security:\n  cert-file:\n  client-cert-auth: false\ncert-file: ''\nlog-outputs: [stdout]\n")
	if err := c.ApplyFile(path); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.PreVote || c.MaxWALs != 2 || !c.InitialCorruptCheck || !c.CompactHashCheck || c.SnapshotCatchUpEntries != 12 ||
		c.CompactHashCheckTime != 30*time.Second || !slices.Equal(c.CORS, []string{"http://a.example:80", "http://b.example:8080"}) ||
		!c.LogToStdout() {
		t.Errorf("got %+v", c)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"discovery-srv: x.example\n", "--discovery-srv=x.example: " + reasonSRV},
		{"discovery-config:\n  endpoints: x\n", "discovery-config: " + reasonV3Discovery},
		{"feature-gates: Foo=true\n", "feature-gates: invalid value \"Foo=true\": unrecognized feature gate: Foo"},
		{"experimental-corrupt-check-time: 1\ncorrupt-check-time: 2\n", "cannot set --experimental-corrupt-check-time and --corrupt-check-time at the same time"},
	} {
		c := Default()
		err := c.ApplyFile(writeFile(t, tc.yaml))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// TestWarningUnaryRequestDuration: etcd 3.6's rule between the two
// names: not both, the old one alone with a warning, else 300ms.
func TestWarningUnaryRequestDuration(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    time.Duration
		err     string
		warning bool
	}{
		{nil, 300 * time.Millisecond, "", false},
		{[]string{"--warning-unary-request-duration=1s"}, time.Second, "", false},
		{[]string{"--experimental-warning-unary-request-duration=2s"}, 2 * time.Second, "", true},
		{[]string{"--warning-unary-request-duration=1s", "--experimental-warning-unary-request-duration=2s"}, 0,
			"both --experimental-warning-unary-request-duration and --warning-unary-request-duration flags are set. Use only --warning-unary-request-duration", false},
	} {
		c := Default()
		fs := flagSet(&c)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		err := c.ResolveFlags(fs)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: err %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || c.WarningUnaryRequestDuration != tc.want {
			t.Errorf("%q: %v %v, want %v", tc.args, c.WarningUnaryRequestDuration, err, tc.want)
		}
		if got := slices.Contains(c.Warnings(), "--experimental-warning-unary-request-duration is deprecated, and will be decommissioned in v3.7. Use --warning-unary-request-duration instead."); got != tc.warning {
			t.Errorf("%q: warnings %q", tc.args, c.Warnings())
		}
	}
}

func TestEtcdUsage(t *testing.T) {
	for name, want := range map[string]string{
		"cert-file":             "Path to the client server TLS cert file.",
		"memory-mlock":          "Enable to enforce etcd pages (in particular bbolt) to stay in RAM.",
		"initial-cluster-state": "Initial cluster state ('new' when bootstrapping a new cluster or 'existing' when adding new members to an existing cluster).\nAfter successful initialization (bootstrapping or adding), flag is ignored on restarts",
		"no-such-flag":          "",
	} {
		if got := etcdUsage(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

func isAccepted(name string) bool {
	_, ok := acceptedFlags[name]
	_, tls := tlsAcceptedFlags[name]
	return ok || tls
}
