package e2etest

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

const tmpfsMagic = 0x01021994

// DiskDir returns a fresh directory on a real disk, removed at cleanup:
// under os.TempDir() unless that is tmpfs (where fsync costs nothing and
// would flatter any benchmark), else under <module root>/e2e/.bench-tmp,
// which e2e/.gitignore ignores.
func DiskDir(t testing.TB) string {
	t.Helper()
	base := os.TempDir()
	var st syscall.Statfs_t
	if err := syscall.Statfs(base, &st); err == nil && st.Type == tmpfsMagic {
		root, err := ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		base = filepath.Join(root, "e2e", ".bench-tmp")
		if err := os.MkdirAll(base, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := os.MkdirTemp(base, "troupe-bench-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
