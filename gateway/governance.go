package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/policy/retention"
	"github.com/custodian/custodian/storage/meta"
)

// Governance: GET|PUT /v1/policies, /v1/legal-holds, the retention
// enforcement worker, and the policy reload that keeps every instance on
// the newest stored policy version.
func init() {
	registerComponent(component{name: "governance", order: 60, start: startGovernance})
}

// PolicyPollInterval is how often an instance looks for a policy version
// stored by another instance, in addition to reloading at once on every
// policy.updated event it receives from NATS.
const PolicyPollInterval = 15 * time.Second

// ObjectLockGrace delays retention deletions past retain_until when S3
// Object Lock is configured, so that clock skew between the gateway and
// the object store does not make the store refuse the deletes after the
// key was shredded (a later sweep would still remove them).
const ObjectLockGrace = 5 * time.Minute

func startGovernance(ctx context.Context, g *Gateway) error {
	def, err := config.ParseRetention(g.Config.Retention.Default)
	if err != nil {
		return fmt.Errorf("retention.default: %w", err)
	}
	holder := &policyHolder{p: g.Policies, db: g.DB, def: def, log: g.Log}
	api.NewPolicies(g.API, api.PoliciesOptions{
		DB: g.DB, Holder: holder, DefaultRetention: def, OperatorTenant: DefaultTenant, Logger: g.Log,
		EngineConfigured: g.Config.Transcription.Configured,
	}).Register()
	api.NewHolds(g.API, api.HoldsOptions{
		DB: g.DB, Objects: g.Store, ObjectLock: g.Config.S3.ObjectLock != "", Logger: g.Log,
	}).Register()

	grace := time.Duration(0)
	if g.Config.S3.ObjectLock != "" {
		grace = ObjectLockGrace
	}
	m := newGovernanceMetrics(holder)
	g.Metrics.Register(m.deleted, m.failed, m.pending, m.held, m.lastSweep, m.policyVersion)
	w, err := retention.New(g.DB, g.Store, retention.Options{
		Owner: g.InstanceID, Logger: g.Log, Grace: grace, OnSweep: m.observe,
	})
	if err != nil {
		return err
	}
	interval := g.Config.Retention.Interval
	g.Go("retention", func(ctx context.Context) error { return w.Run(ctx, interval) })

	wake := make(chan struct{}, 1)
	if g.NC != nil {
		sub, err := g.NC.Subscribe(events.Subject("*", events.PolicyUpdated), func(*nats.Msg) {
			select {
			case wake <- struct{}{}:
			default:
			}
		})
		if err != nil {
			return fmt.Errorf("subscribe to policy updates: %w", err)
		}
		g.OnStop("policy update subscription", func(context.Context) error { return sub.Unsubscribe() })
	}
	g.Go("policy reload", func(ctx context.Context) error {
		return holder.watch(ctx, PolicyPollInterval, wake)
	})
	return nil
}

// policyHolder adapts Policies to api.PolicyHolder: versions only move
// forward, whoever installs them (a PUT on this instance, the reload of a
// version another instance stored).
type policyHolder struct {
	p   *Policies
	db  *gorm.DB
	def time.Duration
	log *slog.Logger
	mu  sync.Mutex
}

var _ api.PolicyHolder = (*policyHolder)(nil)

func (h *policyHolder) Policy() (*policy.Set, int) {
	v := h.p.Current()
	return v.Set, v.Version
}

func (h *policyHolder) Install(set *policy.Set, version int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if version <= h.p.Current().Version {
		return false
	}
	h.p.Swap(PolicyVersion{Set: set, Version: version})
	return true
}

// reload installs the newest stored version if it is newer than the one
// in force.
func (h *policyHolder) reload(ctx context.Context) error {
	var rows []meta.PolicyVersion
	if err := h.db.WithContext(ctx).Order("version DESC").Limit(1).Find(&rows).Error; err != nil {
		return fmt.Errorf("gateway: reload policy: %w", err)
	}
	if len(rows) == 0 || rows[0].Version <= h.p.Current().Version {
		return nil
	}
	row := rows[0]
	set, err := policy.Parse([]byte(row.Document))
	if err != nil {
		// Stored versions were validated before they were stored: this
		// means a newer parser disagrees. Keep the version in force.
		return fmt.Errorf("gateway: stored policy version %d does not parse; keeping version %d: %w",
			row.Version, h.p.Current().Version, err)
	}
	if h.Install(set.WithDefaultRetention(h.def), row.Version) {
		h.log.Info("policy version installed from the database", "version", row.Version, "actor", row.Actor)
	}
	return nil
}

// watch reloads every interval and whenever wake fires, until ctx ends.
func (h *policyHolder) watch(ctx context.Context, interval time.Duration, wake <-chan struct{}) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-wake:
		}
		if err := h.reload(ctx); err != nil && !errors.Is(err, context.Canceled) {
			h.log.Error("policy reload failed", "err", err)
		}
	}
}

// governanceMetrics are the retention worker's and the policy's metrics.
type governanceMetrics struct {
	deleted       prometheus.Counter
	failed        prometheus.Counter
	pending       prometheus.Gauge
	held          prometheus.Gauge
	lastSweep     prometheus.Gauge
	policyVersion prometheus.GaugeFunc
}

func newGovernanceMetrics(h *policyHolder) *governanceMetrics {
	return &governanceMetrics{
		deleted: prometheus.NewCounter(prometheus.CounterOpts{Name: "custodian_retention_deleted_total",
			Help: "Recordings deleted by this instance's retention worker (key shredded, tombstone written)."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "custodian_retention_failures_total",
			Help: "Retention deletions that failed before the key was destroyed, and failed sweeps (retried)."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "custodian_retention_objects_pending",
			Help: "Deleted recordings whose ciphertext the blob store still refused at the last sweep (Object Lock)."}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{Name: "custodian_retention_held",
			Help: "Recordings past retain_until kept by a legal hold, at the last sweep."}),
		lastSweep: prometheus.NewGauge(prometheus.GaugeOpts{Name: "custodian_retention_last_sweep_timestamp_seconds",
			Help: "Unix time of the last completed retention sweep."}),
		policyVersion: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custodian_policy_version",
			Help: "Policy version in force on this instance (0: the config file)."},
			func() float64 { _, v := h.Policy(); return float64(v) }),
	}
}

func (m *governanceMetrics) observe(res retention.Result, err error) {
	m.deleted.Add(float64(res.Deleted))
	m.failed.Add(float64(res.Failed))
	if err != nil {
		m.failed.Inc()
		return
	}
	m.pending.Set(float64(res.Pending))
	m.held.Set(float64(res.Held))
	m.lastSweep.SetToCurrentTime()
}
