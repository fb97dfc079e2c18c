package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Result is one run's report. Its JSON form (--json) is the contract for
// scripts: every duration is in nanoseconds (names end in _ns), every size
// in bytes (_bytes).
type Result struct {
	Workload  string   `json:"workload"`
	Endpoints []string `json:"endpoints"`
	Clients   int      `json:"clients"`
	Conns     int      `json:"conns"`
	KeySize   int      `json:"key_size"`
	ValSize   int      `json:"val_size"`
	KeySpace  int      `json:"key_space"`
	Rate      float64  `json:"rate"`

	// Ops counts the successful operations of the measured phase: requests,
	// or for watch-latency the events seen by all watchers; Errors the
	// failed ones, by message in ErrorsByMessage.
	Ops             int64            `json:"ops"`
	Errors          int64            `json:"errors"`
	ErrorsByMessage map[string]int64 `json:"errors_by_message,omitempty"`
	Elapsed         time.Duration    `json:"elapsed_ns"`
	Throughput      float64          `json:"ops_per_sec"`

	Latency   Latency  `json:"latency"`
	Histogram []Bucket `json:"histogram"`
	// Timeline is the operations completed in each second of the phase.
	Timeline []int64 `json:"timeline_ops_per_sec"`

	// Servers are the --server-pid processes, in the order given.
	Servers []Server `json:"servers,omitempty"`
	// Notes are workload-specific facts (puts made, bytes ranged, calls
	// abandoned), as "name": number.
	Notes map[string]float64 `json:"notes,omitempty"`

	hist *Histogram
}

// Latency summarises the distribution of the successful operations.
type Latency struct {
	Min    time.Duration `json:"min_ns"`
	Mean   time.Duration `json:"mean_ns"`
	StdDev time.Duration `json:"stddev_ns"`
	P50    time.Duration `json:"p50_ns"`
	P90    time.Duration `json:"p90_ns"`
	P99    time.Duration `json:"p99_ns"`
	P999   time.Duration `json:"p999_ns"`
	Max    time.Duration `json:"max_ns"`
}

// histogramBars is how many bars the text and JSON histograms have, as
// etcd's benchmark.
const histogramBars = 10

func newResult(cfg *Config, p *phaseResult, ops int64) *Result {
	r := &Result{
		Workload: cfg.Workload, Endpoints: cfg.Endpoints, Clients: cfg.Clients, Conns: cfg.Conns,
		KeySize: cfg.KeySize, ValSize: cfg.ValSize, KeySpace: cfg.KeySpace, Rate: cfg.Rate,
		Ops: ops, ErrorsByMessage: p.errs, Elapsed: p.elapsed, Timeline: p.timeline, hist: p.hist,
		Notes: map[string]float64{},
	}
	for _, n := range p.errs {
		r.Errors += n
	}
	if p.elapsed > 0 {
		r.Throughput = float64(ops) / p.elapsed.Seconds()
	}
	h := p.hist
	r.Latency = Latency{
		Min: h.Min(), Mean: h.Mean(), StdDev: h.StdDev(), P50: h.Quantile(0.5), P90: h.Quantile(0.9),
		P99: h.Quantile(0.99), P999: h.Quantile(0.999), Max: h.Max(),
	}
	r.Histogram = h.Buckets(histogramBars)
	return r
}

// WriteJSON writes r as one JSON object and a newline.
func (r *Result) WriteJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(r)
}

// WriteText writes r as etcd's benchmark prints its report, with the
// servers' figures after it.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nSummary (%s):\n", r.Workload)
	fmt.Fprintf(&b, "  Total:\t%.4f secs.\n", r.Elapsed.Seconds())
	fmt.Fprintf(&b, "  Slowest:\t%.4f secs.\n", r.Latency.Max.Seconds())
	fmt.Fprintf(&b, "  Fastest:\t%.4f secs.\n", r.Latency.Min.Seconds())
	fmt.Fprintf(&b, "  Average:\t%.4f secs.\n", r.Latency.Mean.Seconds())
	fmt.Fprintf(&b, "  Stddev:\t%.4f secs.\n", r.Latency.StdDev.Seconds())
	fmt.Fprintf(&b, "  Requests/sec:\t%.4f\n", r.Throughput)
	if len(r.Histogram) > 0 {
		b.WriteString("\nResponse time histogram:\n")
		var most int64
		for _, bar := range r.Histogram {
			most = max(most, bar.Count)
		}
		for _, bar := range r.Histogram {
			marks := 0
			if most > 0 {
				marks = int(bar.Count * 40 / most)
			}
			fmt.Fprintf(&b, "  %.4f [%d]\t|%s\n", bar.Upper.Seconds(), bar.Count, strings.Repeat("∎", marks))
		}
		b.WriteString("\nLatency distribution:\n")
		for _, q := range []float64{0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 0.999} {
			fmt.Fprintf(&b, "  %s%% in %.4f secs.\n", trimFloat(q*100), r.hist.Quantile(q).Seconds())
		}
		fmt.Fprintf(&b, "  max in %.4f secs.\n", r.Latency.Max.Seconds())
	}
	if r.Errors > 0 {
		fmt.Fprintf(&b, "\nError distribution:\n")
		for _, msg := range slices.Sorted(maps.Keys(r.ErrorsByMessage)) {
			fmt.Fprintf(&b, "  [%d]\t%s\n", r.ErrorsByMessage[msg], msg)
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes:\n")
		for _, k := range slices.Sorted(maps.Keys(r.Notes)) {
			fmt.Fprintf(&b, "  %s:\t%s\n", k, trimFloat(r.Notes[k]))
		}
	}
	if len(r.Servers) > 0 {
		b.WriteString("\nServers (during the measured phase):\n")
		for _, s := range r.Servers {
			peak := ""
			if s.PeakSinceStart {
				peak = " (since the process started)"
			}
			fmt.Fprintf(&b, "  pid %d: cpu %.3fs, %.1f µs/op, peak RSS %.1f MiB%s, RSS %.1f -> %.1f MiB\n",
				s.PID, s.CPU.Seconds(), float64(s.CPUPerOp)/1e3, mib(s.PeakRSS), peak, mib(s.RSSBefore), mib(s.RSSAfter))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.3f", f)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
