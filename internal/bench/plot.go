package bench

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"time"
)

// The plot's geometry, in SVG user units (pixels at 100 % zoom).
const (
	plotWidth   = 900
	panelHeight = 260
	marginLeft  = 80
	marginRight = 30
	panelGap    = 90
	titleHeight = 50
)

// SVG draws the run as a stand-alone SVG image: on top the latency
// distribution (requests per latency band, bands doubling from 1 µs, with
// p50, p99 and p99.9 marked), below the throughput in each second.
func (r *Result) SVG() []byte {
	var b bytes.Buffer
	height := titleHeight + 50 + 2*panelHeight + panelGap + 60
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		plotWidth, height, plotWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", marginLeft, html.EscapeString(r.title()))
	fmt.Fprintf(&b, `<text x="%d" y="40">%s</text>`+"\n", marginLeft, html.EscapeString(r.subtitle()))
	r.latencyPanel(&b, titleHeight+50)
	r.throughputPanel(&b, titleHeight+50+panelHeight+panelGap)
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func (r *Result) title() string {
	return fmt.Sprintf("troupe bench %s: %.0f ops/s, p99 %s", r.Workload, r.Throughput, fmtDur(r.Latency.P99))
}

func (r *Result) subtitle() string {
	return fmt.Sprintf("%d clients, %d conns, key %d B, value %d B, key space %d, %d ops in %.1fs, %d errors, %d endpoint(s)",
		r.Clients, r.Conns, r.KeySize, r.ValSize, r.KeySpace, r.Ops, r.Elapsed.Seconds(), r.Errors, len(r.Endpoints))
}

func (r *Result) latencyPanel(b *bytes.Buffer, top int) {
	bars := r.hist.LogBuckets()
	w := plotWidth - marginLeft - marginRight
	panelAxes(b, top, "latency (log scale)", "requests")
	if len(bars) == 0 {
		return
	}
	var most int64
	for _, bar := range bars {
		most = max(most, bar.Count)
	}
	step := float64(w) / float64(len(bars))
	for i, bar := range bars {
		h := float64(panelHeight) * float64(bar.Count) / float64(most)
		x := float64(marginLeft) + float64(i)*step
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#4a7fb5"><title>%s..%s: %d</title></rect>`+"\n",
			x+1, float64(top+panelHeight)-h, step-2, h, fmtDur(bar.Upper/2), fmtDur(bar.Upper), bar.Count)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x+step, top+panelHeight+15, fmtDur(bar.Upper))
	}
	// The bars' x scale is log2 of the latency: bar i ends at Upper(i).
	first := math.Log2(float64(bars[0].Upper.Microseconds())) - 1
	xOf := func(d time.Duration) float64 {
		us := max(float64(d)/float64(time.Microsecond), 1)
		return float64(marginLeft) + (math.Log2(us)-first)*step
	}
	// The labels go in the panel's top right corner, one per line, so
	// close percentiles do not print over each other.
	for i, m := range []struct {
		name  string
		value time.Duration
		color string
	}{{"p50", r.Latency.P50, "#2a9d2a"}, {"p99", r.Latency.P99, "#d08000"}, {"p99.9", r.Latency.P999, "#c02020"}} {
		x := xOf(m.value)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="5,3"/>`+"\n",
			x, top, x, top+panelHeight, m.color)
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="%s" text-anchor="end">%s %s (dashed)</text>`+"\n",
			plotWidth-marginRight, top-36+14*i, m.color, m.name, fmtDur(m.value))
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end">%d</text>`+"\n", marginLeft-5, top+10, most)
}

func (r *Result) throughputPanel(b *bytes.Buffer, top int) {
	w := plotWidth - marginLeft - marginRight
	panelAxes(b, top, "seconds since the start", "ops/s")
	if len(r.Timeline) == 0 {
		return
	}
	var most int64
	for _, n := range r.Timeline {
		most = max(most, n)
	}
	most = max(most, 1)
	step := float64(w) / float64(len(r.Timeline))
	var pts bytes.Buffer
	for i, n := range r.Timeline {
		x := float64(marginLeft) + (float64(i)+0.5)*step
		y := float64(top+panelHeight) - float64(panelHeight)*float64(n)/float64(most)
		fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
	}
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="#4a7fb5" stroke-width="2"/>`+"\n", pts.String())
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end">%d</text>`+"\n", marginLeft-5, top+10, most)
	for _, i := range []int{0, len(r.Timeline) / 2, len(r.Timeline)} {
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", float64(marginLeft)+float64(i)*step, top+panelHeight+15, i)
	}
	fmt.Fprintf(b, `<text x="%d" y="%d">the last second is partial</text>`+"\n", plotWidth-marginRight-160, top-5)
}

// panelAxes draws a panel's axes and their labels.
func panelAxes(b *bytes.Buffer, top int, xLabel, yLabel string) {
	right := plotWidth - marginRight
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", marginLeft, top+panelHeight, right, top+panelHeight)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", marginLeft, top, marginLeft, top+panelHeight)
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", (marginLeft+right)/2, top+panelHeight+35, xLabel)
	fmt.Fprintf(b, `<text x="20" y="%d" text-anchor="middle" transform="rotate(-90 20 %d)">%s</text>`+"\n",
		top+panelHeight/2, top+panelHeight/2, yLabel)
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end">0</text>`+"\n", marginLeft-5, top+panelHeight)
}

// fmtDur prints a latency with 3 significant digits in its natural unit.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}
