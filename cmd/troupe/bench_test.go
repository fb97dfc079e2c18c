package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/troupedb/troupe/internal/bench"
	"github.com/troupedb/troupe/internal/polltest"
)

// serveEnv makes this test binary run `troupe <args>` instead of the
// tests: the bench tests start real troupe server processes from it, with
// no build step.
const serveEnv = "TROUPE_BENCH_TEST_RUN"

func TestMain(m *testing.M) {
	if os.Getenv(serveEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// serverTemplate is a `troupe bench compare` command template that runs
// this test binary as `troupe serve`.
func serverTemplate(t *testing.T) string {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return "env " + serveEnv + "=1 '" + self + "' serve --name {name} --data-dir {data_dir} " +
		"--listen-client-urls {client_url} --advertise-client-urls {client_url} --listen-peer-urls {peer_url} " +
		"--initial-advertise-peer-urls {peer_url} --initial-cluster {initial_cluster} --initial-cluster-state new " +
		"--initial-cluster-token {cluster_token} --listen-actor-url 127.0.0.1:{extra_port} {tls_flags}"
}

// startTroupe runs one member from this test binary on free ports and
// returns its client endpoint and pid; cleanup stops it.
func startTroupe(t *testing.T) (string, int) {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		ls = append(ls, l)
	}
	// Held together so the three differ; freed for the server.
	for _, l := range ls {
		l.Close()
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(self, "serve", "--data-dir", filepath.Join(dir, "data"), "--listen-client-urls", client,
		"--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "default="+peer, "--listen-actor-url", fmt.Sprintf("127.0.0.1:%d", ports[2]))
	cmd.Env = append(os.Environ(), serveEnv+"=1")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", log.String())
		}
	})
	ep := strings.TrimPrefix(client, "http://")
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	polltest.Eventually(t, 30*time.Second, "troupe serves", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Get(ctx, "health")
		return err == nil, fmt.Sprint(err)
	})
	return ep, cmd.Process.Pid
}

// TestBenchWorkloadsAgainstTroupe runs every workload, small, against one
// troupe process and checks each report: the right number of operations,
// no errors, and the server's figures read from /proc.
func TestBenchWorkloadsAgainstTroupe(t *testing.T) {
	ep, pid := startTroupe(t)
	common := []string{"--endpoints", ep, "--server-pid", fmt.Sprint(pid), "--json"}
	for _, tc := range []struct {
		args    []string
		wantOps float64
		note    string
	}{
		{[]string{"put", "--clients", "4", "--total", "200", "--key-space", "50", "--val-size", "256"}, 200, ""},
		{[]string{"range", "--clients", "4", "--total", "100", "--key-space", "20"}, 100, ""},
		{[]string{"range", "--consistency", "s", "--total", "50", "--skip-load"}, 50, ""},
		{[]string{"txn-put", "--clients", "2", "--total", "50", "--txn-ops", "3", "--key-space", "10"}, 50, ""},
		{[]string{"mixed", "--clients", "2", "--total", "100", "--read-ratio", "0.5"}, 100, ""},
		{[]string{"lease-keepalive", "--clients", "2", "--total", "40"}, 40, ""},
		{[]string{"watch-latency", "--watchers", "6", "--streams", "2", "--total", "20"}, 120, "puts"},
		{[]string{"range-large", "--key-space", "200", "--val-size", "1024", "--total", "3"}, 3, "value_bytes_per_op"},
		{[]string{"abandon", "--watches", "3", "--ranges", "3", "--total", "20", "--key-space", "10", "--hold", "100ms"}, 6, "largest_rss_growth_bytes"},
		{[]string{"abandon", "--watches", "2", "--ranges", "2", "--total", "10", "--key-space", "10", "--hold", "100ms", "--end", "cancel"}, 4, "largest_rss_growth_bytes"},
		{[]string{"abandon", "--watches", "2", "--ranges", "2", "--total", "10", "--key-space", "10", "--hold", "100ms", "--end", "close"}, 4, "largest_rss_growth_bytes"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runArgs(append(append([]string{"bench"}, tc.args...), common...)...)
			if code != exitOK {
				t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
			}
			var r bench.Result
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if float64(r.Ops) != tc.wantOps || r.Errors != 0 {
				t.Errorf("ops %d errors %d (%v), want %v and none", r.Ops, r.Errors, r.ErrorsByMessage, tc.wantOps)
			}
			if r.Throughput <= 0 || r.Latency.P99 <= 0 || r.Latency.P99 > r.Latency.Max {
				t.Errorf("throughput %v, p99 %v, max %v", r.Throughput, r.Latency.P99, r.Latency.Max)
			}
			if len(r.Servers) != 1 || r.Servers[0].PID != pid || r.Servers[0].PeakRSS <= 0 {
				t.Errorf("servers %+v, want pid %d with its peak RSS", r.Servers, pid)
			}
			if _, ok := r.Notes[tc.note]; tc.note != "" && !ok {
				t.Errorf("notes %v lack %s", r.Notes, tc.note)
			}
		})
	}
}

