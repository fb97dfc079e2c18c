package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogRotationErrors holds the rotation flags to etcd 3.6.8's checks
// and messages (checked against /tmp/etcd36/etcd).
func TestLogRotationErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" accepted
	}{
		{[]string{"--enable-log-rotation"}, "--log-outputs requires a single file path when --log-rotate-config-json is defined"},
		{[]string{"--enable-log-rotation", "--log-outputs=stdout"}, "--log-outputs requires a single file path"},
		{[]string{"--enable-log-rotation", "--log-outputs=a.log,b.log"}, "--log-outputs requires a single file path"},
		{[]string{"--enable-log-rotation", "--log-outputs=a.log", "--log-rotation-config-json={bad"},
			"improperly formatted log rotation config: invalid character 'b' looking for beginning of object key string"},
		{[]string{"--enable-log-rotation", "--log-outputs=a.log", `--log-rotation-config-json={"maxsize":"x"}`},
			"invalid log rotation config: json: cannot unmarshal string into Go struct field logRotationConfig.Logger.maxsize of type int"},
		{[]string{"--log-outputs=default,a.log"}, `multi logoutput for "default" is not supported yet`},
		// As etcd: two standard outputs pass the file check.
		{[]string{"--enable-log-rotation", "--log-outputs=stdout,stderr"}, ""},
		{[]string{"--enable-log-rotation", "--log-outputs=stderr,a.log"}, ""},
		{[]string{"--log-outputs=a.log,b.log,stdout"}, ""},
		// Without rotation, its config is not read.
		{[]string{"--log-outputs=a.log", "--log-rotation-config-json={bad"}, ""},
	} {
		c := Default()
		fs := flagSet(&c)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("%s: %v", tc.args, err)
		}
		if err := c.ResolveFlags(fs); err != nil {
			t.Fatal(err)
		}
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%s: err %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestLogOutputsFiles: every output of the list gets each line; a file
// is appended to; 'default' and 'stderr' are one output.
func TestLogOutputsFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	if err := os.WriteFile(a, []byte("before\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Default()
	c.LogOutputs = []string{a, "stderr", b, "stdout"}
	var stdout, stderr strings.Builder
	w, closer, err := c.OpenLogOutputs(&stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	logger, err := NewLogger(w, "info", "")
	if err != nil {
		t.Fatal(err)
	}
	logger.Info("hello outputs")
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]string{"a": read(t, a), "b": read(t, b), "stdout": stdout.String(), "stderr": stderr.String()} {
		if strings.Count(got, `"msg":"hello outputs"`) != 1 {
			t.Errorf("%s: %q", name, got)
		}
	}
	if !strings.HasPrefix(read(t, a), "before\n") {
		t.Errorf("a.log not appended to: %q", read(t, a))
	}

	c.LogOutputs = []string{filepath.Join(dir, "missing", "c.log")}
	if _, _, err := c.OpenLogOutputs(&stdout, &stderr); err == nil || !strings.HasPrefix(err.Error(), `open sink "`+dir) {
		t.Errorf("missing directory: %v", err)
	}
}

// TestLogRotation: with --enable-log-rotation the file rolls over at
// maxsize (MB) and keeps maxbackups old files, as lumberjack does in etcd.
func TestLogRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "troupe.log")
	c := Default()
	c.LogOutputs = []string{path}
	c.EnableLogRotation = true
	c.LogRotationConfigJSON = `{"maxsize": 1, "maxbackups": 1}`
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	w, closer, err := c.OpenLogOutputs(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 1023) + "\n")
	for range 3 * 1024 { // 3 MiB in 1 KiB lines: two rotations
		if _, err := w.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	// lumberjack removes backups beyond maxbackups in its own goroutine
	// after a rotation: count what rotation made, not what is left.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var backups int
	for _, e := range entries {
		if e.Name() != "troupe.log" && strings.HasPrefix(e.Name(), "troupe-") && strings.HasSuffix(e.Name(), ".log") {
			backups++
		}
	}
	if st, err := os.Stat(path); err != nil || st.Size() > 1<<20 || backups == 0 {
		t.Fatalf("after 3 MiB with maxsize 1: current %v (%v), %d backups", st, err, backups)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
