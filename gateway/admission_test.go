package gateway

import (
	"context"
	"errors"
	"math"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/recorder"
)

// TestAdmission: sessions are shed above max_sessions, and above max_cpu
// once the measured window exceeds it; never before half a window of
// samples.
func TestAdmission(t *testing.T) {
	var cpu time.Duration
	a := newAdmission(0.5, 3, 2, func() time.Duration { return cpu })
	t0 := time.Unix(1000, 0)
	admit := func(sessions int) error {
		return a.AdmitSession(context.Background(), recorder.Load{Sessions: sessions, Connections: sessions})
	}
	reason := func(err error) string {
		if oe, ok := errors.AsType[*recorder.OverloadError](err); ok && oe.RetryAfter > 0 && oe.Detail != "" {
			return oe.Reason
		}
		return ""
	}
	if err := admit(2); err != nil {
		t.Fatalf("2 of 3 sessions: %v", err)
	}
	if r := reason(admit(3)); r != "max_sessions" {
		t.Errorf("3 of 3 sessions: reason %q", r)
	}
	// 1.5 cores busy (limit 0.5 × 2 = 1 core), but only 0.5 s measured.
	a.sample(t0)
	cpu += 750 * time.Millisecond
	a.sample(t0.Add(500 * time.Millisecond))
	if err := admit(0); err != nil {
		t.Errorf("before half a window: %v", err)
	}
	cpu += 750 * time.Millisecond
	a.sample(t0.Add(time.Second))
	if got := a.cpuCores(); got < 1.49 || got > 1.51 {
		t.Errorf("cpu cores %v, want 1.5", got)
	}
	if r := reason(admit(0)); r != "cpu" {
		t.Errorf("1.5 cores used: reason %q", r)
	}
	// Idle for a whole window: admitted again.
	for i := 1; i <= 12; i++ {
		cpu += 50 * time.Millisecond
		a.sample(t0.Add(time.Second + time.Duration(i)*cpuSampleEvery))
	}
	if got := a.cpuCores(); got > 0.25 {
		t.Errorf("cpu cores %v after an idle window, want 0.2", got)
	}
	if err := admit(0); err != nil {
		t.Errorf("idle: %v", err)
	}
	if n := len(a.samples); n > int(cpuWindow/cpuSampleEvery)+2 {
		t.Errorf("%d samples kept", n)
	}
	// No limits: everything is admitted.
	none := newAdmission(0, 0, 2, func() time.Duration { return cpu })
	none.sample(t0)
	cpu += 10 * time.Second
	none.sample(t0.Add(2 * time.Second))
	if err := none.AdmitSession(context.Background(), recorder.Load{Sessions: 1e6}); err != nil {
		t.Errorf("no limits: %v", err)
	}
}

