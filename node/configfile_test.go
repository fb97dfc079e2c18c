package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// What etcd 3.6.8 (/tmp/etcd36/etcd --config-file F) did with the same files,
// for comparison; troupe's differences are on purpose:
//
//	unknown key "heartbeat-intervall": ignored, etcd started (troupe refuses it)
//	data-dir: [oops (line 2):          error converting YAML to JSON: yaml: line 2: did not find expected ',' or ']'
//	name: cf / "  data-dir: x":        error converting YAML to JSON: yaml: line 2: mapping values are not allowed in this context
//	heartbeat-interval: abc:           error unmarshaling JSON: while decoding JSON: json: cannot unmarshal string into Go struct field configYAML.Config.heartbeat-interval of type uint
//	listen-client-urls: [http://...]:  ... cannot unmarshal array into Go struct field configYAML.configJSON.listen-client-urls of type string
//	name: 123:                         ... cannot unmarshal number into Go struct field configYAML.Config.name of type string
//	missing file:                      open /tmp/cfgexp/missing.yml: no such file or directory
//	name only, no data-dir:            warn "'data-dir' was empty; using default" {"data-dir":"only.etcd"}; initial-cluster follows the name
//	listen-client-urls without advertise-client-urls: accepted (the flag-only rule does not apply)
//
// etcd exits 1 for all of them; troupe serve exits 2.
func TestApplyFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "name: cf\nheartbeat-intervall: 100\n",
			`unknown key "heartbeat-intervall" (troupe serve has no flag --heartbeat-intervall)`},
		{"etcd 3.4 key 3.6 dropped", "proxy: 'off'\n",
			`unknown key "proxy" (troupe serve has no flag --proxy)`},
		{"bad yaml", "name: cf\ndata-dir: [oops\nheartbeat-interval: 100\n",
			`yaml: line 2: did not find expected ',' or ']'`},
		{"bad indent", "name: cf\n  data-dir: x\n",
			`yaml: line 2: mapping values are not allowed in this context`},
		{"string for a number", "heartbeat-interval: abc\n",
			`heartbeat-interval: want a whole number, not the string "abc"`},
		{"number for a string", "name: 123\n",
			`name: want a string, not 123 (quote it)`},
		{"list of URLs", "listen-client-urls: [http://127.0.0.1:2379]\n",
			`listen-client-urls: want a string, not a YAML list (URL lists are comma-separated: 'http://a:2379,http://b:2379')`},
		{"negative count", "snapshot-count: -1\n",
			`snapshot-count: invalid value "-1": parse error`},
		{"duplicate key", "name: a\nname: b\n", `key "name" given twice`},
		{"not a mapping", "- name\n", `yaml: unmarshal errors:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.yaml)
			c := Default()
			err := c.ApplyFile(path)
			if err == nil || !errors.Is(err, ErrConfigFile) {
				t.Fatalf("err = %v, want ErrConfigFile", err)
			}
			want := "config file " + path + ": " + tc.want
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("err =\n  %v\nwant\n  %s", err, want)
			}
		})
	}
}

func TestApplyFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.yml")
	c := Default()
	err := c.ApplyFile(path)
	if want := "config file " + path + ": no such file or directory"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestApplyFile(t *testing.T) {
	path := writeFile(t, `# etcd.conf.yml
name: cf
listen-client-urls: http://127.0.0.1:45791,http://127.0.0.1:45792
listen-peer-urls: http://127.0.0.1:45801
initial-advertise-peer-urls: http://127.0.0.1:45801
heartbeat-interval: 50
election-timeout: 500
snapshot-count: 20
quota-backend-bytes: 1048576
max-request-bytes: 4096
auto-compaction-mode: revision
auto-compaction-retention: "10"
log-level: warn
data-dir:
experimental-watch-progress-notify-interval: 5000000000
`)
	c := Default()
	if err := c.ApplyFile(path); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("listen-client-urls without advertise-client-urls is fine in a file, as in etcd: %v", err)
	}
	for _, tc := range []struct{ got, want any }{
		{c.Name, "cf"},
		{c.DataDir, "cf.troupe"}, // null keeps the default, derived from the name
		{c.InitialCluster, "cf=http://127.0.0.1:45801"},
		{joinURLs(c.ListenClientURLs), "http://127.0.0.1:45791,http://127.0.0.1:45792"},
		{joinURLs(c.AdvertiseClientURLs), DefaultListenClientURL},
		{c.HeartbeatInterval, 50 * time.Millisecond},
		{c.ElectionTimeout, 500 * time.Millisecond},
		{c.SnapshotCount, uint64(20)},
		{c.QuotaBackendBytes, int64(1 << 20)},
		{c.MaxRequestBytes, uint(4096)},
		{c.AutoCompactionMode, "revision"},
		{c.AutoCompactionRetention, "10"},
		{c.LogLevel, "warn"},
		{c.WatchProgressNotifyInterval, 5 * time.Second},
	} {
		if tc.got != tc.want {
			t.Errorf("got %v, want %v", tc.got, tc.want)
		}
	}
}

func TestApplyFileEmpty(t *testing.T) {
	c := Default()
	if err := c.ApplyFile(writeFile(t, "# nothing\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Name != DefaultName {
		t.Errorf("name %q", c.Name)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "troupe.conf.yml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
