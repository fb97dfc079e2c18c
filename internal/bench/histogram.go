package bench

import (
	"fmt"
	"math/bits"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1 µs to one hour with 3
// significant digits: a value is kept to within 0.1 %, and the histogram's
// size is fixed (about 200 KiB) however many requests it counts.
const (
	lowestMicros  = 1
	highestMicros = int64(time.Hour / time.Microsecond)
	sigFigs       = 3
)

// Histogram is a latency distribution of fixed size. It is not safe for
// concurrent use: each client goroutine records into its own and the
// run merges them.
type Histogram struct {
	h *hdrhistogram.Histogram
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{h: hdrhistogram.New(lowestMicros, highestMicros, sigFigs)}
}

// Record adds one latency; values outside the range are clamped to it,
// so a count is never lost.
func (h *Histogram) Record(d time.Duration) {
	us := max(d.Microseconds(), lowestMicros)
	us = min(us, highestMicros)
	if err := h.h.RecordValue(us); err != nil {
		panic(fmt.Sprintf("bench: record %d µs: %v", us, err)) // unreachable: clamped above
	}
}

// Merge adds every value of o to h.
func (h *Histogram) Merge(o *Histogram) { h.h.Merge(o.h) }

// Count is the number of recorded values.
func (h *Histogram) Count() int64 { return h.h.TotalCount() }

// Quantile returns the latency at or below which the fraction q (0..1) of
// the values lie.
func (h *Histogram) Quantile(q float64) time.Duration {
	return micros(h.h.ValueAtQuantile(q * 100))
}

// Min, Max and Mean of the recorded values (0 when empty).
func (h *Histogram) Min() time.Duration { return micros(h.h.Min()) }
func (h *Histogram) Max() time.Duration { return micros(h.h.Max()) }
func (h *Histogram) Mean() time.Duration {
	return time.Duration(h.h.Mean() * float64(time.Microsecond))
}

// StdDev of the recorded values.
func (h *Histogram) StdDev() time.Duration {
	return time.Duration(h.h.StdDev() * float64(time.Microsecond))
}

// Bucket is one bar of a histogram: Count values in (previous Upper, Upper].
type Bucket struct {
	Upper time.Duration `json:"upper_ns"`
	Count int64         `json:"count"`
}

// Buckets splits [Min, Max] into n bars of equal width, as etcd's
// benchmark prints its response time histogram (one bar when all values
// are equal). The counts sum to Count.
func (h *Histogram) Buckets(n int) []Bucket {
	if h.Count() == 0 || n <= 0 {
		return nil
	}
	lo, hi := h.h.Min(), h.h.Max()
	if lo == hi {
		return []Bucket{{Upper: micros(hi), Count: h.Count()}}
	}
	width := float64(hi-lo) / float64(n)
	out := make([]Bucket, n)
	for i := range out {
		out[i].Upper = micros(lo + int64(width*float64(i+1)))
	}
	out[n-1].Upper = micros(hi)
	for _, b := range h.h.Distribution() {
		if b.Count == 0 {
			continue
		}
		// A bar of the hdr histogram holds equivalent values; place it
		// by its highest one, which Max reports too.
		v := b.To
		i := min(int(float64(v-lo)/width), n-1)
		// Rounding may put a value just past a bar's upper bound.
		for i > 0 && micros(v) <= out[i-1].Upper {
			i--
		}
		out[i].Count += b.Count
	}
	return out
}

// LogBuckets splits the values into bars whose upper bounds grow by a
// factor of two from 1 µs (bar k holds 2^(k-1) < v <= 2^k µs): the shape of
// a latency distribution on a log axis, for the plot. Bars below the
// fastest value are left out.
func (h *Histogram) LogBuckets() []Bucket {
	if h.Count() == 0 {
		return nil
	}
	var counts [64]int64
	for _, b := range h.h.Distribution() {
		if b.Count > 0 {
			counts[bits.Len64(uint64(b.To-1))] += b.Count
		}
	}
	first, last := bits.Len64(uint64(h.h.Min()-1)), bits.Len64(uint64(h.h.Max()-1))
	out := make([]Bucket, 0, last-first+1)
	for k := first; k <= last; k++ {
		out = append(out, Bucket{Upper: micros(1 << k), Count: counts[k]})
	}
	return out
}

func micros(us int64) time.Duration { return time.Duration(us) * time.Microsecond }
