//go:build k8s

package k8s

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// opLatency is the apiserver's view of one storage operation: how many
// requests etcd_request_duration_seconds counted and their median.
type opLatency struct {
	op    string
	count uint64
	p50   float64 // seconds
	mean  float64 // seconds; finer than p50, whose buckets are 0-5-25-50 ms
}

// bucket is one cumulative histogram bucket.
type bucket struct {
	upper float64
	count uint64
}

// parseMetrics decodes the Prometheus text format.
func parseMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// storageLatencies merges etcd_request_duration_seconds over its resource
// types, per operation label, and computes each operation's p50.
func storageLatencies(fams map[string]*dto.MetricFamily) []opLatency {
	fam := fams["etcd_request_duration_seconds"]
	if fam == nil {
		return nil
	}
	merged := map[string]map[float64]uint64{}
	sums := map[string]float64{}
	for _, m := range fam.GetMetric() {
		op := label(m, "operation")
		sums[op] += m.GetHistogram().GetSampleSum()
		if merged[op] == nil {
			merged[op] = map[float64]uint64{}
		}
		for _, b := range m.GetHistogram().GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) { // counted below, whether listed or not
				merged[op][b.GetUpperBound()] += b.GetCumulativeCount()
			}
		}
		merged[op][math.Inf(1)] += m.GetHistogram().GetSampleCount()
	}
	var out []opLatency
	for op, byUpper := range merged {
		var bs []bucket
		for u, c := range byUpper {
			bs = append(bs, bucket{u, c})
		}
		slices.SortFunc(bs, func(a, b bucket) int { return cmpFloat(a.upper, b.upper) })
		n := bs[len(bs)-1].count
		out = append(out, opLatency{op: op, count: n, p50: quantile(0.5, bs), mean: sums[op] / float64(max(n, 1))})
	}
	slices.SortFunc(out, func(a, b opLatency) int { return strings.Compare(a.op, b.op) })
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// quantile estimates the q-quantile of cumulative buckets sorted by upper
// bound (the last one +Inf) as Prometheus' histogram_quantile does: linear
// interpolation inside the bucket holding the rank, the lowest bucket
// starting at 0, and the highest finite bound when the rank falls in +Inf.
// NaN if there are no observations.
func quantile(q float64, bs []bucket) float64 {
	if len(bs) == 0 || bs[len(bs)-1].count == 0 {
		return math.NaN()
	}
	rank := q * float64(bs[len(bs)-1].count)
	i, _ := slices.BinarySearchFunc(bs, rank, func(b bucket, r float64) int { return cmpFloat(float64(b.count), r) })
	if i >= len(bs)-1 && math.IsInf(bs[len(bs)-1].upper, 1) {
		if len(bs) < 2 {
			return math.NaN()
		}
		return bs[len(bs)-2].upper
	}
	lower, below := 0.0, uint64(0)
	if i > 0 {
		lower, below = bs[i-1].upper, bs[i-1].count
	}
	inBucket := float64(bs[i].count - below)
	if inBucket == 0 {
		return bs[i].upper
	}
	return lower + (bs[i].upper-lower)*(rank-float64(below))/inBucket
}

// counterSum adds up the values of a counter family whose labels include
// every pair in match.
func counterSum(fams map[string]*dto.MetricFamily, name string, match map[string]string) float64 {
	var sum float64
	fam := fams[name]
	if fam == nil {
		return 0
	}
next:
	for _, m := range fam.GetMetric() {
		for k, v := range match {
			if label(m, k) != v {
				continue next
			}
		}
		sum += m.GetCounter().GetValue()
	}
	return sum
}

func formatLatencies(ls []opLatency) string {
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "    %-24s n=%-6d p50=%6.2fms  mean=%6.2fms\n", l.op, l.count, l.p50*1000, l.mean*1000)
	}
	return b.String()
}

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		name string
		bs   []bucket
		want float64
	}{
		{"first bucket from zero", []bucket{{0.01, 4}, {0.1, 4}, {inf, 4}}, 0.005},
		{"interpolated", []bucket{{0.01, 0}, {0.1, 10}, {inf, 10}}, 0.055},
		{"above the last bound", []bucket{{0.01, 0}, {0.1, 1}, {inf, 10}}, 0.1},
		{"rank on a boundary", []bucket{{0.01, 5}, {0.1, 10}, {inf, 10}}, 0.01},
	} {
		if got := quantile(0.5, tc.bs); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: p50 %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := quantile(0.5, []bucket{{0.1, 0}, {inf, 0}}); !math.IsNaN(got) {
		t.Errorf("no observations: %v, want NaN", got)
	}
}

func TestStorageLatenciesMergesTypes(t *testing.T) {
	text := `# TYPE etcd_request_duration_seconds histogram
etcd_request_duration_seconds_bucket{operation="get",type="a",le="0.01"} 2
etcd_request_duration_seconds_bucket{operation="get",type="a",le="0.1"} 2
etcd_request_duration_seconds_bucket{operation="get",type="a",le="+Inf"} 2
etcd_request_duration_seconds_sum{operation="get",type="a"} 0.01
etcd_request_duration_seconds_count{operation="get",type="a"} 2
etcd_request_duration_seconds_bucket{operation="get",type="b",le="0.01"} 0
etcd_request_duration_seconds_bucket{operation="get",type="b",le="0.1"} 2
etcd_request_duration_seconds_bucket{operation="get",type="b",le="+Inf"} 2
etcd_request_duration_seconds_sum{operation="get",type="b"} 0.1
etcd_request_duration_seconds_count{operation="get",type="b"} 2
`
	fams, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	got := storageLatencies(fams)
	if len(got) != 1 || got[0].op != "get" || got[0].count != 4 || math.Abs(got[0].p50-0.01) > 1e-9 || math.Abs(got[0].mean-0.11/4) > 1e-9 {
		t.Fatalf("latencies %+v, want get n=4 p50=0.01 mean=0.0275", got)
	}
}

func TestTimeoutLinesOutsideOutage(t *testing.T) {
	before := "I ok\nE etcdserver: request timed out\n"
	outage := "W context deadline exceeded\nW dial refused\n"
	after := "E Timeout: Too large resource version: 9, current: 1\nI ok\n"
	r := &run{outageFrom: len(before), outageTo: len(before) + len(outage)}
	log := before + outage + after
	if got := timeoutLines(log); len(got) != 3 {
		t.Fatalf("timeout lines of the whole log: %q, want 3", got)
	}
	got := timeoutLines(r.outsideOutage(log))
	want := []string{"E etcdserver: request timed out", "E Timeout: Too large resource version: 9, current: 1"}
	if !slices.Equal(got, want) {
		t.Fatalf("timeout lines outside the outage: %q, want %q", got, want)
	}
}
