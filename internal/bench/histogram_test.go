package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactQuantile is the nearest-rank quantile of sorted values.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// within says whether got is within the histogram's precision (0.1 % and
// its 1 µs unit) of want.
func within(got, want time.Duration) bool {
	tol := max(time.Duration(float64(want)*0.001), time.Microsecond)
	return got >= want-tol && got <= want+tol
}

func TestHistogramQuantilesMatchSortedValues(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 1ms..10ms", func() time.Duration { return time.Millisecond + time.Duration(rnd.Int64N(int64(9*time.Millisecond))) }},
		{"log-normal around 2ms", func() time.Duration {
			return time.Duration(math.Exp(rnd.NormFloat64()) * float64(2*time.Millisecond))
		}},
		{"bimodal 100µs and 1s", func() time.Duration {
			if rnd.IntN(100) == 0 {
				return time.Second + time.Duration(rnd.Int64N(int64(time.Millisecond)))
			}
			return 100*time.Microsecond + time.Duration(rnd.Int64N(int64(10*time.Microsecond)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHistogram()
			vals := make([]time.Duration, 20000)
			for i := range vals {
				// Whole microseconds: the histogram's unit.
				vals[i] = tc.gen().Truncate(time.Microsecond)
				h.Record(vals[i])
			}
			slices.Sort(vals)
			if h.Count() != int64(len(vals)) {
				t.Fatalf("count %d, want %d", h.Count(), len(vals))
			}
			for _, q := range []float64{0.1, 0.5, 0.9, 0.99, 0.999} {
				if got, want := h.Quantile(q), exactQuantile(vals, q); !within(got, want) {
					t.Errorf("q%v = %v, want %v (±0.1%%)", q, got, want)
				}
			}
			if !within(h.Max(), vals[len(vals)-1]) || !within(h.Min(), vals[0]) {
				t.Errorf("min/max %v/%v, want %v/%v", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
			var sum float64
			for _, v := range vals {
				sum += float64(v)
			}
			if mean := time.Duration(sum / float64(len(vals))); !within(h.Mean(), mean) {
				t.Errorf("mean %v, want %v", h.Mean(), mean)
			}
		})
	}
}

func TestHistogramMergeEqualsOneHistogram(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	all, parts := NewHistogram(), []*Histogram{NewHistogram(), NewHistogram(), NewHistogram()}
	for i := range 30000 {
		d := time.Duration(rnd.Int64N(int64(50 * time.Millisecond)))
		all.Record(d)
		parts[i%3].Record(d)
	}
	merged := NewHistogram()
	for _, p := range parts {
		merged.Merge(p)
	}
	if merged.Count() != all.Count() {
		t.Fatalf("merged count %d, want %d", merged.Count(), all.Count())
	}
	for _, q := range []float64{0, 0.25, 0.5, 0.99, 0.999, 1} {
		if merged.Quantile(q) != all.Quantile(q) {
			t.Errorf("q%v: merged %v, one histogram %v", q, merged.Quantile(q), all.Quantile(q))
		}
	}
}

func TestHistogramClampsOutOfRangeValues(t *testing.T) {
	h := NewHistogram()
	h.Record(0)
	h.Record(-time.Second)
	h.Record(2 * time.Hour)
	if h.Count() != 3 {
		t.Fatalf("count %d, want 3: no value may be lost", h.Count())
	}
	if h.Min() != time.Microsecond || !within(h.Max(), time.Hour) {
		t.Errorf("min %v, max %v; want 1µs and 1h", h.Min(), h.Max())
	}
}

func TestBucketsCoverEveryValueInOrder(t *testing.T) {
	h := NewHistogram()
	for i := range 1000 {
		h.Record(time.Duration(i+1) * time.Millisecond)
	}
	bars := h.Buckets(10)
	if len(bars) != 10 {
		t.Fatalf("%d bars, want 10", len(bars))
	}
	var n int64
	for i, b := range bars {
		n += b.Count
		if i > 0 && b.Upper <= bars[i-1].Upper {
			t.Errorf("bar %d upper %v not above %v", i, b.Upper, bars[i-1].Upper)
		}
		// Equal widths over 1ms..1000ms: about 100 values each.
		if b.Count < 95 || b.Count > 105 {
			t.Errorf("bar %d (%v) has %d values, want about 100", i, b.Upper, b.Count)
		}
	}
	if n != 1000 {
		t.Errorf("bars hold %d values, want 1000", n)
	}
	if bars[9].Upper != h.Max() {
		t.Errorf("last bar ends at %v, want max %v", bars[9].Upper, h.Max())
	}
	one := NewHistogram()
	one.Record(time.Millisecond)
	if b := one.Buckets(10); len(b) != 1 || b[0].Count != 1 || b[0].Upper != time.Millisecond {
		t.Errorf("one value: %v, want one bar up to 1ms holding it", b)
	}
	if NewHistogram().Buckets(10) != nil {
		t.Error("an empty histogram has bars")
	}
}

func TestLogBucketsDoubleAndSumToCount(t *testing.T) {
	h := NewHistogram()
	for _, us := range []int64{3, 4, 5, 8, 9, 1000, 1024, 1025} {
		h.Record(time.Duration(us) * time.Microsecond)
	}
	bars := h.LogBuckets()
	// (2,4]: 3,4; (4,8]: 5,8; (8,16]: 9; (512,1024]: 1000,1024; (1024,2048]: 1025.
	want := map[time.Duration]int64{4: 2, 8: 2, 16: 1, 1024: 2, 2048: 1}
	var n int64
	for i, b := range bars {
		n += b.Count
		if i > 0 && b.Upper != 2*bars[i-1].Upper {
			t.Errorf("bar %d upper %v, want twice %v", i, b.Upper, bars[i-1].Upper)
		}
		if w := want[b.Upper/time.Microsecond]; b.Count != w {
			t.Errorf("bar ..%v holds %d, want %d", b.Upper, b.Count, w)
		}
	}
	if n != h.Count() || bars[0].Upper != 4*time.Microsecond || bars[len(bars)-1].Upper != 2048*time.Microsecond {
		t.Errorf("bars %v: want 4µs..2048µs holding %d", bars, h.Count())
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
