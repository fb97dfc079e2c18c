package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// CompareConfig is one `troupe bench compare` run.
type CompareConfig struct {
	A, B     string // command templates (see ResolveServer)
	AName    string // labels in the report: the presets' names or "A", "B"
	BName    string
	Members  int
	Rounds   int
	Order    string // "abba" (A B B A A B ...) or "abab"
	TLS      bool   // client and peer mTLS with certificates made for the run
	DataRoot string // where each start's data dirs go (on a real disk)
	OutDir   string // when set, each run's JSON and SVG and the summary go here

	StartTimeout time.Duration
	Workload     Config // its endpoints, server pids and, with TLS, security are set per run

	Log io.Writer // a line per start and run; nil: none
}

// RunResult is one server's run in one round.
type RunResult struct {
	Round  int     `json:"round"`
	Server string  `json:"server"` // "A" or "B"
	Result *Result `json:"result"`
}

// Figures are the compared measures of one run, or medians of them.
type Figures struct {
	Throughput float64       `json:"ops_per_sec"`
	P99        time.Duration `json:"p99_ns"`
	// CPUPerOp is all members' CPU time over the run's operations.
	CPUPerOp time.Duration `json:"cpu_per_op_ns"`
	// PeakRSS is the largest member's peak RSS; RSSGrowth the largest
	// member's RSS after the run less before it.
	PeakRSS   int64 `json:"peak_rss_bytes"`
	RSSGrowth int64 `json:"rss_growth_bytes"`
	Errors    int64 `json:"errors"`
}

// Comparison is the report of a compare run (--json prints it).
type Comparison struct {
	A       string      `json:"a"`
	B       string      `json:"b"`
	AName   string      `json:"a_name"`
	BName   string      `json:"b_name"`
	Members int         `json:"members"`
	Rounds  int         `json:"rounds"`
	Order   string      `json:"order"`
	TLS     bool        `json:"tls"`
	Runs    []RunResult `json:"runs"`
	MedianA Figures     `json:"median_a"`
	MedianB Figures     `json:"median_b"`
	// RatioAOverB is each median of A divided by B's: throughput > 1
	// means A is faster; p99, CPU per op, peak RSS and RSS growth < 1
	// mean A is lower.
	RatioAOverB map[string]float64 `json:"ratio_a_over_b"`
}

// FiguresOf picks the compared measures from a run's result.
func FiguresOf(r *Result) Figures {
	f := Figures{Throughput: r.Throughput, P99: r.Latency.P99, Errors: r.Errors}
	var cpu time.Duration
	for _, s := range r.Servers {
		cpu += s.CPU
		f.PeakRSS = max(f.PeakRSS, s.PeakRSS)
		f.RSSGrowth = max(f.RSSGrowth, s.RSSAfter-s.RSSBefore)
	}
	if r.Ops > 0 {
		f.CPUPerOp = cpu / time.Duration(r.Ops)
	}
	return f
}

// order lists which server runs at each step of round i (from 0).
func order(kind string, round int) []string {
	if kind == "abba" && round%2 == 1 {
		return []string{"B", "A"}
	}
	return []string{"A", "B"}
}

// Compare runs the rounds and reports them.
func Compare(ctx context.Context, cc CompareConfig) (*Comparison, error) {
	if cc.Members != 1 && cc.Members != 3 {
		return nil, fmt.Errorf("--members must be 1 or 3, got %d", cc.Members)
	}
	if cc.Rounds < 1 {
		return nil, fmt.Errorf("--rounds must be at least 1, got %d", cc.Rounds)
	}
	if cc.Order != "abba" && cc.Order != "abab" {
		return nil, fmt.Errorf("--order must be abba or abab, got %q", cc.Order)
	}
	wl := cc.Workload
	wl.Endpoints = []string{"127.0.0.1:1"} // set per run; here only to validate the rest
	if err := wl.Validate(); err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp(cc.DataRoot, "troupe-bench-compare-")
	if err != nil {
		return nil, fmt.Errorf("--data-root: %w", err)
	}
	defer os.RemoveAll(root)
	if onTmpfs(root) {
		cc.logf("warning: --data-root %s is tmpfs, where fsync costs nothing: the figures flatter both servers; give a directory on a disk", root)
	}
	var certs *certFiles
	if cc.TLS {
		if certs, err = makeCerts(root); err != nil {
			return nil, err
		}
		wl.Security = Security{CACert: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey}
	}
	if cc.OutDir != "" {
		if err := os.MkdirAll(cc.OutDir, 0o755); err != nil {
			return nil, fmt.Errorf("--out: %w", err)
		}
	}
	cmp := &Comparison{A: cc.A, B: cc.B, AName: cc.AName, BName: cc.BName, Members: cc.Members,
		Rounds: cc.Rounds, Order: cc.Order, TLS: cc.TLS}
	for round := range cc.Rounds {
		for _, side := range order(cc.Order, round) {
			tmpl := map[string]string{"A": cc.A, "B": cc.B}[side]
			r, err := cc.runOnce(ctx, tmpl, side, round, root, certs, wl)
			if err != nil {
				return cmp, fmt.Errorf("round %d, %s: %w", round+1, side, err)
			}
			cmp.Runs = append(cmp.Runs, RunResult{Round: round + 1, Server: side, Result: r})
		}
	}
	cmp.summarise()
	if cc.OutDir != "" {
		if err := cmp.writeOut(cc.OutDir); err != nil {
			return cmp, err
		}
	}
	return cmp, nil
}

