package gateway

import (
	"context"
	"math"
	"runtime/metrics"
	"slices"
	"sync"
	"time"
)

// Scheduling delay: how late the gateway gets to run work it is due to
// run, measured two ways over the last window, the larger being the
// signal:
//
//   - timer: a probe goroutine sleeps schedProbeEvery again and again and
//     records how much later than due it wakes. This sees the kernel's
//     delay while other threads or processes hold the cores the gateway
//     needs, and timers run late while the process's Ps are all busy.
//     It sees little of Go's run queue: a goroutine woken by a timer runs
//     next on its P.
//   - run queue: Go's /sched/latencies:seconds, how long goroutines wait
//     runnable before they run (packet readers woken by the network
//     poller wait there behind everything else runnable). It sees nothing
//     of the kernel's delay: a goroutine whose thread is preempted counts
//     as running.
//
// Together they measure the gateway's ability to keep up whichever
// process uses the cores, where the process's CPU time measures only its
// own share of them.
const (
	schedProbeEvery = 10 * time.Millisecond
	// runQueueSampleEvery is how often the runtime's histogram is read.
	runQueueSampleEvery = 250 * time.Millisecond
	// schedQuantile of each measurement over the window is the signal: a
	// high quantile, so that a single stall (a GC pause, a page fault
	// storm) does not shed, while delay that recurs does.
	schedQuantile = 0.99
)

// schedProbe holds both measurements over the last window.
type schedProbe struct {
	every  time.Duration
	window time.Duration
	// readRunQueue returns the cumulative run queue latency histogram
	// (nil: not measured).
	readRunQueue func() *metrics.Float64Histogram

	mu      sync.Mutex
	start   time.Time    // first sample
	samples []lateSample // oldest first
	waiting time.Time    // when the sleep in progress started (zero: none)
	hists   []histSample // oldest first; the first is the window's baseline
	buckets []float64    // the run queue histogram's bucket boundaries
}

type lateSample struct {
	at   time.Time
	late time.Duration
}

type histSample struct {
	at     time.Time
	counts []uint64
}

// schedDelay is one reading of both measurements (-1: not measured yet).
type schedDelay struct {
	timer, runQueue time.Duration
}

// max is the signal: the larger of the two.
func (d schedDelay) max() time.Duration { return max(d.timer, d.runQueue) }

func newSchedProbe(every, window time.Duration) *schedProbe {
	return &schedProbe{every: every, window: window}
}

// runtimeRunQueue reads Go's scheduling latency histogram.
func runtimeRunQueue() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return s[0].Value.Float64Histogram()
}

// run probes until ctx ends.
func (p *schedProbe) run(ctx context.Context) error {
	t := time.NewTimer(p.every)
	defer t.Stop()
	var lastHist time.Time
	for {
		start := time.Now()
		p.mu.Lock()
		p.waiting = start
		p.mu.Unlock()
		t.Reset(p.every)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			now := time.Now()
			p.add(now, now.Sub(start)-p.every)
			if p.readRunQueue != nil && now.Sub(lastHist) >= runQueueSampleEvery {
				lastHist = now
				if h := p.readRunQueue(); h != nil {
					p.addHist(now, h)
				}
			}
		}
	}
}

// add records that a wake-up due at now-late ran at now.
func (p *schedProbe) add(now time.Time, late time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.start.IsZero() {
		p.start = now
	}
	p.waiting = time.Time{}
	p.samples = append(p.samples, lateSample{now, max(late, 0)})
	i := 0
	for i < len(p.samples) && now.Sub(p.samples[i].at) > p.window {
		i++
	}
	p.samples = slices.Delete(p.samples, 0, i)
}

// addHist records the cumulative run queue histogram read at now. Its
// buckets are the runtime's, fixed for the process.
func (p *schedProbe) addHist(now time.Time, h *metrics.Float64Histogram) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hists = append(p.hists, histSample{now, slices.Clone(h.Counts)})
	p.buckets = h.Buckets
	// Keep one sample at or before the window's start as its baseline.
	for len(p.hists) > 2 && now.Sub(p.hists[1].at) >= p.window {
		p.hists = p.hists[1:]
	}
}

// delay reads both measurements over the window ending at now; -1 for
// one before half a window of samples. A wake-up still overdue at now
// counts with its lateness so far, so that a probe starved for longer
// than the window still reads as late.
func (p *schedProbe) delay(now time.Time) schedDelay {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := schedDelay{timer: -1, runQueue: -1}
	if p.start.IsZero() || now.Sub(p.start) < p.window/2 {
		return d
	}
	lates := make([]time.Duration, 0, len(p.samples)+1)
	for _, s := range p.samples {
		if now.Sub(s.at) <= p.window {
			lates = append(lates, s.late)
		}
	}
	if !p.waiting.IsZero() {
		if late := now.Sub(p.waiting) - p.every; late > 0 {
			lates = append(lates, late)
		}
	}
	d.timer = quantile(lates, schedQuantile)
	if n := len(p.hists); n >= 2 && p.hists[n-1].at.Sub(p.hists[0].at) >= p.window/2 {
		d.runQueue = histQuantile(p.buckets, p.hists[0].counts, p.hists[n-1].counts, schedQuantile)
	}
	return d
}

// quantile is the nearest-rank q-quantile of ds (0 when empty); it sorts
// ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// histQuantile is the q-quantile of the events counted between two
// readings of a cumulative histogram (bucket i spans buckets[i] to
// buckets[i+1]), as the upper bound of the bucket it falls in; 0 without
// events.
func histQuantile(buckets []float64, from, to []uint64, q float64) time.Duration {
	var total uint64
	for i := range to {
		total += to[i] - from[i]
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i := range to {
		seen += to[i] - from[i]
		if seen >= max(rank, 1) {
			upper := buckets[i+1]
			if math.IsInf(upper, 1) {
				upper = buckets[i]
			}
			return time.Duration(upper * float64(time.Second))
		}
	}
	return 0
}
