package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// Proc is one reading of a process from /proc (Linux).
type Proc struct {
	CPU     time.Duration // user + system time since it started
	RSS     int64         // VmRSS, bytes
	PeakRSS int64         // VmHWM, bytes: the peak since start or the last ResetPeak
}

// ReadProc reads pid's CPU time and memory from /proc.
func ReadProc(pid int) (Proc, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Proc{}, err
	}
	// The command name (field 2) may hold spaces; the fields after its
	// closing parenthesis start with field 3 (state).
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return Proc{}, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return Proc{}, fmt.Errorf("bad /proc/%d/stat: %q", pid, rest)
	}
	p := Proc{CPU: time.Duration(utime+stime) * clockTick}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Proc{}, err
	}
	p.RSS = statusKiB(status, "VmRSS:") * 1024
	p.PeakRSS = statusKiB(status, "VmHWM:") * 1024
	return p, nil
}

// readProc is ReadProc for a process the user named with --server-pid.
func readProc(pid int) (Proc, error) {
	p, err := ReadProc(pid)
	if err != nil {
		return Proc{}, fmt.Errorf("--server-pid %d: %w", pid, err)
	}
	return p, nil
}

// StatusBytes reads one size field of /proc/pid/status ("VmRSS:",
// "RssAnon:", ...) in bytes; 0 when the field is absent.
func StatusBytes(pid int, field string) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return statusKiB(status, field) * 1024, nil
}

// statusKiB returns a "Name:   123 kB" line's number, 0 when absent.
func statusKiB(status []byte, field string) int64 {
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// ResetPeak restarts pid's VmHWM from its current RSS (clear_refs 5, Linux
// 4.0+), so the peak read after a run is that run's. It needs to own the
// process or be root; when it cannot, the peak is the process's since it
// started.
func ResetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// Server is what a run read of one server process.
type Server struct {
	PID int `json:"pid"`
	// CPU is the user+system time the process used during the measured
	// phase, and CPUPerOp that divided by the phase's operations.
	CPU      time.Duration `json:"cpu_ns"`
	CPUPerOp time.Duration `json:"cpu_per_op_ns"`
	// PeakRSS is VmHWM after the phase; PeakSinceStart says the peak
	// could not be reset before it, so it covers the process's life.
	PeakRSS        int64 `json:"peak_rss_bytes"`
	PeakSinceStart bool  `json:"peak_since_start,omitempty"`
	// RSSBefore and RSSAfter are VmRSS before and after the phase.
	RSSBefore int64 `json:"rss_before_bytes"`
	RSSAfter  int64 `json:"rss_after_bytes"`
}

// serverWatch holds the before-readings of the server processes.
type serverWatch struct {
	pids   []int
	before []Proc
	reset  []bool
}

// startServerWatch reads the processes before a phase and resets their
// peaks.
func startServerWatch(pids []int) (*serverWatch, error) {
	w := &serverWatch{pids: pids}
	for _, pid := range pids {
		s, err := readProc(pid)
		if err != nil {
			return nil, err
		}
		w.before = append(w.before, s)
		w.reset = append(w.reset, ResetPeak(pid) == nil)
	}
	return w, nil
}

// finish reads the processes after a phase of ops operations.
func (w *serverWatch) finish(ops int64) ([]Server, error) {
	out := make([]Server, 0, len(w.pids))
	for i, pid := range w.pids {
		s, err := readProc(pid)
		if err != nil {
			return nil, err
		}
		srv := Server{
			PID: pid, CPU: s.CPU - w.before[i].CPU, PeakRSS: s.PeakRSS, PeakSinceStart: !w.reset[i],
			RSSBefore: w.before[i].RSS, RSSAfter: s.RSS,
		}
		if ops > 0 {
			srv.CPUPerOp = srv.CPU / time.Duration(ops)
		}
		out = append(out, srv)
	}
	return out, nil
}
