package node

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestNewLoggerFormats(t *testing.T) {
	for _, tc := range []struct {
		format   string
		wantJSON bool
	}{
		{LogFormatAuto, true}, // a bytes.Buffer is not a terminal
		{LogFormatJSON, true},
		{LogFormatText, false},
	} {
		var buf bytes.Buffer
		l, err := NewLogger(&buf, "info", tc.format)
		if err != nil {
			t.Fatalf("format %q: %v", tc.format, err)
		}
		l.Info("hello", "k", 1)
		var m map[string]any
		isJSON := json.Unmarshal(buf.Bytes(), &m) == nil
		if isJSON != tc.wantJSON {
			t.Errorf("format %q: json=%v, want %v: %q", tc.format, isJSON, tc.wantJSON, buf.String())
		}
		if !strings.Contains(buf.String(), "hello") {
			t.Errorf("format %q: message missing: %q", tc.format, buf.String())
		}
		if tc.format == LogFormatText && strings.Contains(buf.String(), "\x1b[") {
			t.Errorf("text to a non-terminal has colour escapes: %q", buf.String())
		}
	}
}

func TestNewLoggerLevel(t *testing.T) {
	var buf bytes.Buffer
	l, err := NewLogger(&buf, "WARN", LogFormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("dropped")
	l.Warn("kept")
	if strings.Contains(buf.String(), "dropped") || !strings.Contains(buf.String(), "kept") {
		t.Fatalf("level warn: got %q", buf.String())
	}
}

func TestNewLoggerErrors(t *testing.T) {
	if _, err := NewLogger(&bytes.Buffer{}, "verbose", ""); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Errorf("bad level: err = %v, want one naming --log-level", err)
	}
	if _, err := NewLogger(&bytes.Buffer{}, "info", "xml"); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("bad format: err = %v, want one naming --log-format", err)
	}
}

func newJSONLogger(buf *bytes.Buffer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: level}))
}

func TestRaftLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	r := RaftLogger(newJSONLogger(&buf, slog.LevelDebug))
	r.Debugf("d %d", 1)
	r.Info("i", 2)
	r.Warningf("w %s", "x")
	r.Errorf("e %v", 3)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, m.Level+":"+m.Msg)
	}
	want := []string{"DEBUG:d 1", "INFO:i2", "WARN:w x", "ERROR:e 3"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestRaftLoggerSkipsDisabled(t *testing.T) {
	var buf bytes.Buffer
	r := RaftLogger(newJSONLogger(&buf, slog.LevelInfo))
	called := false
	r.Debugf("%v", stringerFunc(func() string { called = true; return "x" }))
	if called || buf.Len() != 0 {
		t.Fatalf("debug line formatted or written at info level: %q", buf.String())
	}
}

type stringerFunc func() string

func (f stringerFunc) String() string { return f() }

func TestRaftLoggerPanic(t *testing.T) {
	var buf bytes.Buffer
	r := RaftLogger(newJSONLogger(&buf, slog.LevelInfo))
	defer func() {
		p := recover()
		if p != "broken invariant 7" {
			t.Fatalf("recovered %v, want the message", p)
		}
		if !strings.Contains(buf.String(), "broken invariant 7") {
			t.Fatalf("panic not logged first: %q", buf.String())
		}
	}()
	r.Panicf("broken invariant %d", 7)
}

func TestRaftLoggerFatal(t *testing.T) {
	var buf bytes.Buffer
	r := RaftLogger(newJSONLogger(&buf, slog.LevelInfo)).(*raftLogger)
	code := -1
	r.exit = func(c int) { code = c }
	r.Fatal("disk gone")
	if code != 1 || !strings.Contains(buf.String(), "disk gone") {
		t.Fatalf("exit code %d, log %q", code, buf.String())
	}
}
