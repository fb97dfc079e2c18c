package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/troupedb/troupe/internal/bench"
)

// newProgress draws a bar on a terminal, else prints a plain line every
// few seconds (a log file or CI gets no control codes).
func newProgress(w io.Writer) bench.Progress {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &barProgress{w: w}
	}
	return &lineProgress{w: w, every: 5 * time.Second}
}

// barProgress is a bar per phase over 1000 steps of the phase's fraction.
type barProgress struct {
	w     io.Writer
	phase string
	bar   *progressbar.ProgressBar
}

func (p *barProgress) Update(phase string, done int64, fraction float64) {
	if p.bar == nil || p.phase != phase {
		p.phase = phase
		p.bar = progressbar.NewOptions(1000, progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(phase), progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true), progressbar.OptionSetWidth(40),
			progressbar.OptionThrottle(100*time.Millisecond))
	}
	p.bar.Describe(fmt.Sprintf("%s %d ops", phase, done))
	_ = p.bar.Set(int(fraction * 1000))
}

func (p *barProgress) Finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
		p.bar = nil
	}
}

// lineProgress prints "phase: N ops, P%" at most once per every.
type lineProgress struct {
	w     io.Writer
	every time.Duration
	last  time.Time
}

func (p *lineProgress) Update(phase string, done int64, fraction float64) {
	if time.Since(p.last) < p.every {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "%s: %d ops, %.0f%%\n", phase, done, fraction*100)
}

func (p *lineProgress) Finish() {}
