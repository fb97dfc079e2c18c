package node

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/troupedb/troupe/actors/core"
)

// walSegments lists the WAL segment files in dir.
func walSegments(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func getValue(t *testing.T, cfg Config, key string) (string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client(t, cfg).Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) != 1 {
		return "", resp.Header.Revision
	}
	return string(resp.Kvs[0].Value), resp.Header.Revision
}

func putValue(t *testing.T, cfg Config, key, value string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client(t, cfg).Put(ctx, key, value)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return resp.Header.Revision
}

func mustStart(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := Start(cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return n
}

func mustStop(t *testing.T, n *Node) {
	t.Helper()
	if err := n.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// TestWALDirDedicated: with --wal-dir the WAL lives there, not under the
// data dir, and a restart replays it; started without --wal-dir, the data
// dir alone is refused rather than started as a new member.
func TestWALDirDedicated(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.WALDir = filepath.Join(t.TempDir(), "wal")
	n := mustStart(t, cfg)
	rev := putValue(t, cfg, "k", "v")
	mustStop(t, n)

	if len(walSegments(t, cfg.WALDir)) == 0 {
		t.Fatalf("no WAL segment in --wal-dir %s", cfg.WALDir)
	}
	if segs := walSegments(t, core.WALDir(cfg.DataDir)); len(segs) != 0 {
		t.Fatalf("WAL segments under the data dir: %v", segs)
	}

	n = mustStart(t, cfg)
	if v, r := getValue(t, cfg, "k"); v != "v" || r != rev {
		t.Fatalf("after restart k = %q at revision %d, want v at %d", v, r, rev)
	}
	mustStop(t, n)

	without := cfg
	without.WALDir = ""
	_, err := Start(without)
	if err == nil || !strings.Contains(err.Error(), "has no WAL") || !strings.Contains(err.Error(), "--wal-dir") {
		t.Fatalf("start without --wal-dir: %v, want a refusal naming --wal-dir", err)
	}
	if segs := walSegments(t, core.WALDir(cfg.DataDir)); len(segs) != 0 {
		t.Fatalf("the refused start created a WAL under the data dir: %v", segs)
	}
}

// TestWALDirMismatchRefused: a data dir whose WAL is in member/wal is
// refused with a --wal-dir that has none (etcd starts a new member there
// and hangs), and the empty --wal-dir is left without a WAL.
func TestWALDirMismatchRefused(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	n := mustStart(t, cfg)
	putValue(t, cfg, "k", "v")
	mustStop(t, n)

	// The refused start binds its listeners before it reads the WAL dir:
	// fresh ports, so that a port of the stopped member taken meanwhile by
	// another process's connection cannot fail it for the wrong reason.
	other := withFreshListeners(t, cfg)
	other.WALDir = filepath.Join(t.TempDir(), "wal")
	_, err := Start(other)
	if err == nil || !strings.Contains(err.Error(), "--wal-dir "+other.WALDir+" has no WAL but data dir") {
		t.Fatalf("start with another --wal-dir: %v", err)
	}
	if segs := walSegments(t, other.WALDir); len(segs) != 0 {
		t.Fatalf("the refused start created a WAL in %s: %v", other.WALDir, segs)
	}

	// The same dir spelt as --wal-dir is no mismatch.
	same := cfg
	same.WALDir = core.WALDir(cfg.DataDir) + "/"
	n = mustStart(t, same)
	if v, _ := getValue(t, same, "k"); v != "v" {
		t.Fatalf("k = %q with --wal-dir naming member/wal", v)
	}
	mustStop(t, n)
}

// TestRestoreWALDir: snapshot restore with a WAL dir writes the WAL there,
// serve with the same --wal-dir starts from the data, and an existing WAL
// dir is refused with etcdutl's message.
func TestRestoreWALDir(t *testing.T) {
	src := testConfig(t, t.TempDir())
	n := mustStart(t, src)
	rev := putValue(t, src, "k", "v")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := client(t, src).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "snap.db")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	_ = rc.Close()
	mustStop(t, n)

	cfg := testConfig(t, filepath.Join(t.TempDir(), "restored"))
	cfg.WALDir = filepath.Join(t.TempDir(), "wal")
	rcfg := RestoreConfig{
		File: file, DataDir: cfg.DataDir, WALDir: cfg.WALDir, Name: cfg.Name, InitialCluster: cfg.InitialCluster,
		Token: cfg.InitialClusterToken, PeerURLs: cfg.InitialAdvertisePeerURLs[0].String(), SkipHashCheck: true,
	}
	if err := Restore(rcfg); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if len(walSegments(t, cfg.WALDir)) == 0 || len(walSegments(t, core.WALDir(cfg.DataDir))) != 0 {
		t.Fatalf("restore did not put the WAL in %s only", cfg.WALDir)
	}
	n = mustStart(t, cfg)
	if v, r := getValue(t, cfg, "k"); v != "v" || r != rev {
		t.Fatalf("restored k = %q at revision %d, want v at %d", v, r, rev)
	}
	mustStop(t, n)

	again := rcfg
	again.DataDir = filepath.Join(t.TempDir(), "again")
	err = Restore(again)
	if want := `wal-dir "` + cfg.WALDir + `" exists`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("restore into an existing wal dir: %v, want %s", err, want)
	}
	if _, err := os.Stat(again.DataDir); !os.IsNotExist(err) {
		t.Fatalf("refused restore created %s: %v", again.DataDir, err)
	}
}

// TestStorageFlags: --wal-dir and --force-new-cluster set their fields
// from the command line and from a config file.
func TestStorageFlags(t *testing.T) {
	c := Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--wal-dir", "/w", "--force-new-cluster"}); err != nil {
		t.Fatal(err)
	}
	if c.WALDir != "/w" || !c.ForceNewCluster || c.WALPath() != "/w" {
		t.Fatalf("flags: WALDir %q ForceNewCluster %v WALPath %q", c.WALDir, c.ForceNewCluster, c.WALPath())
	}
	c = Default()
	if c.WALPath() != filepath.Join(c.DataDir, "member", "wal") {
		t.Fatalf("default WALPath %q", c.WALPath())
	}
	if err := c.ApplyFile(writeFile(t, "wal-dir: /f\nforce-new-cluster: true\n")); err != nil {
		t.Fatal(err)
	}
	if c.WALDir != "/f" || !c.ForceNewCluster {
		t.Fatalf("config file: WALDir %q ForceNewCluster %v", c.WALDir, c.ForceNewCluster)
	}
}

// withFreshListeners is cfg listening for clients and peers on new ports
// (advertising the same peer URLs, which identify the member).
func withFreshListeners(t *testing.T, cfg Config) Config {
	t.Helper()
	cu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	cfg.ListenClientURLs = []url.URL{*cu}
	cfg.AdvertiseClientURLs = []url.URL{*cu}
	cfg.ListenPeerURLs = []url.URL{*pu}
	return cfg
}
