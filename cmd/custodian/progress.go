package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress draws a one-line progress bar on a terminal and nothing
// otherwise (logs and pipes stay clean).
type progress struct {
	w       io.Writer
	label   string
	total   int64
	unit    string // "B" for bytes, "" for items
	enabled bool

	mu    sync.Mutex
	done  int64
	last  time.Time
	start time.Time
}

func newProgress(w io.Writer, label string, total int64, unit string) *progress {
	enabled := false
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		enabled = true
	}
	return &progress{w: w, label: label, total: total, unit: unit, enabled: enabled, start: time.Now()}
}

// itemProgress returns a callback for operations that report progress
// in items as (done, total): its bar starts at the first report, when the
// total is known. finish ends the bar's line if there was one.
func itemProgress(w io.Writer, label string) (report func(done, total int), finish func()) {
	var bar *progress
	report = func(done, total int) {
		if bar == nil {
			bar = newProgress(w, label, int64(total), "")
		}
		bar.Set(int64(done))
	}
	finish = func() {
		if bar != nil {
			bar.Finish()
		}
	}
	return report, finish
}

// Set records absolute progress.
func (p *progress) Set(done int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = done
	if p.enabled && (time.Since(p.last) > 100*time.Millisecond || done >= p.total) {
		p.last = time.Now()
		p.draw()
	}
}

// Add records relative progress.
func (p *progress) Add(n int64) {
	p.mu.Lock()
	d := p.done + n
	p.mu.Unlock()
	p.Set(d)
}

// Write counts bytes written through it (io.Writer).
func (p *progress) Write(b []byte) (int, error) {
	p.Add(int64(len(b)))
	return len(b), nil
}

func (p *progress) draw() {
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = float64(p.done) / float64(p.total)
	}
	frac = min(max(frac, 0), 1)
	n := int(frac * width)
	bar := strings.Repeat("█", n) + strings.Repeat("░", width-n)
	fmt.Fprintf(p.w, "\r%s %s %3.0f%% %s/%s", p.label, bar, frac*100, p.format(p.done), p.format(p.total))
}

func (p *progress) format(n int64) string {
	if p.unit != "B" {
		return fmt.Sprint(n)
	}
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Finish ends the line.
func (p *progress) Finish() {
	if p.enabled {
		p.mu.Lock()
		p.draw()
		p.mu.Unlock()
		fmt.Fprintln(p.w)
	}
}
