package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/troupedb/troupe/e2e/e2etest"
)

// TestEtcd36FlagsAccepted: troupe serve starts with a command line of
// etcd 3.6 knobs (new names, deprecated experimental ones, feature gates)
// and serves; the deprecated ones are warned about as etcd does.
func TestEtcd36FlagsAccepted(t *testing.T) {
	s := e2etest.Start(t, e2etest.Config{Kind: e2etest.Troupe, Args: []string{
		"--pre-vote=true", "--strict-reconfig-check", "--max-snapshots=3", "--max-wals=3",
		"--snapshot-catchup-entries=1000", "--backend-batch-interval=50ms", "--backend-batch-limit=5000",
		"--max-concurrent-streams=1000", "--grpc-keepalive-min-time=5s", "--grpc-keepalive-interval=1h",
		"--grpc-keepalive-timeout=10s", "--cors=*", "--host-whitelist=*", "--enable-pprof", "--metrics=extensive",
		"--logger=zap", "--log-outputs=stderr", "--feature-gates=InitialCorruptCheck=true,CompactHashCheck=true",
		"--experimental-watch-progress-notify-interval=5s", "--corrupt-check-time=0s", "--compact-hash-check-time=1m",
		"--warning-apply-duration=200ms", "--warning-unary-request-duration=500ms", "--backend-bbolt-freelist-type=map",
		"--v2-deprecation=write-only", "--discovery-fallback=exit", "--enable-grpc-gateway=true", "--cert-file=",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Client(t).Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if log := s.Log(); !strings.Contains(log, "--experimental-watch-progress-notify-interval is deprecated in v3.6") {
		t.Errorf("no deprecation warning in the log:\n%s", log)
	}
}

// TestEtcd36FlagsRefused: a flag troupe does not implement, from the
// command line or its ETCD_ variable, stops serve with exit status 2 and
// one line naming it.
func TestEtcd36FlagsRefused(t *testing.T) {
	bin, err := e2etest.TroupeBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{args: []string{"--discovery-srv=example.com"}, want: "troupe serve: --discovery-srv=example.com: DNS SRV discovery is not supported by troupe; list the members in --initial-cluster\n"},
		{env: "ETCD_DISCOVERY_SRV=example.com", want: "troupe serve: --discovery-srv=example.com: DNS SRV discovery is not supported by troupe; list the members in --initial-cluster\n"},
		{args: []string{"--feature-gates=StopGRPCServiceOnDefrag=true"}, want: "troupe serve: --feature-gates=StopGRPCServiceOnDefrag=true: not supported by troupe yet"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin, append([]string{"serve", "--data-dir", t.TempDir()}, tc.args...)...)
		if tc.env != "" {
			cmd.Env = append(cmd.Environ(), tc.env)
		}
		out, err := cmd.CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.HasPrefix(string(out), tc.want) || strings.Count(string(out), "\n") != 1 {
			t.Errorf("%q %s: err %v, output %q; want exit 2 and %q", tc.args, tc.env, err, out, tc.want)
		}
	}
}
