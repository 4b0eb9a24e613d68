package gateway

import (
	"context"
	"errors"
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
