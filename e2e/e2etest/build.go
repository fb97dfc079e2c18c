package e2etest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// ModuleRoot returns the directory holding troupe's go.mod, found by walking
// up from the working directory (go test runs in the package directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("e2etest: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// TroupeBinary builds ./cmd/troupe once per test binary and returns the
// path of the executable. The build directory is removed by Main.
func TroupeBinary() (string, error) {
	buildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildDir, err = os.MkdirTemp("", "troupe-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(buildDir, "troupe")
		cmd := exec.Command("go", "build", "-o", buildBin, "./cmd/troupe")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("e2etest: go build ./cmd/troupe failed (run with -e2e.server=etcd to test against real etcd): %w\n%s", err, out)
		}
	})
	return buildBin, buildErr
}

// Main runs the tests of m and removes what the package built; call it from
// TestMain.
func Main(m *testing.M) int {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	return code
}
