package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/gateway"
	"github.com/custodian/custodian/storage/keyring"
)

// stateFlags are the flags of every command that works on local state.
type stateFlags struct {
	config string
	data   string
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("custodian "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func (s *stateFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.config, "config", os.Getenv("CUSTODIAN_CONFIG"), "configuration file (env CUSTODIAN_CONFIG)")
	fs.StringVar(&s.data, "data", "", "data directory (env CUSTODIAN_DATA, default ./data)")
}

// load reads the configuration: file, then environment, then --data.
func (s *stateFlags) load() (config.Config, error) {
	cfg, err := config.Load(s.config, os.Environ())
	if err != nil {
		return config.Config{}, err
	}
	if s.data != "" {
		cfg.DataDir = s.data
	}
	return cfg, nil
}

// openLocal opens the gateway's local state (database, keys, objects) the
// way `serve` does, for commands that run beside or without a server.
func openLocal(ctx context.Context, sf stateFlags, stderr io.Writer) (*gateway.Gateway, error) {
	cfg, err := sf.load()
	if err != nil {
		return nil, err
	}
	g, err := gateway.New(ctx, cfg, gateway.NewLogger(cfg.Log, stderr), gateway.Options{LocalOnly: true})
	if errors.Is(err, keyring.ErrMissing) {
		return nil, fmt.Errorf("%s holds no gateway state yet (start `custodian serve --data %s` once first): %w", cfg.DataDir, cfg.DataDir, err)
	}
	return g, err
}
