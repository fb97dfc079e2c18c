package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Template variables of a server command; each member's command is its
// template with these replaced (TemplateVars documents them for --help).
const TemplateVars = `{name}             the member's name (m0, m1, m2)
  {data_dir}         a fresh data dir for the member (under --data-root)
  {client_url}       its client URL, http(s)://127.0.0.1:PORT
  {peer_url}         its peer URL
  {initial_cluster}  name=peer_url of every member, comma-separated
  {cluster_token}    a token new for each start
  {client_port} {peer_port} {extra_port}   the ports; extra is free for
                     another listener (troupe's --listen-actor-url)
  {tls_flags}        with --tls: the client and peer mTLS flags, else empty`

// Preset templates, for --a/--b troupe and etcd: the same flags as an etcd
// user's new cluster; output goes to the member's log file.
const (
	troupeTemplate = `{bin} serve --name {name} --data-dir {data_dir} --listen-client-urls {client_url} ` +
		`--advertise-client-urls {client_url} --listen-peer-urls {peer_url} --initial-advertise-peer-urls {peer_url} ` +
		`--initial-cluster {initial_cluster} --initial-cluster-state new --initial-cluster-token {cluster_token} ` +
		`--listen-actor-url 127.0.0.1:{extra_port} {tls_flags}`
	etcdTemplate = `{bin} --name {name} --data-dir {data_dir} --listen-client-urls {client_url} ` +
		`--advertise-client-urls {client_url} --listen-peer-urls {peer_url} --initial-advertise-peer-urls {peer_url} ` +
		`--initial-cluster {initial_cluster} --initial-cluster-state new --initial-cluster-token {cluster_token} {tls_flags}`
)

// ResolveServer turns --a/--b into a command template: "troupe" and
// "etcd" are presets (troupe: ./bin/troupe, else troupe on PATH, else this
// executable; etcd: $TROUPE_ETCD36, else ~/.cache/troupe/etcd-v3.6.8/etcd),
// anything else is a template already.
func ResolveServer(s string) (string, error) {
	switch s {
	case "troupe":
		bin, err := findTroupe()
		if err != nil {
			return "", err
		}
		return strings.ReplaceAll(troupeTemplate, "{bin}", shellQuote(bin)), nil
	case "etcd":
		bin := os.Getenv("TROUPE_ETCD36")
		if bin == "" {
			home, _ := os.UserHomeDir()
			bin = filepath.Join(home, ".cache", "troupe", "etcd-v3.6.8", "etcd")
		}
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("etcd preset: %w (build it with scripts/etcd36.sh or set TROUPE_ETCD36)", err)
		}
		return strings.ReplaceAll(etcdTemplate, "{bin}", shellQuote(bin)), nil
	}
	// A template written over several lines is one command.
	s = strings.Join(strings.Fields(s), " ")
	if !strings.Contains(s, "{data_dir}") || !strings.Contains(s, "{client_url}") {
		return "", fmt.Errorf("server command %q: not a preset (troupe, etcd), and a template needs at least {data_dir} and {client_url}", s)
	}
	return s, nil
}

