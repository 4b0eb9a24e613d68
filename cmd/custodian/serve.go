package main

import (
	"context"
	"io"

	"github.com/custodian/custodian/gateway"
)

func init() {
	register("serve", "run the gateway (WHIP ingest, recording, API, workers)", cmdServe)
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	var sf stateFlags
	sf.register(fs)
	httpAddr := fs.String("http", "", "HTTP listen address (env CUSTODIAN_HTTP_ADDR, default 127.0.0.1:8080)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	cfg, err := sf.load()
	if err != nil {
		return err
	}
	if *httpAddr != "" {
		cfg.HTTP.Addr = *httpAddr
	}
	log := gateway.NewLogger(cfg.Log, stderr)
	return gateway.Run(ctx, cfg, log)
}