func (cc *CompareConfig) runOnce(ctx context.Context, tmpl, side string, round int, root string, certs *certFiles, wl Config) (*Result, error) {
	dir := filepath.Join(root, fmt.Sprintf("round%d-%s", round+1, side))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cc.logf("round %d: starting %s (%d member(s))", round+1, side, cc.Members)
	c, err := startCluster(ctx, tmpl, cc.Members, dir, certs, wl.Security, cc.StartTimeout)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	wl.Endpoints = c.endpoints
	wl.ServerPIDs = c.pids()
	r, err := Run(ctx, wl)
	if err != nil {
		return r, fmt.Errorf("%s (member logs: %s): %w", wl.Workload, strings.Join(c.logs, ", "), err)
	}
	f := FiguresOf(r)
	cc.logf("round %d: %s %.0f ops/s, p99 %s, cpu/op %s, peak RSS %.1f MiB", round+1, side, f.Throughput,
		fmtDur(f.P99), fmtDur(f.CPUPerOp), mib(f.PeakRSS))
	if cc.OutDir != "" {
		base := filepath.Join(cc.OutDir, fmt.Sprintf("round%d-%s", round+1, side))
		if err := os.WriteFile(base+".svg", r.SVG(), 0o644); err != nil {
			return r, err
		}
		b, _ := json.Marshal(r)
		if err := os.WriteFile(base+".json", append(b, '\n'), 0o644); err != nil {
			return r, err
		}
	}
	return r, nil
}

// tmpfsMagic is tmpfs's f_type in statfs(2).
const tmpfsMagic = 0x01021994

func onTmpfs(dir string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && st.Type == tmpfsMagic
}

func (cc *CompareConfig) logf(format string, args ...any) {
	if cc.Log != nil {
		fmt.Fprintf(cc.Log, format+"\n", args...)
	}
}

// summarise computes the medians of each side and their ratios.
func (c *Comparison) summarise() {
	var a, b []Figures
	for _, r := range c.Runs {
		if r.Server == "A" {
			a = append(a, FiguresOf(r.Result))
		} else {
			b = append(b, FiguresOf(r.Result))
		}
	}
	c.MedianA, c.MedianB = medianFigures(a), medianFigures(b)
	ratio := func(x, y float64) float64 {
		if y == 0 {
			return 0
		}
		return x / y
	}
	c.RatioAOverB = map[string]float64{
		"ops_per_sec": ratio(c.MedianA.Throughput, c.MedianB.Throughput),
		"p99":         ratio(float64(c.MedianA.P99), float64(c.MedianB.P99)),
		"cpu_per_op":  ratio(float64(c.MedianA.CPUPerOp), float64(c.MedianB.CPUPerOp)),
		"peak_rss":    ratio(float64(c.MedianA.PeakRSS), float64(c.MedianB.PeakRSS)),
		"rss_growth":  ratio(float64(c.MedianA.RSSGrowth), float64(c.MedianB.RSSGrowth)),
	}
}

// Median returns the median of xs (the mean of the middle two for an even
// count); 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianFigures(fs []Figures) Figures {
	pick := func(get func(Figures) float64) float64 {
		xs := make([]float64, len(fs))
		for i, f := range fs {
			xs[i] = get(f)
		}
		return Median(xs)
	}
	return Figures{
		Throughput: pick(func(f Figures) float64 { return f.Throughput }),
		P99:        time.Duration(pick(func(f Figures) float64 { return float64(f.P99) })),
		CPUPerOp:   time.Duration(pick(func(f Figures) float64 { return float64(f.CPUPerOp) })),
		PeakRSS:    int64(pick(func(f Figures) float64 { return float64(f.PeakRSS) })),
		RSSGrowth:  int64(pick(func(f Figures) float64 { return float64(f.RSSGrowth) })),
		Errors:     int64(pick(func(f Figures) float64 { return float64(f.Errors) })),
	}
}

// WriteJSON writes c as one JSON object.
func (c *Comparison) WriteJSON(w io.Writer) error { return json.NewEncoder(w).Encode(c) }

// WriteText writes the per-round figures, the medians and the ratios.
func (c *Comparison) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nA = %s: %s\nB = %s: %s\n", c.AName, c.A, c.BName, c.B)
	fmt.Fprintf(&b, "members %d, rounds %d (%s), tls %v\n\n", c.Members, c.Rounds, strings.ToUpper(c.Order), c.TLS)
	fmt.Fprintf(&b, "%-10s %-6s %12s %10s %10s %12s %12s %7s\n", "round", "server", "ops/s", "p99", "cpu/op", "peak RSS", "RSS growth", "errors")
	row := func(label, side string, f Figures) {
		fmt.Fprintf(&b, "%-10s %-6s %12.1f %10s %10s %8.1f MiB %+8.1f MiB %7d\n", label, side, f.Throughput,
			fmtDur(f.P99), fmtDur(f.CPUPerOp), mib(f.PeakRSS), mib(f.RSSGrowth), f.Errors)
	}
	for _, r := range c.Runs {
		row(fmt.Sprint(r.Round), r.Server, FiguresOf(r.Result))
	}
	row("median", "A", c.MedianA)
	row("median", "B", c.MedianB)
	fmt.Fprintf(&b, "%-10s %-6s %11.2fx %9.2fx %9.2fx %11.2fx %11.2fx\n", "ratio", "A/B", c.RatioAOverB["ops_per_sec"],
		c.RatioAOverB["p99"], c.RatioAOverB["cpu_per_op"], c.RatioAOverB["peak_rss"], c.RatioAOverB["rss_growth"])
	b.WriteString("\nratio A/B: throughput above 1 means A is faster; p99, cpu/op (all members) and peak RSS\n" +
		"(largest member) below 1 mean A uses less.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func (c *Comparison) writeOut(dir string) error {
	var txt strings.Builder
	_ = c.WriteText(&txt)
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return errors.Join(
		os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(txt.String()), 0o644),
		os.WriteFile(filepath.Join(dir, "summary.json"), append(b, '\n'), 0o644))
}
