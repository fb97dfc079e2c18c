package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func sampleResult() *Result {
	p := &phaseResult{hist: NewHistogram(), errs: map[string]int64{"etcdserver: request timed out": 2},
		elapsed: 2 * time.Second, timeline: []int64{600, 400}}
	for i := range 1000 {
		p.hist.Record(time.Duration(i+1) * 10 * time.Microsecond)
	}
	cfg := Defaults()
	cfg.Workload = Put
	r := newResult(&cfg, p, p.hist.Count())
	r.Servers = []Server{{PID: 42, CPU: time.Second, CPUPerOp: time.Millisecond, PeakRSS: 64 << 20, RSSBefore: 10 << 20, RSSAfter: 20 << 20}}
	return r
}

// TestResultJSONShape pins the --json fields BENCHMARKS.md documents:
// scripts read them.
func TestResultJSONShape(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleResult().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"workload", "endpoints", "clients", "conns", "key_size", "val_size", "key_space", "rate",
		"ops", "errors", "errors_by_message", "elapsed_ns", "ops_per_sec", "latency", "histogram",
		"timeline_ops_per_sec", "servers"}
	if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("fields %v, want %v", got, slices.Sorted(slices.Values(want)))
	}
	lat := m["latency"].(map[string]any)
	for _, k := range []string{"min_ns", "mean_ns", "stddev_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"} {
		if _, ok := lat[k].(float64); !ok {
			t.Errorf("latency.%s missing or not a number: %v", k, lat[k])
		}
	}
	if p99 := time.Duration(lat["p99_ns"].(float64)); !within(p99, 9900*time.Microsecond) {
		t.Errorf("p99 %v, want 9.9ms", p99)
	}
	if m["ops"].(float64) != 1000 || m["errors"].(float64) != 2 || m["ops_per_sec"].(float64) != 500 {
		t.Errorf("ops %v errors %v ops/s %v, want 1000, 2, 500", m["ops"], m["errors"], m["ops_per_sec"])
	}
	bars := m["histogram"].([]any)
	if len(bars) != histogramBars {
		t.Errorf("%d histogram bars, want %d", len(bars), histogramBars)
	}
	if _, ok := bars[0].(map[string]any)["upper_ns"]; !ok {
		t.Errorf("histogram bar %v lacks upper_ns", bars[0])
	}
	srv := m["servers"].([]any)[0].(map[string]any)
	for _, k := range []string{"pid", "cpu_ns", "cpu_per_op_ns", "peak_rss_bytes", "rss_before_bytes", "rss_after_bytes"} {
		if _, ok := srv[k]; !ok {
			t.Errorf("servers[0] lacks %s: %v", k, srv)
		}
	}
}

func TestResultTextAsEtcdBenchmark(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleResult().WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"Summary (put):", "Requests/sec:\t500.0000", "Response time histogram:",
		"99% in 0.0099 secs.", "99.9% in 0.0100 secs.", "max in 0.0100 secs.", "[2]\tetcdserver: request timed out",
		"pid 42: cpu 1.000s, 1000.0 µs/op, peak RSS 64.0 MiB, RSS 10.0 -> 20.0 MiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestSVGIsWellFormed parses the plot as XML and looks for both panels.
func TestSVGIsWellFormed(t *testing.T) {
	svg := sampleResult().SVG()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	elems := map[string]int{}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok {
			elems[se.Name.Local]++
		}
	}
	if elems["svg"] != 1 || elems["polyline"] != 1 || elems["rect"] < 2 {
		t.Errorf("elements %v: want one svg, one throughput polyline and latency bars", elems)
	}
	for _, want := range []string{"p99 ", "latency (log scale)", "seconds since the start"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("plot lacks %q", want)
		}
	}
}

func TestValidateNamesTheFlag(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Workload = "get" }, "unknown workload"},
		{func(c *Config) { c.Clients = 0 }, "--clients"},
		{func(c *Config) { c.Duration = time.Second }, "one of --total and --duration"},
		{func(c *Config) { c.Consistency = "x" }, "--consistency"},
		{func(c *Config) { c.KeySize, c.KeySpace = 1, 1000 }, "--key-space 1000 needs keys longer"},
		{func(c *Config) { c.Workload, c.TxnOps = TxnPut, 2 }, "--txn-ops 2 needs --key-space"},
		{func(c *Config) { c.Workload, c.ValSize = WatchLatency, 4 }, "--val-size must be at least 8"},
		{func(c *Config) { c.Workload, c.Streams = WatchLatency, 200 }, "--streams"},
		{func(c *Config) { c.Workload, c.AbandonWatches, c.AbandonRanges = Abandon, 0, 0 }, "--watches plus --ranges"},
		{func(c *Config) { c.Workload, c.AbandonEnd = Abandon, "kill" }, "--end must be none, cancel or close"},
	} {
		c := Defaults()
		c.Workload = Put
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one containing %q", err, tc.want)
		}
	}
	c := Defaults()
	c.Workload = Put
	if err := c.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestKeysAreDistinctWithinTheKeySpace(t *testing.T) {
	k := make([]byte, 8)
	seen := map[string]bool{}
	for n := range 100000 {
		key := keyOf(k, n)
		if len(key) != 8 || seen[key] {
			t.Fatalf("key %d: %q (len %d, seen before %v)", n, key, len(key), seen[key])
		}
		seen[key] = true
	}
}

func TestReadProcOfThisProcess(t *testing.T) {
	before, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	x := 0
	for after := before; after.CPU <= before.CPU && time.Now().Before(deadline); after, _ = readProc(os.Getpid()) {
		for i := range 1_000_000 {
			x += i
		}
	}
	after, _ := readProc(os.Getpid())
	if after.CPU <= before.CPU {
		t.Errorf("cpu time did not grow (%v -> %v) after spinning", before.CPU, after.CPU)
	}
	if after.RSS <= 0 || after.PeakRSS < after.RSS {
		t.Errorf("rss %d, hwm %d: want 0 < rss <= hwm", after.RSS, after.PeakRSS)
	}
	if _, err := readProc(1 << 30); err == nil || !strings.Contains(err.Error(), "--server-pid") {
		t.Errorf("a missing process: error %v, want one naming --server-pid", err)
	}
	_ = x
}
