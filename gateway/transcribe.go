package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/storage/spool"
	"github.com/custodian/custodian/transcribe/job"
)

// Transcription: the dispatcher (recording.completed → job on
// CUSTODIAN_JOBS), the sweeper that backs it up, and
// transcription.workers workers (none when 0: `custodian worker
// transcribe` runs them elsewhere). transcription.engine none turns all of
// it off.
func init() {
	registerComponent(component{name: "transcription", order: 30, start: startTranscription})
}

// Transcription is the running transcription component of a gateway.
type Transcription struct {
	Queue *job.Queue
	// Engines are this instance's workers' engines (the default, and
	// those policies asked for); nil when no worker runs here.
	Engines *job.Engines
}

var transcriptions sync.Map // *Gateway → *Transcription

// Transcription returns the gateway's transcription component, or nil
// when transcription is disabled.
func (g *Gateway) Transcription() *Transcription {
	v, _ := transcriptions.Load(g)
	t, _ := v.(*Transcription)
	return t
}

func transcriptionQueue(g *Gateway, log *slog.Logger, m *job.Metrics) *job.Queue {
	tc := g.Config.Transcription
	return job.NewQueue(g.JS, g.DB, job.Config{
		Replicas: g.Config.NATS.Replicas, AckWait: tc.AckWait, MaxDeliver: tc.MaxDeliver,
	}, log, m)
}

func startTranscription(ctx context.Context, g *Gateway) error {
	tc := g.Config.Transcription
	log := g.Log.With("component", "transcription")
	if tc.Engine == job.EngineNone {
		log.Info("transcription disabled (transcription.engine: none)")
		return nil
	}
	m := job.NewMetrics()
	g.Metrics.Register(m.Collectors()...)
	q := transcriptionQueue(g, log, m)
	if err := q.Ensure(ctx); err != nil {
		return err
	}
	registerQueueGauges(g.Metrics, q)
	d := job.NewDispatcher(q, job.DispatchConfig{})
	if _, err := d.Ensure(ctx); err != nil {
		return err
	}
	t := &Transcription{Queue: q}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(runCtx) })
	s := job.NewSweeper(q, job.SweepConfig{Owner: g.InstanceID})
	wg.Go(func() { s.Run(runCtx) })
	if tc.Workers > 0 {
		ens, err := job.NewEngines(ctx, tc, tc.Workers, log)
		if err != nil {
			// Jobs stay queued for workers that can run them.
			log.Error("transcription workers not started: the engine cannot run here", "engine", tc.Engine, "err", err)
		} else {
			t.Engines = ens
			w := job.NewWorker(q, &job.Transcriber{
				DB: g.DB, Store: g.Store,
				Audio: job.AudioOptions(tc, log), Log: log, Parallel: tc.Workers,
			}, job.WorkerConfig{Workers: tc.Workers, ID: g.InstanceID, Log: log, Engines: ens})
			wg.Go(func() { w.Run(runCtx) })
			log.Info("transcription workers started", "engine", ens.Default(), "workers", tc.Workers,
				"policy_engines", configuredEngines(tc))
		}
	}
	transcriptions.Store(g, t)
	// Registered after the store, relay, NATS and database: runs before
	// them at Close, so a job in progress is handed back (or committed
	// and its event relayed) while they are up.
	g.OnStop("transcription", func(ctx context.Context) error {
		defer transcriptions.Delete(g)
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("transcription workers did not stop: %w", ctx.Err())
		}
		if t.Engines != nil {
			return t.Engines.Close()
		}
		return nil
	})
	return nil
}

// configuredEngines lists the engines a policy's transcription_engine can
// get on this instance (built on first use).
func configuredEngines(tc config.Transcription) []string {
	var names []string
	for _, n := range config.TranscriptionEngines {
		if tc.Configured(n) {
			names = append(names, n)
		}
	}
	return names
}

// registerQueueGauges adds the queue depth gauges (asked of JetStream at
// scrape time).
func registerQueueGauges(m *Metrics, q *job.Queue) {
	pending := func(unacked bool) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			w, u, err := q.Pending(ctx)
			if err != nil {
				return -1
			}
			if unacked {
				return float64(u)
			}
			return float64(w)
		}
	}
	m.Register(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "custodian_transcription_jobs_queued",
			Help: "Jobs on CUSTODIAN_JOBS waiting for a worker (all instances).",
		}, pending(false)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "custodian_transcription_jobs_unacked",
			Help: "Jobs delivered to a worker and not yet acknowledged: running or waiting to be retried (all instances).",
		}, pending(true)),
	)
}

// WorkerOptions configure RunTranscriptionWorker.
type WorkerOptions struct {
	// Workers is the number of concurrent jobs (default
	// transcription.workers, at least 1).
	Workers int
	// MetricsAddr, when set, serves /metrics and /healthz there.
	MetricsAddr string
	// Ready, if set, is called once the worker pulls jobs.
	Ready func()
}

