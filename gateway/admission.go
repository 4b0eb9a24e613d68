package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custodian/custodian/recorder"
)

// Admission control: the recorder sheds new sessions (503 with
// Retry-After) when the gateway's goroutines run late (the scheduling
// delay probe's high quantile over a short window exceeds
// recording.max_sched_delay), when the process's measured CPU use over
// the window exceeds recording.max_cpu of all cores, or when
// recording.max_sessions sessions are live, so that a saturated gateway
// refuses new calls instead of degrading the recordings already running.
// Started after the recorder.
func init() {
	registerComponent(component{name: "admission", order: 11, start: startAdmission})
}

// Sampling of the process's CPU time: every cpuSampleEvery, averaged over
// cpuWindow.
const (
	cpuSampleEvery = 250 * time.Millisecond
	cpuWindow      = 2 * time.Second
	// shedRetryAfter is the Retry-After of a shed session.
	shedRetryAfter = 5 * time.Second
)

func startAdmission(ctx context.Context, g *Gateway) error {
	if g.Recorder == nil {
		return nil
	}
	rc := g.Config.Recording
	a := newAdmission(rc.MaxCPU, rc.MaxSessions, runtime.NumCPU(), processCPU)
	if rc.MaxSchedDelay > 0 {
		probe := newSchedProbe(schedProbeEvery, cpuWindow)
		probe.readRunQueue = runtimeRunQueue
		a.withSchedDelay(rc.MaxSchedDelay, probe)
		g.Go("admission scheduling delay probe", a.sched.run)
	}
	g.Recorder.SetAdmitter(a)
	g.Metrics.Register(a.collectors()...)
	g.Go("admission cpu sampler", a.run)
	if addr := os.Getenv(PprofEnv); addr != "" {
		if err := g.startPprof(addr); err != nil {
			return err
		}
	}
	return nil
}

// admission implements recorder.Admitter.
type admission struct {
	maxCPU      float64 // fraction of all cores, 0: no CPU limit
	maxSessions int     // 0: no limit
	cores       int
	cpuTime     func() time.Duration

	maxSchedDelay time.Duration // 0: no scheduling delay limit
	sched         *schedProbe   // nil unless maxSchedDelay > 0
	now           func() time.Time

	mu      sync.Mutex
	samples []cpuSample // ring, oldest first
	used    float64     // CPU use over the window, in cores (-1: not enough samples)
}

type cpuSample struct {
	at  time.Time
	cpu time.Duration
}

var _ recorder.Admitter = (*admission)(nil)

func newAdmission(maxCPU float64, maxSessions, cores int, cpuTime func() time.Duration) *admission {
	return &admission{maxCPU: maxCPU, maxSessions: maxSessions, cores: max(cores, 1), cpuTime: cpuTime, used: -1, now: time.Now}
}

// withSchedDelay sheds new sessions while the probe's delay exceeds limit.
func (a *admission) withSchedDelay(limit time.Duration, p *schedProbe) {
	a.maxSchedDelay, a.sched = limit, p
}

// schedDelay is the probe's reading over the last window (-1 without a
// probe or before half a window of samples).
func (a *admission) schedDelay() schedDelay {
	if a.sched == nil {
		return schedDelay{timer: -1, runQueue: -1}
	}
	return a.sched.delay(a.now())
}

// run samples the CPU time until ctx ends.
func (a *admission) run(ctx context.Context) error {
	tk := time.NewTicker(cpuSampleEvery)
	defer tk.Stop()
	a.sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tk.C:
			a.sample(now)
		}
	}
}

// sample adds a CPU time sample and recomputes the window's use.
func (a *admission) sample(now time.Time) {
	cpu := a.cpuTime()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.samples = append(a.samples, cpuSample{now, cpu})
	for len(a.samples) > 2 && now.Sub(a.samples[1].at) >= cpuWindow {
		a.samples = a.samples[1:]
	}
	first := a.samples[0]
	if wall := now.Sub(first.at); wall >= cpuWindow/2 {
		a.used = float64(cpu-first.cpu) / float64(wall)
	}
}

// cpuCores is the CPU use over the last window in cores, or -1 before
// there is half a window of samples.
func (a *admission) cpuCores() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.used
}

