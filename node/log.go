package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lmittmann/tint"
	"go.etcd.io/raft/v3"
	"golang.org/x/term"
)

// Log formats accepted by --log-format.
const (
	LogFormatAuto = ""     // tint text on a terminal, JSON otherwise
	LogFormatText = "text" // tint text, colour only on a terminal
	LogFormatJSON = "json" // one JSON object per line (journald, log shippers)
	// LogFormatConsole is etcd's name for its human-readable format;
	// troupe writes tint text for it.
	LogFormatConsole = "console"
)

// ParseLogLevel maps a --log-level value to a slog level. It accepts etcd's
// names debug, info, warn and error (case-insensitive).
func ParseLogLevel(level string) (slog.Level, error) {
	switch strings.ToLower(level) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	case "panic", "fatal":
		// etcd's levels above error: only the messages that end the
		// process, which troupe logs at error, so nothing passes below.
		return slog.LevelError + 4, nil
	}
	return 0, fmt.Errorf("--log-level %q is not one of debug, info, warn, error, panic, fatal", level)
}

func checkLogFormat(format string) error {
	switch format {
	case LogFormatAuto, LogFormatText, LogFormatJSON, LogFormatConsole:
		return nil
	}
	return fmt.Errorf("--log-format %q is not one of json, console (or text), or empty for automatic (text on a terminal, json otherwise)", format)
}

// NewLogger returns a logger writing to w at level (see ParseLogLevel) in
// format: "text" (tint), "json", or "" to pick tint when w is a terminal and
// JSON otherwise, so that journald and log shippers get structured lines.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	lvl, err := ParseLogLevel(level)
	if err != nil {
		return nil, err
	}
	if err := checkLogFormat(format); err != nil {
		return nil, err
	}
	tty := isTerminal(w)
	if format == LogFormatJSON || (format == LogFormatAuto && !tty) {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl})), nil
	}
	return slog.New(tint.NewTextHandler(w, &tint.Options{
		Level:      lvl,
		TimeFormat: time.StampMilli,
		NoColor:    !tty,
	})), nil
}

// isTerminal reports whether w is a file descriptor attached to a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// RaftLogger adapts l to raft's Logger interface. raft's Warning maps to
// slog's Warn; Fatal logs at Error and exits the process with status 1;
// Panic, which raft uses for broken invariants, logs at Error and panics
// with the same message so that a supervisor sees it.
func RaftLogger(l *slog.Logger) raft.Logger {
	return &raftLogger{l: l, exit: os.Exit}
}

type raftLogger struct {
	l    *slog.Logger
	exit func(int) // os.Exit; replaced in tests
}

func (r *raftLogger) log(level slog.Level, msg func() string) {
	ctx := context.Background()
	if !r.l.Enabled(ctx, level) {
		return // raft logs a lot at debug: do not format what is dropped
	}
	r.l.Log(ctx, level, msg())
}

func sprint(v []any) func() string { return func() string { return fmt.Sprint(v...) } }

func sprintf(format string, v []any) func() string {
	return func() string { return fmt.Sprintf(format, v...) }
}

func (r *raftLogger) Debug(v ...any)                 { r.log(slog.LevelDebug, sprint(v)) }
func (r *raftLogger) Debugf(format string, v ...any) { r.log(slog.LevelDebug, sprintf(format, v)) }
func (r *raftLogger) Info(v ...any)                  { r.log(slog.LevelInfo, sprint(v)) }
func (r *raftLogger) Infof(format string, v ...any)  { r.log(slog.LevelInfo, sprintf(format, v)) }
func (r *raftLogger) Warning(v ...any)               { r.log(slog.LevelWarn, sprint(v)) }
func (r *raftLogger) Warningf(format string, v ...any) {
	r.log(slog.LevelWarn, sprintf(format, v))
}
func (r *raftLogger) Error(v ...any)                 { r.log(slog.LevelError, sprint(v)) }
func (r *raftLogger) Errorf(format string, v ...any) { r.log(slog.LevelError, sprintf(format, v)) }

func (r *raftLogger) Fatal(v ...any) { r.fatal(fmt.Sprint(v...)) }
func (r *raftLogger) Fatalf(format string, v ...any) {
	r.fatal(fmt.Sprintf(format, v...))
}

func (r *raftLogger) fatal(msg string) {
	r.l.Error(msg, "fatal", true)
	r.exit(1)
}

func (r *raftLogger) Panic(v ...any) { r.panic(fmt.Sprint(v...)) }
func (r *raftLogger) Panicf(format string, v ...any) {
	r.panic(fmt.Sprintf(format, v...))
}

func (r *raftLogger) panic(msg string) {
	r.l.Error(msg, "panic", true)
	panic(msg)
}
