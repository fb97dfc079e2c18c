package main

import (
	"bytes"
	"strings"
	"testing"
)

func runArgs(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpAndVersion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "troupe serve [flags]"},
		{[]string{"help"}, "troupe version"},
		{[]string{"version"}, "troupe Version:"},
		{[]string{"--version"}, "etcd API Version: 3.6"},
		{[]string{"serve", "--help"}, "--initial-cluster 'default=http://127.0.0.1:2380'"},
		{[]string{"serve", "-h"}, "--listen-actor-url 'auto'"},
		{[]string{"serve", "--help"}, "troupe serve --config-file PATH"},
		{[]string{"serve", "--help"}, "other command line flags and\n    environment variables will be ignored"},
		{[]string{"serve", "--help"}, "(ETCD_DATA_DIR for\n  --data-dir"},
	} {
		code, out, _ := runArgs(tc.args...)
		if code != exitOK || !strings.Contains(out, tc.want) {
			t.Errorf("%q: exit %d, stdout %q; want 0 and %q", tc.args, code, out, tc.want)
		}
	}
}

func TestServeHelpListsEveryFlagOnce(t *testing.T) {
	_, out, _ := runArgs("serve", "--help")
	for _, name := range []string{"name", "data-dir", "heartbeat-interval", "election-timeout",
		"listen-client-urls", "advertise-client-urls", "listen-peer-urls", "initial-advertise-peer-urls",
		"initial-cluster", "initial-cluster-state", "initial-cluster-token", "snapshot-count",
		"quota-backend-bytes", "max-request-bytes", "max-txn-ops", "log-level", "log-format", "listen-actor-url",
		"auto-compaction-retention", "auto-compaction-mode"} {
		if n := strings.Count(out, "  --"+name+" '"); n != 1 {
			t.Errorf("--%s listed %d times", name, n)
		}
	}
	if strings.Contains(out, "Other:") {
		t.Errorf("a flag is missing from flagGroups:\n%s", out)
	}
}

// TestServeHelpGroupsAsEtcd checks the sections of `troupe serve --help`
// come in etcd 3.6.8's order, each flag in etcd's section.
func TestServeHelpGroupsAsEtcd(t *testing.T) {
	_, out, _ := runArgs("serve", "--help")
	last := -1
	for _, g := range []string{"Member:", "Clustering:", "Security:", "Auth:", "Profiling and Monitoring:", "Logging:",
		"Experimental distributed tracing:", "Experimental feature:", "Unsafe feature:", "troupe:"} {
		i := strings.Index(out, "\n"+g+"\n")
		if i <= last {
			t.Errorf("section %q at %d, after %d", g, i, last)
		}
		last = i
	}
	for _, tc := range []struct{ flag, after, before string }{
		{"--pre-vote 'true'", "Clustering:", "Security:"},
		{"--feature-gates ''", "Member:", "Clustering:"},
		{"--cert-file ''", "Security:", "Auth:"},
		{"--enable-pprof 'false'", "Profiling and Monitoring:", "Logging:"},
		{"--snapshot-catchup-entries '5000'", "Experimental feature:", "Unsafe feature:"},
	} {
		i := strings.Index(out, "  "+tc.flag+"\n")
		if i < strings.Index(out, tc.after) || i > strings.Index(out, tc.before) {
			t.Errorf("%s not between %s and %s", tc.flag, tc.after, tc.before)
		}
	}
	if !strings.Contains(out, "    CompactHashCheck=true|false (ALPHA - default=false)\n") {
		t.Errorf("--feature-gates lacks etcd's list of gates:\n%s", out)
	}
}

func TestServeVersionFlag(t *testing.T) {
	code, out, _ := runArgs("serve", "--version")
	if code != exitOK || !strings.Contains(out, "troupe Version:") {
		t.Fatalf("exit %d, %q", code, out)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"serve", "--bogus"}, "flag provided but not defined"},
		{[]string{"serve", "--heartbeat-interval=abc"}, "flag -heartbeat-interval: want a whole number of milliseconds"},
		{[]string{"serve", "--election-timeout=300"}, "--election-timeout[300ms] should be at least as 5 times"},
		{[]string{"serve", "--name=x", "--initial-cluster=y=http://127.0.0.1:2380"}, `no member named "x"`},
		{[]string{"serve", "extra"}, `unexpected argument "extra"`},
		{[]string{"serve", "--log-level=loud"}, "--log-level"},
		{[]string{"serve", "--discovery-srv=example.com"}, "troupe serve: --discovery-srv=example.com: DNS SRV discovery is not supported by troupe; list the members in --initial-cluster\n"},
		{[]string{"serve", "--feature-gates=Foo=true"}, "invalid value \"Foo=true\" for flag -feature-gates: unrecognized feature gate: Foo"},
	} {
		code, _, errOut := runArgs(tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestBadFailpointSpecExit2(t *testing.T) {
	t.Setenv("TROUPE_FAILPOINTS", "walBeforeFsync")
	code, _, errOut := runArgs("serve")
	if code != exitUsage || !strings.Contains(errOut, "TROUPE_FAILPOINTS") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
