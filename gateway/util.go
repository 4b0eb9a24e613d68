package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/custodian/custodian/config"
)

// NewLogger builds the process logger from cfg.Log.
func NewLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	switch cfg.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// instanceID returns this data directory's instance id, creating it once.
// Recordings carry it so that crash recovery finalizes only what this
// instance (and its spool) was writing.
func instanceID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "instance.id")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id == "" {
			return "", fmt.Errorf("gateway: %s is empty", path)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("gateway: read instance id: %w", err)
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	host, _ := os.Hostname()
	id := "i-" + hex.EncodeToString(rnd[:])
	if host != "" {
		id = sanitize(host) + "-" + hex.EncodeToString(rnd[:4])
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("gateway: write instance id: %w", err)
	}
	return id, nil
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		}
	}
	if b.Len() > 40 {
		return b.String()[:40]
	}
	return b.String()
}

// hasExistingData reports whether dataDir holds state from an earlier run
// (a database or objects), in which case a missing keyring is an error and
// never silently replaced.
func hasExistingData(cfg config.Config) bool {
	for _, p := range []string{cfg.Path("custodian.db"), cfg.Path("objects"), cfg.Path("spool")} {
		if fi, err := os.Stat(p); err == nil {
			if !fi.IsDir() {
				return true
			}
			if ents, err := os.ReadDir(p); err == nil && len(ents) > 0 {
				return true
			}
		}
	}
	return cfg.Database.DSN != "" || cfg.S3.Bucket != ""
}
