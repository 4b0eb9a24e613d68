package recorder

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the recorder's Prometheus collectors (register them with
// Collectors).
type Metrics struct {
	sessions func() (sessions, conns, tracks int)

	packets, bytes      prometheus.Counter
	lost, late, invalid prometheus.Counter
	nacks, plis         prometheus.Counter
	connections         prometheus.Counter
	sessionsStarted     prometheus.Counter
	recordings          *prometheus.CounterVec
	sessionFailures     *prometheus.CounterVec
	admissionRejected   *prometheus.CounterVec
	setup, finalize     prometheus.Histogram
}

func newMetrics() *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	return &Metrics{
		sessions:        func() (int, int, int) { return 0, 0, 0 },
		packets:         counter("custodian_rtp_packets_received_total", "RTP packets received from participants."),
		bytes:           counter("custodian_rtp_bytes_received_total", "RTP bytes received from participants (headers and payload)."),
		lost:            counter("custodian_rtp_packets_lost_total", "RTP packets given up as lost by the recordings' jitter buffers (live, updated every 100 ms)."),
		late:            counter("custodian_rtp_packets_late_total", "RTP packets that arrived after being given up, or from a replaced SSRC (live)."),
		invalid:         counter("custodian_rtp_packets_invalid_total", "RTP packets dropped as malformed or absurd (live)."),
		nacks:           counter("custodian_rtcp_nacked_packets_total", "Sequence numbers NACKed by the recorder's pipelines."),
		plis:            counter("custodian_rtcp_plis_total", "Picture loss indications sent."),
		connections:     counter("custodian_participant_connections_total", "Participant connections accepted (WHIP)."),
		sessionsStarted: counter("custodian_sessions_started_total", "Sessions created on this instance."),
		recordings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "custodian_recordings_total",
			Help: "Recording status transitions: recording (started), complete, failed, recovered."}, []string{"status"}),
		sessionFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "custodian_session_recording_failures_total",
			Help: "Sessions whose recording_status turned failed, by reason."}, []string{"reason"}),
		admissionRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "custodian_admission_rejected_total",
			Help: "New sessions refused with 503 by admission control, by reason (max_sessions, cpu)."}, []string{"reason"}),
		setup: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "custodian_whip_setup_seconds",
			Help:    "Time from the WHIP offer to a connected peer connection.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}}),
		finalize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "custodian_recording_finalize_seconds",
			Help:    "Time to finalize a recording at the end of its connection (last part, header, manifest, row, event).",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}}),
	}
}

// Collectors returns every collector, for the gateway's registry.
func (m *Metrics) Collectors() []prometheus.Collector {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	return []prometheus.Collector{
		gauge("custodian_sessions_active", "Live sessions on this instance.", func() float64 { s, _, _ := m.sessions(); return float64(s) }),
		gauge("custodian_participant_connections_active", "Live participant connections.", func() float64 { _, c, _ := m.sessions(); return float64(c) }),
		gauge("custodian_tracks_active", "Tracks being read.", func() float64 { _, _, t := m.sessions(); return float64(t) }),
		m.packets, m.bytes, m.lost, m.late, m.invalid, m.nacks, m.plis, m.connections, m.sessionsStarted,
		m.recordings, m.sessionFailures, m.admissionRejected, m.setup, m.finalize,
	}
}
