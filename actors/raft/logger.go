package raft

import (
	"fmt"
	"log/slog"
)

// raftLogger plugs raft's Logger into slog. raft logs elections at Info;
// its Debug chatter stays at Debug.
type raftLogger struct{ l *slog.Logger }

func (g raftLogger) Debug(v ...any)                 { g.l.Debug(fmt.Sprint(v...)) }
func (g raftLogger) Debugf(format string, v ...any) { g.l.Debug(fmt.Sprintf(format, v...)) }
func (g raftLogger) Info(v ...any)                  { g.l.Info(fmt.Sprint(v...)) }
func (g raftLogger) Infof(format string, v ...any)  { g.l.Info(fmt.Sprintf(format, v...)) }
func (g raftLogger) Warning(v ...any)               { g.l.Warn(fmt.Sprint(v...)) }
func (g raftLogger) Warningf(format string, v ...any) {
	g.l.Warn(fmt.Sprintf(format, v...))
}
func (g raftLogger) Error(v ...any)                 { g.l.Error(fmt.Sprint(v...)) }
func (g raftLogger) Errorf(format string, v ...any) { g.l.Error(fmt.Sprintf(format, v...)) }

// Fatal and Panic mark broken invariants inside raft: panic, and let the
// supervisor restart the core from disk.
func (g raftLogger) Fatal(v ...any) { g.Panic(v...) }
func (g raftLogger) Fatalf(format string, v ...any) {
	g.Panicf(format, v...)
}
func (g raftLogger) Panic(v ...any) {
	s := fmt.Sprint(v...)
	g.l.Error(s)
	panic(s)
}
func (g raftLogger) Panicf(format string, v ...any) {
	s := fmt.Sprintf(format, v...)
	g.l.Error(s)
	panic(s)
}
