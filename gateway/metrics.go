package gateway

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the gateway's Prometheus registry. Components add their own
// collectors with Register.
type Metrics struct {
	reg         *prometheus.Registry
	httpReqs    *prometheus.HistogramVec
	storageOps  *prometheus.HistogramVec
	storageErrs *prometheus.CounterVec
}

func newMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	m := &Metrics{
		reg: reg,
		httpReqs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "custodian_http_request_duration_seconds",
			Help:    "HTTP requests by route and status.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"method", "route", "status"}),
		storageOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "custodian_storage_operation_seconds",
			Help:    "Object store operations: seal_part (seal + spool fsync + row), open_part, upload.",
			Buckets: []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1, 5},
		}, []string{"op"}),
		storageErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custodian_storage_operation_errors_total",
			Help: "Failed object store operations.",
		}, []string{"op"}),
	}
	reg.MustRegister(m.httpReqs, m.storageOps, m.storageErrs)
	return m
}

// Register adds collectors (components' own metrics).
func (m *Metrics) Register(cs ...prometheus.Collector) { m.reg.MustRegister(cs...) }

// Registry returns the registry (tests).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *Metrics) observeRequest(method, route string, status int, d time.Duration) {
	m.httpReqs.WithLabelValues(method, route, strconv.Itoa(status)).Observe(d.Seconds())
}

func (m *Metrics) observeStorage(o storage.Observation) {
	m.storageOps.WithLabelValues(o.Op).Observe(o.Duration.Seconds())
	if o.Err != nil {
		m.storageErrs.WithLabelValues(o.Op).Inc()
	}
}

func (m *Metrics) registerStore(s *storage.Store) {
	gauge := func(name, help string, f func(storage.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(s.Stats()) })
	}
	counter := func(name, help string, f func(storage.Stats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(s.Stats()) })
	}
	m.reg.MustRegister(
		counter("custodian_parts_sealed_total", "Encrypted parts sealed and made durable.", func(st storage.Stats) float64 { return float64(st.PartsSealed) }),
		counter("custodian_part_seal_failures_total", "Parts that could not be sealed or made durable.", func(st storage.Stats) float64 { return float64(st.SealFailures) }),
		counter("custodian_integrity_failures_total", "Reads rejected by verification (tampered, truncated or foreign objects).", func(st storage.Stats) float64 { return float64(st.IntegrityFailures) }),
		gauge("custodian_upload_backlog_objects", "Sealed objects in the spool waiting for the blob store.", func(st storage.Stats) float64 { return float64(st.Spool.Pending) }),
		gauge("custodian_upload_backlog_bytes", "Bytes in the spool waiting for the blob store.", func(st storage.Stats) float64 { return float64(st.Spool.PendingBytes) }),
		gauge("custodian_upload_backlog_age_seconds", "Age of the oldest object waiting for upload.", func(st storage.Stats) float64 {
			if st.Spool.Oldest.IsZero() {
				return 0
			}
			return time.Since(st.Spool.Oldest).Seconds()
		}),
		counter("custodian_upload_failures_total", "Failed upload attempts to the blob store.", func(st storage.Stats) float64 { return float64(st.Spool.Failures) }),
	)
}

func (m *Metrics) registerRelay(r *events.Relay) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "custodian_events_published_total", Help: "Events acknowledged by JetStream."},
			func() float64 { return float64(r.Stats().Published) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "custodian_event_publish_failures_total", Help: "Failed event publish attempts."},
			func() float64 { return float64(r.Stats().Failures) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custodian_events_pending", Help: "Outbox events not yet acknowledged by JetStream."},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				n, err := r.Pending(ctx)
				if err != nil {
					return -1
				}
				return float64(n)
			}),
	)
}
