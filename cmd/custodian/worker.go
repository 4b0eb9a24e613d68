package main

import (
	"context"
	"io"

	"github.com/custodian/custodian/gateway"
)

func init() {
	registerGroup("worker", "`worker transcribe` runs only transcription workers (scale-out)", subcommand{"transcribe", cmdWorkerTranscribe})
}

// cmdWorkerTranscribe pulls transcription jobs from CUSTODIAN_JOBS until
// interrupted. It needs the same database, object store, key provider
// and NATS as the serving gateway (docs/transcription-jobs.md).
func cmdWorkerTranscribe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("worker transcribe", stderr)
	var sf stateFlags
	sf.register(fs)
	workers := fs.Int("workers", 0, "concurrent jobs (default transcription.workers, at least 1)")
	metrics := fs.String("metrics", "", "serve /metrics and /healthz on this address (e.g. 127.0.0.1:9464)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	if *workers < 0 {
		return usageErr("--workers must not be negative")
	}
	cfg, err := sf.load()
	if err != nil {
		return err
	}
	log := gateway.NewLogger(cfg.Log, stderr)
	return gateway.RunTranscriptionWorker(ctx, cfg, log, gateway.WorkerOptions{Workers: *workers, MetricsAddr: *metrics})
}
