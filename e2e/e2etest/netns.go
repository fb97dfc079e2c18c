package e2etest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// A netns cluster runs every member in a network namespace of its own, as if
// on a machine of its own, so that partitions are real packet loss rather
// than stopped processes. For run id R (e.g. "tr4711a") and subnet 10.77.X:
//
//	R-hub   bridge br0; one port per member (m0, m1, ...) and one, "host",
//	        for the test process
//	R-m<i>  eth0 = 10.77.X.<i+1>/24, a veth whose other end is hub's m<i>
//	host    R + "h" = 10.77.X.254/24, a veth whose other end is hub's "host"
//
// Members are started as `ip netns exec R-m<i> <server> ...` and listen on
// 10.77.X.<i+1>:2379 (clients) and :2380 (peers). The test process reaches
// them over its veth; the subnet's addresses exist only on the interfaces
// created here, so no traffic leaves the namespaces and that veth. A
// partition is a pair of blackhole routes (Isolate, PartitionPair: the
// members cannot reach each other but clients still reach both) or a link
// set down (Disconnect: the member is cut from everyone, clients included).
//
// Everything is torn down at t.Cleanup, members first; namespaces left
// behind by a test binary that died are removed by the next run (their
// names carry the pid).

// NetnsCluster is a Cluster whose members run in network namespaces of
// their own. It implements the chaos harness's Cluster (with Leader(ctx))
// and Pauser, Stopper, plus partitions.
type NetnsCluster struct {
	*Cluster
	run    string   // run id, prefix of every name created
	subnet string   // "10.77.X"
	hub    string   // the bridge's namespace
	nss    []string // member i's namespace
	hostIf string   // the test process's veth

	pmu     sync.Mutex
	blocked map[[2]int]bool // i<j: blackhole routes between i and j
	down    map[int]bool    // member's link is down
}

var netnsSeq atomic.Int32

// netnsPeerPort and netnsClientPort are etcd's defaults: every member has an
// address of its own.
const (
	netnsClientPort = 2379
	netnsPeerPort   = 2380
	netnsCmdTimeout = 10 * time.Second
)

