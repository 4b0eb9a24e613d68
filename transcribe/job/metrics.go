package job

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the transcription job counters of one process. Register
// Collectors with the process's Prometheus registry; the queue depth
// (jobs waiting in the stream) is a gauge the gateway adds from
// Queue.Pending.
type Metrics struct {
	enqueued      prometheus.Counter
	running       prometheus.Gauge
	completed     prometheus.Counter
	failed        *prometheus.CounterVec
	retried       *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	audioSeconds  prometheus.Counter
	speechSeconds prometheus.Counter
	latency       prometheus.Histogram
}

// NewMetrics returns unregistered metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		enqueued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custodian_transcription_jobs_queued_total",
			Help: "Transcription jobs published to CUSTODIAN_JOBS by this process (duplicates dropped by JetStream not counted).",
		}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "custodian_transcription_jobs_running",
			Help: "Transcription jobs this process is working on.",
		}),
		completed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custodian_transcription_jobs_completed_total",
			Help: "Transcripts completed by this process.",
		}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custodian_transcription_jobs_failed_total",
			Help: "Transcripts marked failed by this process, by reason.",
		}, []string{"reason"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custodian_transcription_job_retries_total",
			Help: "Failed attempts that will be retried after a backoff, by reason.",
		}, []string{"reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "custodian_transcription_job_duration_seconds",
			Help:    "Wall time of one job attempt, by outcome (completed, failed, retry, interrupted).",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 14), // 0.25 s … 34 min
		}, []string{"outcome"}),
		audioSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custodian_transcription_audio_seconds_total",
			Help: "Seconds of recorded audio transcribed (recording timeline, silence included).",
		}),
		speechSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custodian_transcription_speech_seconds_total",
			Help: "Seconds of speech chunks handed to the engine.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "custodian_transcription_latency_seconds",
			Help:    "Time from recording.completed to the transcript.completed commit.",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 14), // 0.5 s … 68 min
		}),
	}
}

// Collectors returns every metric, for prometheus.Registerer.MustRegister.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.enqueued, m.running, m.completed, m.failed, m.retried,
		m.duration, m.audioSeconds, m.speechSeconds, m.latency,
	}
}