// AdmitSession implements recorder.Admitter.
func (a *admission) AdmitSession(_ context.Context, load recorder.Load) error {
	if a.maxSessions > 0 && load.Sessions >= a.maxSessions {
		return &recorder.OverloadError{Reason: "max_sessions", RetryAfter: shedRetryAfter,
			Detail: fmt.Sprintf("the gateway records at most %d concurrent sessions (recording.max_sessions); try again later", a.maxSessions)}
	}
	if a.maxSchedDelay > 0 {
		if d := a.schedDelay(); d.max() > a.maxSchedDelay {
			return &recorder.OverloadError{Reason: "sched_delay", RetryAfter: shedRetryAfter,
				Detail: fmt.Sprintf("the gateway is saturated: its work ran %v late (p%.0f over the last %v: timers %v, run queue %v), above recording.max_sched_delay (%v); try again later",
					d.max().Round(100*time.Microsecond), schedQuantile*100, cpuWindow,
					d.timer.Round(100*time.Microsecond), d.runQueue.Round(100*time.Microsecond), a.maxSchedDelay)}
		}
	}
	if a.maxCPU > 0 {
		limit := a.maxCPU * float64(a.cores)
		if used := a.cpuCores(); used > limit {
			return &recorder.OverloadError{Reason: "cpu", RetryAfter: shedRetryAfter,
				Detail: fmt.Sprintf("the gateway is saturated: it used %.2f of %d CPU cores over the last %v, above recording.max_cpu (%.2f); try again later",
					used, a.cores, cpuWindow, a.maxCPU)}
		}
	}
	return nil
}

func (a *admission) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custodian_process_cpu_cores",
			Help: "CPU cores the process used over the last 2 s (what admission control compares with recording.max_cpu × cores)."},
			func() float64 { return max(a.cpuCores(), 0) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custodian_admission_cpu_limit_cores",
			Help: "CPU cores above which new sessions are shed (recording.max_cpu × cores; 0: no limit)."},
			func() float64 { return a.maxCPU * float64(a.cores) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custodian_sched_delay_seconds",
			Help: "How late the gateway's work ran over the last 2 s: the larger of custodian_sched_delay_measure_seconds (what admission control compares with recording.max_sched_delay; 0 while off)."},
			func() float64 { return max(a.schedDelay().max(), 0).Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custodian_sched_delay_measure_seconds",
			Help:        "Scheduling delay p99 over the last 2 s, by measure: timer (how late a probe wakes from a 10 ms sleep) or run_queue (Go's /sched/latencies); 0 while off.",
			ConstLabels: prometheus.Labels{"measure": "timer"}},
			func() float64 { return max(a.schedDelay().timer, 0).Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custodian_sched_delay_measure_seconds",
			Help:        "Scheduling delay p99 over the last 2 s, by measure: timer (how late a probe wakes from a 10 ms sleep) or run_queue (Go's /sched/latencies); 0 while off.",
			ConstLabels: prometheus.Labels{"measure": "run_queue"}},
			func() float64 { return max(a.schedDelay().runQueue, 0).Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custodian_admission_sched_delay_limit_seconds",
			Help: "Scheduling delay above which new sessions are shed (recording.max_sched_delay; 0: no limit)."},
			func() float64 { return a.maxSchedDelay.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custodian_admission_max_sessions",
			Help: "Concurrent sessions above which new sessions are shed (recording.max_sessions; 0: no limit)."},
			func() float64 { return float64(a.maxSessions) }),
	}
}

// processCPU is the process's user and system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PprofEnv names the environment variable that, when set to a listen
// address (e.g. 127.0.0.1:6060), serves Go's profiler (/debug/pprof/) on
// that address. It is for profiling only: never set it in production, and
// only ever on a loopback address, since profiles reveal memory contents.
const PprofEnv = "CUSTODIAN_INTERNAL_PPROF_ADDR"

// startPprof serves net/http/pprof on addr until the gateway closes.
func (g *Gateway) startPprof(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("gateway: %s=%q: want a loopback address and port, e.g. 127.0.0.1:6060", PprofEnv, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("gateway: pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	g.Log.Warn("profiler enabled: serving /debug/pprof/ (never in production)", "addr", ln.Addr().String(), "env", PprofEnv)
	g.OnStop("pprof", func(ctx context.Context) error { return srv.Shutdown(ctx) })
	return nil
}
