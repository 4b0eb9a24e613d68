package search

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the index's Prometheus collectors (Index.Collectors).
type metrics struct {
	changes      *prometheus.CounterVec
	words        prometheus.Counter
	applySeconds prometheus.Histogram
	purges       *prometheus.CounterVec
	purgeSeconds prometheus.Histogram
	searches     *prometheus.CounterVec
	searchSecs   prometheus.Histogram
	events       *prometheus.CounterVec
	lag          prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custodian_search_index_changes_total",
			Help: "Recordings indexed (op=put) or removed (op=delete) in this replica.",
		}, []string{"op"}),
		words: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custodian_search_index_words_total",
			Help: "Transcript words indexed in this replica.",
		}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "custodian_search_index_commit_seconds",
			Help:    "Time to commit one batch of index changes durably.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		purges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custodian_search_index_purges_total",
			Help: "Purges (every index file rewritten under a new key, old key destroyed) by outcome.",
		}, []string{"outcome"}),
		purgeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "custodian_search_index_purge_seconds",
			Help:    "Duration of index purges.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 12),
		}),
		searches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custodian_search_queries_total",
			Help: "Search queries by outcome.",
		}, []string{"outcome"}),
		searchSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "custodian_search_query_seconds",
			Help:    "Search query latency in the index (without HTTP and audit).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 12),
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custodian_search_replica_events_total",
			Help: "Events the replica consumer handled, by kind and outcome (applied, skipped, retried, dropped).",
		}, []string{"kind", "outcome"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "custodian_search_replica_lag_seconds",
			Help:    "Time from an event's publication to its change being committed in this replica.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
	}
}

func (m *metrics) applied(puts, dels, words int, d time.Duration) {
	m.changes.WithLabelValues("put").Add(float64(puts))
	m.changes.WithLabelValues("delete").Add(float64(dels))
	m.words.Add(float64(words))
	m.applySeconds.Observe(d.Seconds())
}

func (m *metrics) compacted(d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.purges.WithLabelValues(outcome).Inc()
	m.purgeSeconds.Observe(d.Seconds())
}

func (m *metrics) searched(d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.searches.WithLabelValues(outcome).Inc()
	m.searchSecs.Observe(d.Seconds())
}

// Collectors returns the index's Prometheus collectors (register them
// once, e.g. with gateway Metrics.Register).
func (x *Index) Collectors() []prometheus.Collector {
	m := x.m
	return []prometheus.Collector{m.changes, m.words, m.applySeconds, m.purges, m.purgeSeconds,
		m.searches, m.searchSecs, m.events, m.lag}
}