func TestQuantile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		ds := make([]time.Duration, len(v))
		for i, x := range v {
			ds[i] = time.Duration(x) * time.Millisecond
		}
		return ds
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100 … 1, unsorted
	}
	tests := []struct {
		name string
		ds   []time.Duration
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.99, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"p99 of 100 is the 99th", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p50 of 100", ms(hundred...), 0.5, 50 * time.Millisecond},
		{"p99 of 10 is the largest", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.99, 10 * time.Millisecond},
		{"q 0 is the smallest", ms(3, 1, 2), 0, time.Millisecond},
		{"q 1 is the largest", ms(3, 1, 2), 1, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quantile(tt.ds, tt.q); got != tt.want {
				t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

// TestAdmissionSchedDelay: with injected probe samples, new sessions are
// shed while the p99 of the overshoots over the window exceeds
// max_sched_delay, not for a single stall, not before half a window, and
// again admitted once the late samples left the window; a probe starved
// longer than the window reads as late.
func TestAdmissionSchedDelay(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	p := newSchedProbe(schedProbeEvery, cpuWindow)
	a := newAdmission(0, 0, 2, func() time.Duration { return 0 })
	a.withSchedDelay(50*time.Millisecond, p)
	a.now = func() time.Time { return now }
	admit := func() error { return a.AdmitSession(context.Background(), recorder.Load{Sessions: 1, Connections: 1}) }
	// feed adds n probe wake-ups, each late by late, as the probe would.
	feed := func(n int, late time.Duration) {
		for range n {
			now = now.Add(schedProbeEvery + late)
			p.add(now, late)
		}
	}

	feed(10, 200*time.Millisecond) // 2.1 s: every wake-up 200 ms late
	if d := a.schedDelay().max(); d != 200*time.Millisecond {
		t.Fatalf("delay %v after 10 samples 200 ms late", d)
	}
	err := admit()
	if !isReason(err, "sched_delay") {
		t.Fatalf("200 ms late: %v, want sched_delay", err)
	}
	if d := err.(*recorder.OverloadError).Detail; !strings.Contains(d, "recording.max_sched_delay") || !strings.Contains(d, "200ms") {
		t.Errorf("detail %q: want the key and the measured value", d)
	}

	// A whole window on time: admitted; one stall in it is not enough.
	feed(150, 300*time.Microsecond)
	feed(1, 400*time.Millisecond)
	feed(50, 300*time.Microsecond)
	if d := a.schedDelay().max(); d != 300*time.Microsecond {
		t.Errorf("delay %v with one stall in the window, want 300µs", d)
	}
	if err := admit(); err != nil {
		t.Errorf("one stall: %v", err)
	}
	// Saturated: a tenth of the wake-ups 60 ms late.
	for range 20 {
		feed(9, time.Millisecond)
		feed(1, 60*time.Millisecond)
	}
	if err := admit(); !isReason(err, "sched_delay") {
		t.Errorf("10%% of wake-ups 60 ms late: %v, want sched_delay", err)
	}
	// The probe itself starved for 3 s: no sample in the window, still late.
	p.mu.Lock()
	p.waiting = now
	p.mu.Unlock()
	now = now.Add(3 * time.Second)
	if d := a.schedDelay().max(); d < 2*time.Second {
		t.Errorf("delay %v while the probe is 3 s overdue", d)
	}
	// Back to normal for a window.
	feed(200, 500*time.Microsecond)
	if err := admit(); err != nil {
		t.Errorf("recovered: %v", err)
	}
	if n := len(p.samples); n > int(cpuWindow/schedProbeEvery)+1 {
		t.Errorf("%d samples kept", n)
	}

	// Before half a window of samples: no verdict.
	fresh := newSchedProbe(schedProbeEvery, cpuWindow)
	fresh.add(t0, time.Second)
	if d := fresh.delay(t0.Add(500 * time.Millisecond)); d.max() != -1 {
		t.Errorf("delay %v before half a window, want -1", d)
	}
	// Off (max_sched_delay 0): no probe, never shed for it.
	off := newAdmission(0, 0, 2, func() time.Duration { return 0 })
	if d := off.schedDelay(); d.max() != -1 {
		t.Errorf("no probe: delay %v", d)
	}
	if err := off.AdmitSession(context.Background(), recorder.Load{Sessions: 1}); err != nil {
		t.Errorf("off: %v", err)
	}
}

func isReason(err error, reason string) bool {
	oe, ok := errors.AsType[*recorder.OverloadError](err)
	return ok && oe.Reason == reason && oe.RetryAfter > 0 && oe.Detail != ""
}

func TestHistQuantile(t *testing.T) {
	buckets := []float64{math.Inf(-1), 0, 0.001, 0.01, 0.1, 1, math.Inf(1)}
	tests := []struct {
		name     string
		from, to []uint64
		q        float64
		want     time.Duration
	}{
		{"no events", []uint64{0, 5, 5, 0, 0, 0}, []uint64{0, 5, 5, 0, 0, 0}, 0.99, 0},
		{"all in one bucket: its upper bound", []uint64{0, 0, 0, 0, 0, 0}, []uint64{0, 0, 10, 0, 0, 0}, 0.99, 10 * time.Millisecond},
		{"only the events between the readings", []uint64{0, 0, 1000, 0, 0, 0}, []uint64{0, 0, 1000, 0, 100, 0}, 0.99, time.Second},
		{"1 in 100 slow is the p99", []uint64{0, 0, 0, 0, 0, 0}, []uint64{0, 0, 99, 0, 1, 0}, 0.99, 10 * time.Millisecond},
		{"2 in 100 slow pass the p99", []uint64{0, 0, 0, 0, 0, 0}, []uint64{0, 0, 98, 0, 2, 0}, 0.99, time.Second},
		{"the open last bucket: its lower bound", []uint64{0, 0, 0, 0, 0, 0}, []uint64{0, 0, 0, 0, 0, 3}, 0.99, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := histQuantile(buckets, tt.from, tt.to, tt.q); got != tt.want {
				t.Errorf("histQuantile = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestSchedProbeRunQueue: the run queue measure is the p99 of the
// histogram's events within the window (the baseline is the last reading
// at or before its start), none before half a window, and the signal is
// the larger of the two measures.
func TestSchedProbeRunQueue(t *testing.T) {
	buckets := []float64{math.Inf(-1), 0, 0.001, 0.01, 0.1, 1, math.Inf(1)}
	hist := func(counts ...uint64) *metrics.Float64Histogram {
		return &metrics.Float64Histogram{Counts: counts, Buckets: buckets}
	}
	t0 := time.Unix(1000, 0)
	p := newSchedProbe(schedProbeEvery, cpuWindow)
	p.add(t0, time.Millisecond)
	p.addHist(t0, hist(0, 0, 0, 0, 0, 0))
	p.addHist(t0.Add(250*time.Millisecond), hist(0, 0, 500, 0, 500, 0)) // half the events 1 s late
	if d := p.delay(t0.Add(250 * time.Millisecond)); d.runQueue != -1 {
		t.Errorf("before half a window: %+v", d)
	}
	p.add(t0.Add(time.Second), time.Millisecond)
	p.addHist(t0.Add(time.Second), hist(0, 0, 1000, 0, 500, 0))
	d := p.delay(t0.Add(time.Second))
	if d.runQueue != time.Second || d.timer != time.Millisecond || d.max() != time.Second {
		t.Errorf("after 1 s: %+v, want run queue 1s, timer 1ms", d)
	}
	// Three seconds on, only fast events: the slow ones left the window.
	for i := 1; i <= 12; i++ {
		at := t0.Add(time.Second + time.Duration(i)*runQueueSampleEvery)
		p.add(at, time.Millisecond)
		p.addHist(at, hist(0, 0, 1000+uint64(i)*1000, 0, 500, 0))
	}
	if d := p.delay(t0.Add(4 * time.Second)); d.runQueue != 10*time.Millisecond {
		t.Errorf("after the slow events left the window: %+v", d)
	}
	if n := len(p.hists); n > int(cpuWindow/runQueueSampleEvery)+2 {
		t.Errorf("%d histograms kept", n)
	}
}

// TestRuntimeRunQueue: the runtime has the histogram this reads.
func TestRuntimeRunQueue(t *testing.T) {
	h := runtimeRunQueue()
	if h == nil || len(h.Buckets) != len(h.Counts)+1 {
		t.Fatalf("runtime /sched/latencies:seconds: %+v", h)
	}
}