func findTroupe() (string, error) {
	if abs, err := filepath.Abs(filepath.Join("bin", "troupe")); err == nil {
		if _, err := os.Stat(abs); err == nil {
			return abs, nil
		}
	}
	if p, err := exec.LookPath("troupe"); err == nil {
		return p, nil
	}
	self, err := os.Executable()
	if err != nil || !strings.HasPrefix(filepath.Base(self), "troupe") {
		return "", errors.New("troupe preset: no ./bin/troupe and no troupe on PATH (task build makes ./bin/troupe)")
	}
	return self, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// cluster is one start of a server command as Members members.
type cluster struct {
	procs     []*exec.Cmd
	logs      []string
	endpoints []string
	exited    []chan struct{}
}

// startCluster starts members of template on free 127.0.0.1 ports with
// data dirs under dir, and waits until every member serves (at most
// timeout).
func startCluster(ctx context.Context, template string, members int, dir string, certs *certFiles, sec Security, timeout time.Duration) (*cluster, error) {
	ports, err := FreePorts(3 * members)
	if err != nil {
		return nil, err
	}
	scheme, tlsFlags := "http", ""
	if certs != nil {
		scheme, tlsFlags = "https", certs.memberTLSFlags()
	}
	var initial []string
	for i := range members {
		initial = append(initial, fmt.Sprintf("m%d=%s://127.0.0.1:%d", i, scheme, ports[3*i+1]))
	}
	token := fmt.Sprintf("bench-%d-%d", os.Getpid(), ports[0])
	c := &cluster{}
	for i := range members {
		name := fmt.Sprintf("m%d", i)
		clientURL := fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[3*i])
		r := strings.NewReplacer(
			"{name}", name, "{data_dir}", shellQuote(filepath.Join(dir, name+".data")),
			"{client_url}", clientURL, "{peer_url}", fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[3*i+1]),
			"{initial_cluster}", strings.Join(initial, ","), "{cluster_token}", token,
			"{client_port}", strconv.Itoa(ports[3*i]), "{peer_port}", strconv.Itoa(ports[3*i+1]),
			"{extra_port}", strconv.Itoa(ports[3*i+2]), "{tls_flags}", tlsFlags,
		)
		logPath := filepath.Join(dir, name+".log")
		logFile, err := os.Create(logPath)
		if err != nil {
			c.stop()
			return nil, err
		}
		// exec: the shell becomes the server, so the pid is the server's.
		cmd := exec.Command("/bin/sh", "-c", "exec "+r.Replace(template))
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			logFile.Close()
			c.stop()
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		logFile.Close()
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }() // owned: stop waits for it
		c.procs = append(c.procs, cmd)
		c.logs = append(c.logs, logPath)
		c.exited = append(c.exited, exited)
		c.endpoints = append(c.endpoints, fmt.Sprintf("127.0.0.1:%d", ports[3*i]))
	}
	if err := c.waitServing(ctx, sec, timeout); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// pids are the members' process ids.
func (c *cluster) pids() []int {
	out := make([]int, len(c.procs))
	for i, p := range c.procs {
		out[i] = p.Process.Pid
	}
	return out
}

// waitServing waits until each member has a leader and answers a
// linearizable read.
func (c *cluster) waitServing(ctx context.Context, sec Security, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for i, ep := range c.endpoints {
		cfg := Config{Endpoints: []string{ep}, Security: sec}
		clis, err := dial(ctx, &cfg, 1)
		if err != nil {
			return err
		}
		err = waitMember(ctx, clis[0], ep, c.exited[i], deadline)
		closeAll(clis)
		if err != nil {
			return fmt.Errorf("member m%d (%s): %w; log %s:\n%s", i, ep, err, c.logs[i], tail(c.logs[i], 2000))
		}
	}
	return nil
}

func waitMember(ctx context.Context, cli *clientv3.Client, ep string, exited chan struct{}, deadline time.Time) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cli.Status(rctx, ep)
		if err == nil && st.Leader != 0 {
			_, err = cli.Get(rctx, "health")
			if err == nil {
				cancel()
				return nil
			}
		}
		cancel()
		select {
		case <-exited:
			return errors.New("exited before serving")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not serving in time (last: %v)", err)
		}
	}
}

// stop ends every member (SIGTERM, SIGKILL after 10 s) and waits for it.
func (c *cluster) stop() {
	for _, p := range c.procs {
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
	}
	for i, p := range c.procs {
		select {
		case <-c.exited[i]:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			<-c.exited[i]
		}
	}
}

// FreePorts returns n distinct ports that were free on 127.0.0.1 (all n
// listeners are open at once, so they differ).
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	out := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// tail is the last n bytes of a file, for an error message.
func tail(path string, n int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}
