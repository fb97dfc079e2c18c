package node

import (
	"flag"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"
)

func parse(t *testing.T, args ...string) Config {
	t.Helper()
	c := Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return c
}

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ got, want any }{
		{c.Name, "default"},
		{c.DataDir, "default.troupe"},
		{c.ListenClientURLs[0].String(), "http://127.0.0.1:2379"},
		{c.AdvertiseClientURLs[0].String(), "http://127.0.0.1:2379"},
		{c.ListenPeerURLs[0].String(), "http://127.0.0.1:2380"},
		{c.InitialAdvertisePeerURLs[0].String(), "http://127.0.0.1:2380"},
		{c.InitialCluster, "default=http://127.0.0.1:2380"},
		{c.InitialClusterState, "new"},
		{c.InitialClusterToken, "etcd-cluster"},
		{c.SnapshotCount, uint64(10000)},
		{c.HeartbeatInterval, 100 * time.Millisecond},
		{c.ElectionTimeout, time.Second},
		{c.BackendQuotaBytes(), int64(2 << 30)},
		{c.MaxRequestBytes, uint(1572864)},
		{c.MaxTxnOps, uint(128)},
		{c.LogLevel, "info"},
		{c.LogFormat, ""},
		{c.ListenActorURL, "auto"},
		{c.WatchProgressNotifyInterval, 10 * time.Minute},
	} {
		if tc.got != tc.want {
			t.Errorf("default: got %v, want %v", tc.got, tc.want)
		}
	}
}

func TestWatchProgressNotifyIntervalFlag(t *testing.T) {
	c := parse(t, "--experimental-watch-progress-notify-interval", "250ms")
	if c.WatchProgressNotifyInterval != 250*time.Millisecond {
		t.Fatalf("interval %v, want 250ms", c.WatchProgressNotifyInterval)
	}
	c.WatchProgressNotifyInterval = 0
	if err := c.Validate(); err == nil {
		t.Fatal("an interval of 0 validated")
	}
}

func TestFlagsDeriveFromName(t *testing.T) {
	c := parse(t, "--name", "infra1", "--initial-advertise-peer-urls", "http://10.0.0.1:2380,http://10.0.0.1:2381")
	if c.DataDir != "infra1.troupe" {
		t.Errorf("data dir %q, want infra1.troupe", c.DataDir)
	}
	if want := "infra1=http://10.0.0.1:2380,infra1=http://10.0.0.1:2381"; c.InitialCluster != want {
		t.Errorf("initial cluster %q, want %q", c.InitialCluster, want)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}

	// Explicit values win whatever the flag order.
	c = parse(t, "--data-dir", "/var/lib/x", "--initial-cluster", "a=http://127.0.0.1:2380", "--name", "a")
	if c.DataDir != "/var/lib/x" || c.InitialCluster != "a=http://127.0.0.1:2380" {
		t.Errorf("explicit values overwritten: %q %q", c.DataDir, c.InitialCluster)
	}
}

func TestFlagsParse(t *testing.T) {
	c := parse(t,
		"--heartbeat-interval=50", "--election-timeout=500",
		"--listen-client-urls=http://0.0.0.0:12379", "--advertise-client-urls=http://10.0.0.1:12379",
		"--max-request-bytes=10", "--max-txn-ops=3", "--snapshot-count=7",
		"--quota-backend-bytes=-1", "--log-level=debug", "--log-format=json", "--listen-actor-url=",
	)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.HeartbeatInterval != 50*time.Millisecond || c.ElectionTimeout != 500*time.Millisecond {
		t.Errorf("durations %v %v", c.HeartbeatInterval, c.ElectionTimeout)
	}
	if c.ListenClientURLs[0].Host != "0.0.0.0:12379" || c.AdvertiseClientURLs[0].Host != "10.0.0.1:12379" {
		t.Errorf("urls %v %v", c.ListenClientURLs, c.AdvertiseClientURLs)
	}
	if c.MaxRequestBytes != 10 || c.MaxTxnOps != 3 || c.SnapshotCount != 7 || c.BackendQuotaBytes() != -1 {
		t.Errorf("numbers %+v", c)
	}
	if c.LogLevel != "debug" || c.LogFormat != "json" || c.ListenActorURL != "" {
		t.Errorf("log/actor %q %q %q", c.LogLevel, c.LogFormat, c.ListenActorURL)
	}
}

func TestFlagParseErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--heartbeat-interval=1s"},
		{"--election-timeout=-5"},
		{"--listen-client-urls=http://[::1"},
		{"--listen-client-urls=127.0.0.1:2379"},
	} {
		c := Default()
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.RegisterFlags(fs)
		if err := fs.Parse(args); err == nil {
			t.Errorf("%q: parsed without error", args)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		edit func(*Config)
		want string // substring of the error
	}{
		{args: []string{"--election-timeout=400"}, want: "--election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]"},
		{args: []string{"--election-timeout=60000", "--heartbeat-interval=1000"}, want: "--election-timeout[60000ms] is too long"},
		{args: []string{"--heartbeat-interval=0"}, want: "--heartbeat-interval"},
		{args: []string{"--listen-client-urls=http://127.0.0.1:2379"}, want: "--advertise-client-urls is required"},
		{args: []string{"--listen-client-urls=localhost:2379", "--advertise-client-urls=http://127.0.0.1:2379"}, want: "--listen-client-urls \"localhost:2379\": scheme must be http"},
		{args: []string{"--listen-client-urls=https://127.0.0.1:2379", "--advertise-client-urls=https://127.0.0.1:2379"}, want: "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme"},
		{args: []string{"--listen-peer-urls=http://127.0.0.1"}, want: "--listen-peer-urls"},
		{args: []string{"--listen-peer-urls=http://127.0.0.1:2380/x"}, want: "must not contain a path"},
		{args: []string{"--listen-peer-urls="}, want: "--listen-peer-urls is empty"},
		{args: []string{"--initial-cluster=other=http://127.0.0.1:2380"}, want: "no member named \"default\""},
		{args: []string{"--initial-cluster=default=http://127.0.0.1:9999"}, want: "--initial-advertise-peer-urls is http://127.0.0.1:2380"},
		{args: []string{"--initial-cluster=default=http://127.0.0.1:2380,b=http://127.0.0.1:2380"}, want: "twice"},
		{args: []string{"--initial-cluster=garbage"}, want: "not name=peerURL"},
		{args: []string{"--initial-cluster="}, want: "--initial-cluster is empty"},
		{args: []string{"--initial-cluster-state=joining"}, want: "--initial-cluster-state \"joining\""},
		{args: []string{"--max-request-bytes=0"}, want: "--max-request-bytes must be > 0"},
		{args: []string{"--max-txn-ops=0"}, want: "--max-txn-ops must be > 0"},
		{args: []string{"--snapshot-count=0"}, want: "--snapshot-count must be > 0"},
		{args: []string{"--log-level=trace"}, want: "--log-level"},
		{args: []string{"--log-format=xml"}, want: "--log-format"},
		{args: []string{"--listen-actor-url=localhost"}, want: "--listen-actor-url"},
		{args: []string{"--listen-actor-url=127.0.0.1:99999"}, want: "--listen-actor-url"},
		{args: []string{"--name="}, want: "--name is empty"},
		{args: []string{"--data-dir="}, want: "--data-dir is empty"},
		{edit: func(c *Config) { c.ElectionTimeout = 1500 * time.Microsecond }, want: "whole number of milliseconds"},
	} {
		c := parse(t, tc.args...)
		if tc.edit != nil {
			tc.edit(&c)
		}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want it to contain %q", tc.args, err, tc.want)
		}
	}
}

func TestValidateMultiMember(t *testing.T) {
	c := parse(t, "--name=b",
		"--initial-advertise-peer-urls=http://127.0.0.2:2380",
		"--initial-cluster=a=http://127.0.0.1:2380,b=http://127.0.0.2:2380,c=http://127.0.0.3:2380",
		"--initial-cluster-state=existing")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	m, err := ParseInitialCluster(c.InitialCluster)
	if err != nil || len(m) != 3 || m["c"][0].Host != "127.0.0.3:2380" {
		t.Fatalf("parsed %v, %v", m, err)
	}
}

func TestRegisterFlagsHelp(t *testing.T) {
	c := Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.RegisterFlags(fs)
	for name, def := range map[string]string{
		"name": "default", "data-dir": "default.troupe", "heartbeat-interval": "100",
		"election-timeout": "1000", "listen-client-urls": "http://127.0.0.1:2379",
		"initial-cluster": "default=http://127.0.0.1:2380", "max-request-bytes": "1572864",
		"listen-actor-url": "auto", "quota-backend-bytes": "0",
	} {
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("flag --%s missing", name)
			continue
		}
		if f.DefValue != def {
			t.Errorf("--%s default %q, want %q", name, f.DefValue, def)
		}
	}
}

// TestActorAddressDerived: by default the actor API listens on 127.0.0.1
// at the client port minus one, so members started on one host with
// etcd's flags alone (etcd's Procfile: 2379, 22379, 32379) do not collide.
func TestActorAddressDerived(t *testing.T) {
	for _, tc := range []struct {
		actor, client, want, err string
	}{
		{"auto", "http://127.0.0.1:2379", "127.0.0.1:2378", ""},
		{"auto", "http://127.0.0.1:22379", "127.0.0.1:22378", ""},
		{"auto", "http://10.0.0.5:32379", "127.0.0.1:32378", ""},
		{"auto", "http://127.0.0.1:1", "", "cannot derive a port from client URL http://127.0.0.1:1"},
		{"", "http://127.0.0.1:2379", "", ""},
		{"0.0.0.0:7000", "http://127.0.0.1:2379", "0.0.0.0:7000", ""},
		{"nonsense", "http://127.0.0.1:2379", "", `--listen-actor-url "nonsense": address does not have the form host:port`},
	} {
		c := Default()
		c.ListenActorURL = tc.actor
		u, err := url.Parse(tc.client)
		if err != nil {
			t.Fatal(err)
		}
		c.ListenClientURLs = []url.URL{*u}
		got, err := c.ActorAddress()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q with %s: error %v, want one with %q", tc.actor, tc.client, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q with %s: %q, %v; want %q", tc.actor, tc.client, got, err, tc.want)
		}
	}
}
