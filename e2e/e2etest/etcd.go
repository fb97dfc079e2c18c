package e2etest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// EnvEtcd36 names the environment variable holding the directory of etcd
// 3.6.8's etcd and etcdctl, the reference troupe must match; scripts/etcd36.sh
// builds them there (scripts/test.sh runs it and sets the variable). Unset,
// the directory is Etcd36CacheDir, where scripts/etcd36.sh builds by default.
const EnvEtcd36 = "TROUPE_ETCD36"

// Etcd36Version is the etcd release of Etcd servers and of Etcdctl.
const Etcd36Version = "3.6.8"

// Etcd36CacheDir is where scripts/etcd36.sh builds etcd 3.6.8 when given no
// directory: ${XDG_CACHE_HOME:-$HOME/.cache}/troupe/etcd-v3.6.8.
func Etcd36CacheDir() string {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "troupe", "etcd-v"+Etcd36Version)
}

// etcd36Binary returns the path of etcd 3.6.8's etcd or etcdctl (name).
func etcd36Binary(name string) (string, error) {
	dir, from := os.Getenv(EnvEtcd36), "$"+EnvEtcd36
	if dir == "" {
		dir, from = Etcd36CacheDir(), "the default directory"
	}
	bin := filepath.Join(dir, name)
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("e2etest: etcd %s's %s not found at %s (%s); build it with scripts/etcd36.sh [DIR] and set %s=DIR (scripts/test.sh does both)",
			Etcd36Version, name, bin, from, EnvEtcd36)
	}
	return bin, nil
}

// EtcdBinary is etcd 3.6.8's server, what the Etcd kind runs.
func EtcdBinary() (string, error) { return etcd36Binary("etcd") }

// EtcdctlBinary is etcd 3.6.8's etcdctl.
func EtcdctlBinary() (string, error) { return etcd36Binary("etcdctl") }

// Etcd34Binary is Debian's etcd 3.4 from PATH, what the Etcd34 kind runs:
// the source of etcd 3.4 data (snapshots) troupe must keep reading.
func Etcd34Binary() (string, error) { return path34("etcd", "etcd-server") }

// Etcdctl34Binary is Debian's etcdctl 3.4 from PATH: etcd 3.6's etcdctl
// has no `snapshot restore` or `snapshot status` (they moved to etcdutl).
func Etcdctl34Binary() (string, error) { return path34("etcdctl", "etcd-client") }

func path34(name, pkg string) (string, error) {
	b, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("e2etest: etcd 3.4's %s not found in PATH (scripts/test.sh installs Debian's %s): %w", name, pkg, err)
	}
	return b, nil
}