// StartNetnsCluster starts size members (3 if size <= 0) of the kind
// selected by Kind, each in a network namespace of its own, and waits until
// every member serves linearizable reads. It skips the test when network
// namespaces cannot be created (not root, no ip, `ip netns add` refused).
func StartNetnsCluster(t testing.TB, size int) *NetnsCluster {
	t.Helper()
	if size <= 0 {
		size = 3
	}
	if os.Geteuid() != 0 {
		t.Skip("e2etest: netns cluster needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("e2etest: netns cluster needs iproute2's ip: %v", err)
	}
	sweepStaleNetns(t)
	kind := Kind()
	bin, err := binary(kind)
	if err != nil {
		t.Fatal(err)
	}

	c := &NetnsCluster{blocked: map[[2]int]bool{}, down: map[int]bool{}}
	c.pickNames(size)
	// Probe: the one failure that means "cannot run here" rather than a bug.
	if out, err := ipCmd("netns", "add", c.hub); err != nil {
		t.Skipf("e2etest: cannot create network namespaces (ip netns add %s: %v: %s)", c.hub, err, out)
	}
	t.Cleanup(func() { c.teardown(t) })
	if err := c.setupNetwork(); err != nil {
		t.Fatalf("e2etest: netns network: %v", err)
	}
	t.Logf("e2etest: netns cluster %s: members %s.1-%d in namespaces %s-m*, bridge in %s, host veth %s=%s.254",
		c.run, c.subnet, size, c.run, c.hub, c.hostIf, c.subnet)

	names := make([]string, size)
	peers := make([]string, size)
	initial := make([]string, size)
	for i := range size {
		names[i] = fmt.Sprintf("m%d", i)
		peers[i] = fmt.Sprintf("http://%s:%d", c.addr(i), netnsPeerPort)
		initial[i] = names[i] + "=" + peers[i]
	}
	cl := &Cluster{t: t, kind: kind, paused: map[int]bool{}}
	root := t.TempDir()
	for i := range size {
		client := fmt.Sprintf("http://%s:%d", c.addr(i), netnsClientPort)
		dataDir := filepath.Join(root, names[i]+".data")
		args := memberArgs(names[i], dataDir, client, peers[i], initial, c.run)
		if kind == Troupe {
			args = append([]string{"serve"}, args...)
			args = append(args, "--listen-actor-url", "")
		}
		// ip netns exec execs the server (it forks only in batch mode),
		// so the process started is the server's: Kill, Stop and Pause
		// signal it directly (checked below).
		args = append([]string{"netns", "exec", c.nss[i], bin}, args...)
		cl.members = append(cl.members, &Server{
			t: t, kind: kind, name: names[i], bin: "ip", args: args,
			env:       os.Environ(),
			dataDir:   dataDir,
			logPath:   filepath.Join(root, names[i]+".log"),
			clientURL: client,
		})
	}
	c.Cluster = cl
	// Registered after the network's teardown, so it runs before it.
	t.Cleanup(cl.cleanup)
	for _, m := range cl.members {
		if err := m.startProcess(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.waitAllReady(); err != nil {
		t.Fatal(err)
	}
	for i, m := range cl.members {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", m.PID()))
		if err != nil || filepath.Base(exe) != filepath.Base(bin) {
			t.Fatalf("e2etest: member m%d: pid %d runs %q (%v), not %s: ip netns exec forked, so signals would miss the server", i, m.PID(), exe, err, bin)
		}
	}
	return c
}

// pickNames chooses a run id and a subnet no one on this host uses.
func (c *NetnsCluster) pickNames(size int) {
	used := map[string]bool{}
	if out, err := ipCmd("-4", "-o", "addr", "show"); err == nil {
		for _, m := range regexp.MustCompile(`10\.77\.(\d+)\.`).FindAllStringSubmatch(out, -1) {
			used[m[1]] = true
		}
	}
	for {
		seq := int(netnsSeq.Add(1) - 1)
		run := fmt.Sprintf("tr%d%c", os.Getpid(), 'a'+seq%26)
		octet := strconv.Itoa(1 + (os.Getpid()*7+seq)%250)
		if _, err := os.Stat("/var/run/netns/" + run + "-hub"); err == nil || used[octet] {
			continue
		}
		c.run, c.subnet = run, "10.77."+octet
		break
	}
	c.hub = c.run + "-hub"
	c.hostIf = c.run + "h"
	c.nss = make([]string, size)
	for i := range size {
		c.nss[i] = fmt.Sprintf("%s-m%d", c.run, i)
	}
}

func (c *NetnsCluster) addr(i int) string { return fmt.Sprintf("%s.%d", c.subnet, i+1) }

// setupNetwork creates everything but the hub namespace (made by the caller).
func (c *NetnsCluster) setupNetwork() error {
	steps := [][]string{
		{"-n", c.hub, "link", "set", "lo", "up"},
		{"-n", c.hub, "link", "add", "br0", "type", "bridge"},
		{"-n", c.hub, "link", "set", "br0", "up"},
		// The host's end: created in the host, its peer moved into hub.
		{"link", "add", c.hostIf, "type", "veth", "peer", "name", c.run + "hb"},
		{"link", "set", c.run + "hb", "netns", c.hub},
		{"-n", c.hub, "link", "set", c.run + "hb", "name", "host"},
		{"-n", c.hub, "link", "set", "host", "master", "br0", "up"},
		{"addr", "add", c.subnet + ".254/24", "dev", c.hostIf},
		{"link", "set", c.hostIf, "up"},
	}
	for i, ns := range c.nss {
		tmp := fmt.Sprintf("%sm%d", c.run, i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"link", "add", tmp, "type", "veth", "peer", "name", tmp + "b"},
			[]string{"link", "set", tmp, "netns", ns},
			[]string{"link", "set", tmp + "b", "netns", c.hub},
			[]string{"-n", ns, "link", "set", tmp, "name", "eth0"},
			[]string{"-n", ns, "addr", "add", c.addr(i) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"-n", c.hub, "link", "set", tmp + "b", "name", fmt.Sprintf("m%d", i)},
			[]string{"-n", c.hub, "link", "set", fmt.Sprintf("m%d", i), "master", "br0", "up"},
		)
	}
	for _, s := range steps {
		if out, err := ipCmd(s...); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return nil
}

// teardown deletes the namespaces (and with them every veth and the bridge)
// and the host's veth. Members are killed before, by the Cluster's cleanup.
func (c *NetnsCluster) teardown(t testing.TB) {
	var errs []error
	if c.Cluster != nil {
		// In case the cluster's own cleanup was not registered (a
		// failure between starting members and registering it).
		for _, m := range c.members {
			m.signalAndWait(syscall.SIGKILL, stopTimeout)
		}
	}
	for _, ns := range append(append([]string(nil), c.nss...), c.hub) {
		if _, err := os.Stat("/var/run/netns/" + ns); err != nil {
			continue
		}
		if out, err := ipCmd("netns", "del", ns); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", ns, err, out))
		}
	}
	// Deleting hub destroyed the host veth's peer and so the veth; make
	// sure, and remove veths a failed setup left in the host.
	if ents, err := os.ReadDir("/sys/class/net"); err == nil {
		for _, e := range ents {
			if staleNetns.MatchString(e.Name()) && strings.HasPrefix(e.Name(), c.run) {
				if out, err := ipCmd("link", "del", e.Name()); err != nil {
					errs = append(errs, fmt.Errorf("ip link del %s: %v: %s", e.Name(), err, out))
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Errorf("e2etest: netns teardown: %v", err)
	}
}

// staleNetns matches the names of namespaces (-hub, -m<i>) and host veths
// (h, hb, m<i>, m<i>b: the latter while being set up) made for a run.
var staleNetns = regexp.MustCompile(`^tr(\d+)[a-z](-hub|-m\d+|h|hb|m\d+b?)$`)

// sweepStaleNetns removes namespaces and host veths of earlier runs whose
// test binary is gone (killed by a timeout, say, before its cleanup ran).
func sweepStaleNetns(t testing.TB) {
	dead := func(name string) bool {
		m := staleNetns.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() {
			return false
		}
		_, err := os.Stat("/proc/" + m[1])
		return errors.Is(err, os.ErrNotExist)
	}
	if ents, err := os.ReadDir("/var/run/netns"); err == nil {
		for _, e := range ents {
			if dead(e.Name()) {
				if out, err := ipCmd("netns", "del", e.Name()); err == nil {
					t.Logf("e2etest: removed stale namespace %s", e.Name())
				} else {
					t.Logf("e2etest: stale namespace %s: %v: %s", e.Name(), err, out)
				}
			}
		}
	}
	if ents, err := os.ReadDir("/sys/class/net"); err == nil {
		for _, e := range ents {
			if dead(e.Name()) {
				if _, err := ipCmd("link", "del", e.Name()); err == nil {
					t.Logf("e2etest: removed stale veth %s", e.Name())
				}
			}
		}
	}
}

func ipCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), netnsCmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Namespace returns member i's network namespace.
func (c *NetnsCluster) Namespace(i int) string { return c.nss[i] }

// Address returns member i's IP address.
func (c *NetnsCluster) Address(i int) string { return c.addr(i) }

// Leader returns the index of the leader that the live, unpaused members
// not cut off from the others agree on, waiting until ctx is done. An
// isolated member may still believe in an old leader; it is not asked.
func (c *NetnsCluster) Leader(ctx context.Context) (int, error) {
	return c.waitLeaderAmong(ctx, c.Isolated)
}

// Isolated reports whether member i cannot reach any other member (its link
// is down, or blackhole routes cut it from every other).
func (c *NetnsCluster) Isolated(i int) bool {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.down[i] {
		return true
	}
	for j := range c.nss {
		if j != i && !c.blocked[pair(i, j)] {
			return false
		}
	}
	return len(c.nss) > 1
}

func pair(i, j int) [2]int {
	if i > j {
		i, j = j, i
	}
	return [2]int{i, j}
}

// PartitionPair cuts members i and j from each other, both ways, with
// blackhole routes in their namespaces; each still reaches the others and
// the test's clients.
func (c *NetnsCluster) PartitionPair(i, j int) error {
	if i == j {
		return fmt.Errorf("e2etest: partition m%d from itself", i)
	}
	c.pmu.Lock()
	defer c.pmu.Unlock()
	for _, d := range [][2]int{{i, j}, {j, i}} {
		if out, err := ipCmd("-n", c.nss[d[0]], "route", "replace", "blackhole", c.addr(d[1])+"/32"); err != nil {
			return fmt.Errorf("e2etest: blackhole m%d->m%d: %v: %s", d[0], d[1], err, out)
		}
	}
	c.blocked[pair(i, j)] = true
	return nil
}

// HealPair removes the blackhole routes between members i and j.
func (c *NetnsCluster) HealPair(i, j int) error {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return c.healPairLocked(i, j)
}

func (c *NetnsCluster) healPairLocked(i, j int) error {
	var errs []error
	for _, d := range [][2]int{{i, j}, {j, i}} {
		out, err := ipCmd("-n", c.nss[d[0]], "route", "del", "blackhole", c.addr(d[1])+"/32")
		if err != nil && !strings.Contains(out, "No such process") {
			errs = append(errs, fmt.Errorf("e2etest: unblackhole m%d->m%d: %v: %s", d[0], d[1], err, out))
		}
	}
	if len(errs) == 0 {
		delete(c.blocked, pair(i, j))
	}
	return errors.Join(errs...)
}

// Isolate cuts member i from every other member (blackhole routes both
// ways); the test's clients still reach it, so requests to it are answered
// by a member without a quorum.
func (c *NetnsCluster) Isolate(i int) error {
	for j := range c.nss {
		if j != i {
			if err := c.PartitionPair(i, j); err != nil {
				return err
			}
		}
	}
	return nil
}

// Disconnect sets member i's link down (its port on the bridge): no packet
// reaches it or leaves it, from members or from clients.
func (c *NetnsCluster) Disconnect(i int) error {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if out, err := ipCmd("-n", c.hub, "link", "set", fmt.Sprintf("m%d", i), "down"); err != nil {
		return fmt.Errorf("e2etest: link down m%d: %v: %s", i, err, out)
	}
	c.down[i] = true
	return nil
}

// Heal undoes every partition involving member i: its link goes up and the
// blackhole routes between it and the others are removed.
func (c *NetnsCluster) Heal(i int) error {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	var errs []error
	if out, err := ipCmd("-n", c.hub, "link", "set", fmt.Sprintf("m%d", i), "up"); err != nil {
		errs = append(errs, fmt.Errorf("e2etest: link up m%d: %v: %s", i, err, out))
	} else {
		delete(c.down, i)
	}
	for j := range c.nss {
		if j != i && c.blocked[pair(i, j)] {
			errs = append(errs, c.healPairLocked(i, j))
		}
	}
	return errors.Join(errs...)
}

// HealAll undoes every partition.
func (c *NetnsCluster) HealAll() error {
	var errs []error
	for i := range c.nss {
		errs = append(errs, c.Heal(i))
	}
	return errors.Join(errs...)
}
