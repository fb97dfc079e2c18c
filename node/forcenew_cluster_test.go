//go:build !race

package node

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/troupedb/troupe/failpoint"
	"github.com/troupedb/troupe/internal/polltest"
)

// TestClusterForceNewCluster: a member of a stopped 3-member cluster
// restarted with ForceNewCluster serves alone with every committed key at
// the same revision, lists only itself, takes writes, and stays a
// single-member cluster when restarted without the flag; with the whole
// log in the WAL, and with a snapshot (whose members the conf changes
// start from) and the entries after it.
func TestClusterForceNewCluster(t *testing.T) {
	t.Run("log", func(t *testing.T) { testForceNewCluster(t, 0) })
	t.Run("snapshot", func(t *testing.T) { testForceNewCluster(t, 8) })
}

func testForceNewCluster(t *testing.T, snapshotCount uint64) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		if snapshotCount > 0 {
			cfg.SnapshotCount = snapshotCount
		}
	})
	lead := c.waitLeader()
	cli := c.client(lead)
	var rev int64
	for i := range 20 {
		rev = put(t, cli, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	// Every member applied the last put, so the one forced below has it
	// whichever it is.
	for i := range c.nodes {
		c.waitValue(i, "k19", "19")
	}
	if snapshotCount > 0 {
		c.waitSnapshot(1, 16)
	}
	for i := range c.nodes {
		c.stop(i)
	}

	const forced = 1
	cfg := c.cfgs[forced]
	cfg.ForceNewCluster = true
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	n := mustStart(t, cfg)
	c.nodes[forced] = n
	if got := c.waitLeader(); got != forced {
		t.Fatalf("leader is member %d, want the forced member %d", got, forced)
	}
	checkAlone(t, cfg, c.ids[forced], rev)

	// An in-process restart of the core does not force again: the log is
	// rewritten once per node start.
	if err := failpoint.Enable("walPanic", "1*panic"); err != nil {
		t.Fatal(err)
	}
	defer failpoint.Disable("walPanic")
	poker := client(t, cfg)
	polltest.Eventually(t, 20*time.Second, "the core restarted after a WAL panic", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = poker.Put(ctx, "poke", "1") // reaches the WAL actor, which panics once
		cancel()
		return n.view.Restarts() > 0, ""
	})
	var pokeRev int64
	polltest.Eventually(t, 20*time.Second, "the restarted core takes a put", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := poker.Put(ctx, "poke", "2")
		if err != nil {
			return false, err.Error()
		}
		pokeRev = resp.Header.Revision
		return true, ""
	})
	if got := strings.Count(logs.String(), "forcing restart member"); got != 1 {
		t.Fatalf("forced %d times in one node start, want once", got)
	}
	checkAlone(t, cfg, c.ids[forced], pokeRev)
	for i := range 20 {
		if v, _ := getValue(t, cfg, fmt.Sprintf("k%02d", i)); v != fmt.Sprint(i) {
			t.Fatalf("k%02d = %q after force-new-cluster", i, v)
		}
	}
	after := putValue(t, cfg, "after-force", "1")
	c.stop(forced)

	cfg.ForceNewCluster = false
	c.nodes[forced] = mustStart(t, cfg)
	if got := c.waitLeader(); got != forced {
		t.Fatalf("leader after a plain restart is member %d, want %d", got, forced)
	}
	checkAlone(t, cfg, c.ids[forced], after)
	if v, _ := getValue(t, cfg, "after-force"); v != "1" {
		t.Fatalf("after-force = %q after a plain restart", v)
	}
	putValue(t, cfg, "after-restart", "2")
}

// checkAlone checks that the member serves linearizable reads at revision
// rev and that its member list is itself alone, with its name and URLs.
func checkAlone(t *testing.T, cfg Config, id uint64, rev int64) {
	t.Helper()
	cli := client(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, r := getValue(t, cfg, "k00"); r != rev {
		t.Fatalf("revision %d, want %d", r, rev)
	}
	polltest.Eventually(t, 10*time.Second, "member list is this member alone, published", func() (bool, string) {
		list, err := cli.MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ms := list.Members
		ok := len(ms) == 1 && ms[0].ID == id && ms[0].Name == cfg.Name && !ms[0].IsLearner &&
			len(ms[0].PeerURLs) == 1 && ms[0].PeerURLs[0] == cfg.InitialAdvertisePeerURLs[0].String()
		return ok, fmt.Sprint(ms)
	})
	st, err := cli.Status(ctx, cfg.ListenClientURLs[0].Host)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader != id || st.Header.MemberId != id {
		t.Fatalf("status: leader %x member %x, want %x", st.Leader, st.Header.MemberId, id)
	}
}