// WorkerNATSURL returns the NATS server a worker process connects to:
// nats.url, or with the embedded default the serving process's
// nats.listen_addr on this host.
func WorkerNATSURL(cfg config.Config) (string, error) {
	if cfg.NATS.URL != "" {
		return cfg.NATS.URL, nil
	}
	if cfg.NATS.ListenAddr == "" {
		return "", errors.New("gateway: a transcription worker needs nats.url, or nats.listen_addr of the serving process on this host (the embedded NATS server listens only in-process otherwise)")
	}
	host, port, err := net.SplitHostPort(cfg.NATS.ListenAddr)
	if err != nil {
		return "", fmt.Errorf("gateway: nats.listen_addr %q: %w", cfg.NATS.ListenAddr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	if port == "0" {
		return "", errors.New("gateway: nats.listen_addr has port 0; give the serving process a fixed port for workers to connect to")
	}
	return "nats://" + net.JoinHostPort(host, port), nil
}

// RunTranscriptionWorker runs only transcription workers (`custodian
// worker transcribe`) until ctx ends: it opens the database (database.dsn),
// the key provider (never creating a keyring), the object store with a
// spool of its own (DATA/worker-spool, one worker process per data
// directory), and NATS (WorkerNATSURL). It relays the events it emits
// itself, and uploads each transcript before committing it.
func RunTranscriptionWorker(ctx context.Context, cfg config.Config, log *slog.Logger, o WorkerOptions) (err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tc := cfg.Transcription
	if tc.Engine == job.EngineNone {
		return errors.New("gateway: transcription.engine is none: a transcription worker has nothing to do")
	}
	workers := o.Workers
	if workers <= 0 {
		workers = max(tc.Workers, 1)
	}
	natsURL, err := WorkerNATSURL(cfg)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	g := &Gateway{Config: cfg, Log: log.With("component", "transcription-worker")}
	g.InstanceID = fmt.Sprintf("%s-worker-%d", sanitize(host), os.Getpid())
	g.bgCtx, g.bgStop = context.WithCancel(context.WithoutCancel(ctx))
	g.Metrics = newMetrics()
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer cancel()
		err = errors.Join(err, g.Close(cctx))
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("gateway: create data directory: %w", err)
	}
	if err := g.openDatabase(ctx, Options{DBRetry: 2 * time.Minute}); err != nil {
		return err
	}
	if err := g.openKeys(ctx, Options{LocalOnly: true}); err != nil {
		return err
	}
	if err := g.openWorkerStore(ctx); err != nil {
		return err
	}
	nc, err := events.Connect(ctx, natsURL, cfg.NATS.CredsFile, g.Log)
	if err != nil {
		return err
	}
	g.NC = nc
	g.OnStop("nats connection", func(context.Context) error { nc.Close(); return nil })
	if g.JS, err = jetstream.New(nc); err != nil {
		return fmt.Errorf("gateway: jetstream: %w", err)
	}
	streamOpts := events.StreamOptions{Replicas: cfg.NATS.Replicas}
	g.Relay = events.NewRelay(g.DB, g.JS, events.RelayOptions{
		Owner: g.InstanceID, Log: g.Log.With("component", "relay"),
		EnsureStream: func(ctx context.Context) error {
			_, err := events.EnsureStream(ctx, g.JS, streamOpts)
			return err
		},
	})
	g.Metrics.registerRelay(g.Relay)
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); g.Relay.Run(relayCtx) }()
	g.OnStop("event relay", func(ctx context.Context) error {
		_, err := g.Relay.Drain(ctx)
		stopRelay()
		<-relayDone
		return err
	})

	m := job.NewMetrics()
	g.Metrics.Register(m.Collectors()...)
	q := transcriptionQueue(g, g.Log, m)
	if err := q.Ensure(ctx); err != nil {
		return err
	}
	registerQueueGauges(g.Metrics, q)
	ens, err := job.NewEngines(ctx, tc, workers, g.Log)
	if err != nil {
		return err
	}
	g.OnStop("transcription engines", func(context.Context) error { return ens.Close() })
	w := job.NewWorker(q, &job.Transcriber{
		DB: g.DB, Store: g.Store,
		Audio: job.AudioOptions(tc, g.Log), Log: g.Log, Parallel: workers,
	}, job.WorkerConfig{Workers: workers, ID: g.InstanceID, Log: g.Log, Flush: g.Store.Flush, Engines: ens})

	if o.MetricsAddr != "" {
		if err := g.serveWorkerMetrics(o.MetricsAddr); err != nil {
			return err
		}
	}
	g.Log.Info("transcription worker running", "engine", ens.Default(), "policy_engines", configuredEngines(tc), "workers", workers, "nats", natsURL, "instance", g.InstanceID)
	if o.Ready != nil {
		o.Ready()
	}
	return w.Run(ctx)
}

// openWorkerStore opens the object store like serve does, but with the
// spool DATA/worker-spool, locked so that two worker processes never
// share one.
func (g *Gateway) openWorkerStore(ctx context.Context) error {
	if err := g.openBlob(ctx); err != nil {
		return err
	}
	dir := g.Config.Path("worker-spool")
	lock, err := lockFile(dir + ".lock")
	if err != nil {
		return err
	}
	g.OnStop("worker spool lock", func(context.Context) error { return lock.Close() })
	sp, err := spool.Open(dir, spool.Options{Logger: g.Log})
	if err != nil {
		return err
	}
	g.attachStore(sp)
	return nil
}

// lockFile takes an exclusive advisory lock on path (created 0600), held
// until the file is closed.
func lockFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("gateway: open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("gateway: %s is locked: another transcription worker uses this data directory (run one per data directory): %w", path, err)
	}
	f.Truncate(0)
	f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	return f, nil
}

// serveWorkerMetrics serves /metrics and /healthz of a worker process.
func (g *Gateway) serveWorkerMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("gateway: listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", g.Metrics.handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	g.OnStop("metrics listener", func(ctx context.Context) error { return srv.Shutdown(ctx) })
	g.Log.Info("worker metrics listening", "addr", ln.Addr().String())
	return nil
}
