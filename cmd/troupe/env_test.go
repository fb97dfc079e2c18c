package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/troupedb/troupe/node"
)

// What etcd 3.6.8 (/tmp/etcd36/etcd) did, for comparison; P stands for
// free listen/advertise/initial-cluster flags:
//
//	ETCD_NAME=x etcd --name y P   exit 1: {"level":"fatal","caller":"flags/flag.go:86","msg":"conflicting environment variable is shadowed by corresponding command-line flag (either unset environment variable or disable flag))","environment-variable":"ETCD_NAME"}
//	ETCD_NAME= etcd --name y P    exit 1: the same (an empty variable conflicts too)
//	ETCD_BOGUS=1 etcd P           starts: {"level":"warn","caller":"flags/flag.go:94","msg":"unrecognized environment variable","environment-variable":"ETCD_BOGUS=1"}
//	ETCD_FOO= etcd P              starts: the same warning with "ETCD_FOO="
//	ETCD_DATA_DIR=envdir etcd P   starts in envdir: {"level":"info","msg":"recognized and used environment variable","variable-name":"ETCD_DATA_DIR","variable-value":"envdir"}
//	ETCD_SNAPSHOT_COUNT=abc etcd P exit 1: {"level":"warn","msg":"failed to verify flags","error":"invalid value \"abc\" for ETCD_SNAPSHOT_COUNT: parse error"}
//	ETCD_VERSION=1 etcd P         starts: {"level":"warn","msg":"cannot set special environment variable","key":"ETCD_VERSION","value":"1"}
//	ETCD_CONFIG_FILE=F etcd --name flagname, and etcd --config-file F --name flagname with ETCD_NAME set:
//	                              starts from F alone: {"level":"info","msg":"loaded server configuration, other configuration command line flags and environment variables will be ignored if provided","path":"F"}
//	ETCD_CONFIG_FILE=missing etcd --config-file F: F wins
//
// troupe exits 2 (bad configuration) where etcd exits 1, and its
// conflict error names the variable in the message.
func TestSetFlagsFromEnv(t *testing.T) {
	const conflict = `conflicting environment variable "ETCD_NAME" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)`
	for _, tc := range []struct {
		name    string
		args    []string
		environ []string
		wantErr string
		want    map[string]string // flag -> value after parsing
		rep     envReport
	}{
		{name: "env sets an unset flag", environ: []string{"ETCD_DATA_DIR=envdir", "HOME=/root"},
			want: map[string]string{"data-dir": "envdir", "name": "default"},
			rep:  envReport{used: []string{"ETCD_DATA_DIR=envdir"}}},
		{name: "derived values follow env", environ: []string{"ETCD_NAME=m1"},
			want: map[string]string{"name": "m1", "data-dir": "m1.troupe", "initial-cluster": "m1=http://127.0.0.1:2380"},
			rep:  envReport{used: []string{"ETCD_NAME=m1"}}},
		{name: "troupe's own flags use ETCD_ too", environ: []string{"ETCD_LISTEN_ACTOR_URL=127.0.0.1:9999", "ETCD_LOG_FORMAT=json"},
			want: map[string]string{"listen-actor-url": "127.0.0.1:9999", "log-format": "json"},
			rep:  envReport{used: []string{"ETCD_LISTEN_ACTOR_URL=127.0.0.1:9999", "ETCD_LOG_FORMAT=json"}}},
		{name: "flag without env", args: []string{"--name=y"}, environ: []string{"ETCD_DATA_DIR=d"},
			want: map[string]string{"name": "y", "data-dir": "d"},
			rep:  envReport{used: []string{"ETCD_DATA_DIR=d"}}},
		{name: "flag and env conflict", args: []string{"--name=y"}, environ: []string{"ETCD_NAME=x"}, wantErr: conflict},
		{name: "empty env conflicts too", args: []string{"--name=y"}, environ: []string{"ETCD_NAME="}, wantErr: conflict},
		{name: "empty env sets nothing", environ: []string{"ETCD_NAME="},
			want: map[string]string{"name": "default"}, rep: envReport{unrecognized: []string{"ETCD_NAME="}}},
		{name: "unrecognized", environ: []string{"ETCD_BOGUS=1", "ETCD_FOO=", "TROUPE_X=1"},
			rep: envReport{unrecognized: []string{"ETCD_BOGUS=1", "ETCD_FOO="}}},
		{name: "ETCD_VERSION is special", environ: []string{"ETCD_VERSION=1"},
			rep: envReport{special: []string{"ETCD_VERSION=1"}}},
		{name: "invalid value", environ: []string{"ETCD_SNAPSHOT_COUNT=abc"},
			wantErr: `invalid value "abc" for ETCD_SNAPSHOT_COUNT: parse error`},
		{name: "invalid milliseconds", environ: []string{"ETCD_HEARTBEAT_INTERVAL=1s"},
			wantErr: `invalid value "1s" for ETCD_HEARTBEAT_INTERVAL: want a whole number of milliseconds`},
		{name: "conflict before invalid value", args: []string{"--name=y"}, environ: []string{"ETCD_SNAPSHOT_COUNT=abc", "ETCD_NAME=x"},
			wantErr: conflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := node.Default()
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg.RegisterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			rep, err := setFlagsFromEnv(fs, tc.environ)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v\nwant %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tc.want {
				if got := fs.Lookup(name).Value.String(); got != want {
					t.Errorf("--%s = %q, want %q", name, got, want)
				}
			}
			if !reflect.DeepEqual(rep, tc.rep) {
				t.Errorf("report %+v, want %+v", rep, tc.rep)
			}
		})
	}
}

func TestServeEnvAndConfigFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	if err := os.WriteFile(good, []byte("name: cf\ndata-dir: "+filepath.Join(dir, "cfdir")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unknown := filepath.Join(dir, "unknown.yml")
	if err := os.WriteFile(unknown, []byte("name: cf\nheartbeat-intervall: 100\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yml")
	for _, tc := range []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		wantName string // on success
		wantLog  string // in stderr
	}{
		{name: "env used", env: map[string]string{"ETCD_NAME": "envname"}, wantName: "envname",
			wantLog: `"msg":"recognized and used environment variable","variable-name":"ETCD_NAME","variable-value":"envname"`},
		{name: "unrecognized warns", env: map[string]string{"ETCD_BOGUS": "1"}, wantName: "default",
			wantLog: `"level":"WARN","msg":"unrecognized environment variable","environment-variable":"ETCD_BOGUS=1"`},
		{name: "conflict", env: map[string]string{"ETCD_NAME": "x"}, args: []string{"--name=y"}, wantCode: exitUsage,
			wantLog: "troupe serve: conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)\n"},
		{name: "invalid env", env: map[string]string{"ETCD_MAX_TXN_OPS": "-1"}, wantCode: exitUsage,
			wantLog: "troupe serve: invalid value \"-1\" for ETCD_MAX_TXN_OPS: parse error\n"},
		{name: "env then Validate", env: map[string]string{"ETCD_ELECTION_TIMEOUT": "300"}, wantCode: exitUsage,
			wantLog: "troupe serve: --election-timeout[300ms] should be at least as 5 times as --heartbeat-interval[100ms]"},
		{name: "config file wins over flags and env", env: map[string]string{"ETCD_NAME": "envname", "ETCD_BOGUS": "1"},
			args: []string{"--config-file", good, "--name=flagname"}, wantName: "cf",
			wantLog: `"msg":"loaded server configuration, other configuration command line flags and environment variables will be ignored if provided","path":"` + good + `","ignored-flags":["--name"]`},
		{name: "ETCD_CONFIG_FILE", env: map[string]string{"ETCD_CONFIG_FILE": good}, args: []string{"--name=flagname"}, wantName: "cf",
			wantLog: `"path":"` + good + `"`},
		{name: "flag wins over ETCD_CONFIG_FILE", env: map[string]string{"ETCD_CONFIG_FILE": missing}, args: []string{"--config-file=" + good}, wantName: "cf"},
		{name: "unknown key", args: []string{"--config-file=" + unknown}, wantCode: exitUsage,
			wantLog: "troupe serve: config file " + unknown + ": unknown key \"heartbeat-intervall\" (troupe serve has no flag --heartbeat-intervall)\n"},
		{name: "missing file", args: []string{"--config-file=" + missing}, wantCode: exitUsage,
			wantLog: "troupe serve: config file " + missing + ": no such file or directory\n"},
		{name: "refused flag from env", env: map[string]string{"ETCD_DISCOVERY_SRV": "x.example"}, wantCode: exitUsage,
			wantLog: "troupe serve: --discovery-srv=x.example: DNS SRV discovery is not supported by troupe; list the members in --initial-cluster\n"},
		{name: "refused flag at etcd's default from env", env: map[string]string{"ETCD_DISCOVERY_INSECURE_TRANSPORT": "true"}, wantName: "default"},
		{name: "feature gate from env", env: map[string]string{"ETCD_FEATURE_GATES": "InitialCorruptCheck=true", "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK": "true"}, wantCode: exitUsage,
			wantLog: "troupe serve: cannot specify both flags: --experimental-initial-corrupt-check=true and --feature-gates=InitialCorruptCheck=true at the same time, please just use --feature-gates=InitialCorruptCheck=true\n"},
		{name: "deprecated flag warns", args: []string{"--experimental-snapshot-catchup-entries=100"}, wantName: "default",
			wantLog: `"level":"WARN","msg":"--experimental-snapshot-catchup-entries is deprecated in v3.6 and will be decommissioned in v3.7. Use '--snapshot-catchup-entries' instead."`},
		{name: "missing file from env", env: map[string]string{"ETCD_CONFIG_FILE": missing}, wantCode: exitUsage,
			wantLog: "troupe serve: ETCD_CONFIG_FILE: config file " + missing + ": no such file or directory\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr strings.Builder
			cfg, code, ok := parseServe(tc.args, &stdout, &stderr)
			if tc.wantCode != 0 {
				if ok || code != tc.wantCode {
					t.Fatalf("ok %v, exit %d; want exit %d", ok, code, tc.wantCode)
				}
			} else if !ok {
				t.Fatalf("exit %d: %s", code, stderr.String())
			} else if cfg.Name != tc.wantName {
				t.Errorf("name %q, want %q", cfg.Name, tc.wantName)
			}
			if !strings.Contains(stderr.String(), tc.wantLog) {
				t.Errorf("stderr:\n%s\nwant %s", stderr.String(), tc.wantLog)
			}
		})
	}
}