// TestBenchCompareLoop runs the compare loop over two troupe servers (this
// test binary, A with a different snapshot count so the commands differ)
// for 2 rounds and checks the rounds, their order and the medians.
func TestBenchCompareLoop(t *testing.T) {
	tmpl := serverTemplate(t)
	out := t.TempDir()
	code, stdout, stderr := runArgs("bench", "compare", "--a", tmpl+" --snapshot-count 5000", "--b", tmpl,
		"--rounds", "2", "--workload", "put", "--clients", "8", "--total", "400", "--val-size", "64",
		"--data-root", t.TempDir(), "--out", out, "--json")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	var c bench.Comparison
	if err := json.Unmarshal([]byte(stdout), &c); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	// 400 puts cost a server tens of ms of CPU, several of /proc's 10 ms
	// ticks, so a CPU time of 0 is a wrong reading, not rounding.
	var order []string
	pids := map[int]bool{}
	for _, r := range c.Runs {
		order = append(order, fmt.Sprintf("%d%s", r.Round, r.Server))
		if r.Result.Ops != 400 || len(r.Result.Servers) != 1 || r.Result.Servers[0].CPU <= 0 {
			t.Errorf("run %d%s: ops %d, servers %+v", r.Round, r.Server, r.Result.Ops, r.Result.Servers)
		} else {
			pids[r.Result.Servers[0].PID] = true
		}
	}
	if got := strings.Join(order, " "); got != "1A 1B 2B 2A" {
		t.Errorf("runs %s, want 1A 1B 2B 2A (ABBA)", got)
	}
	if len(pids) != 4 {
		t.Errorf("%d distinct server pids over 4 runs, want a fresh server each run", len(pids))
	}
	if c.MedianA.Throughput <= 0 || c.MedianB.CPUPerOp <= 0 || c.MedianA.PeakRSS <= 0 {
		t.Errorf("medians A %+v B %+v", c.MedianA, c.MedianB)
	}
	if got, want := c.RatioAOverB["ops_per_sec"], c.MedianA.Throughput/c.MedianB.Throughput; got != want {
		t.Errorf("throughput ratio %v, want %v", got, want)
	}
	for _, f := range []string{"summary.txt", "summary.json", "round1-A.svg", "round2-B.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("--out: %v", err)
		}
	}
}

func TestBenchBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "nosuch"}, "unknown workload"},
		{[]string{"bench", "put", "--clients", "0"}, "--clients must be at least 1"},
		{[]string{"bench", "put", "--server-pid", "x"}, "not a process id"},
		{[]string{"bench", "compare", "--a", "sleep 1"}, "a template needs at least {data_dir} and {client_url}"},
		{[]string{"bench", "compare", "--members", "2", "--b", "troupe"}, "--members must be 1 or 3"},
	} {
		code, _, errOut := runArgs(tc.args...)
		if code == exitOK || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want an error with %q", tc.args, code, errOut, tc.want)
		}
	}
}

// TestBenchAuthFlags runs put against a troupe with auth on: with
// etcdctl's --user it succeeds, without it every put is refused.
func TestBenchAuthFlags(t *testing.T) {
	ep, _ := startTroupe(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.UserAdd(ctx, "root", "rootpw"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runArgs("bench", "put", "--endpoints", ep, "--total", "20", "--user", "root:rootpw", "--json")
	var r bench.Result
	if code != exitOK || json.Unmarshal([]byte(out), &r) != nil || r.Ops != 20 || r.Errors != 0 {
		t.Errorf("with --user root:rootpw: exit %d, %d ops, %d errors\nstdout %s\nstderr %s", code, r.Ops, r.Errors, out, errOut)
	}
	code, out, _ = runArgs("bench", "put", "--endpoints", ep, "--total", "20", "--json")
	r = bench.Result{}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != exitOK || r.Ops != 0 || r.Errors != 20 {
		t.Errorf("without --user: exit %d, %d ops, %d errors (%v), want every put refused", code, r.Ops, r.Errors, r.ErrorsByMessage)
	}
}