func TestFlagToEnv(t *testing.T) {
	for flagName, env := range map[string]string{
		"name": "ETCD_NAME", "data-dir": "ETCD_DATA_DIR", "listen-client-urls": "ETCD_LISTEN_CLIENT_URLS",
		"initial-cluster": "ETCD_INITIAL_CLUSTER", "config-file": "ETCD_CONFIG_FILE",
		"experimental-watch-progress-notify-interval": "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL",
	} {
		if got := flagToEnv(flagName); got != env {
			t.Errorf("%s -> %s, want %s", flagName, got, env)
		}
	}
}

// TestLogOutputsStdout: --log-outputs=stdout sends the logs there.
func TestLogOutputsStdout(t *testing.T) {
	var stdout, stderr strings.Builder
	if _, code, ok := parseServe([]string{"--log-outputs=stdout", "--max-snapshots=3"}, &stdout, &stderr); !ok {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := "--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8."
	if !strings.Contains(stdout.String(), want) || strings.Contains(stderr.String(), want) {
		t.Fatalf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}

// TestLogOutputsFileFromEnv: ETCD_LOG_OUTPUTS with a file and stderr
// sends the logs to both, rotated when ETCD_ENABLE_LOG_ROTATION says so;
// without rotation, a file that cannot be opened is refused with etcd's "open sink" error.
func TestLogOutputsFileFromEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "troupe.log")
	t.Setenv("ETCD_LOG_OUTPUTS", path+",stderr")
	t.Setenv("ETCD_ENABLE_LOG_ROTATION", "true")
	t.Setenv("ETCD_LOG_ROTATION_CONFIG_JSON", `{"maxsize": 1}`)
	var stdout, stderr strings.Builder
	if _, code, ok := parseServe([]string{"--max-snapshots=3"}, &stdout, &stderr); !ok {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := "--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8."
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), want) || !strings.Contains(stderr.String(), want) {
		t.Fatalf("file %q (%v), stderr %q", b, err, stderr.String())
	}

	t.Setenv("ETCD_LOG_OUTPUTS", filepath.Join(path, "sub.log"))
	t.Setenv("ETCD_ENABLE_LOG_ROTATION", "false") // lumberjack opens at the first write
	stderr.Reset()
	if _, code, ok := parseServe(nil, &stdout, &stderr); ok || code != exitUsage ||
		!strings.Contains(stderr.String(), `troupe serve: open sink "`+filepath.Join(path, "sub.log")) {
		t.Fatalf("exit %d, ok %v: %s", code, ok, stderr.String())
	}
}
