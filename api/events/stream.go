package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultDuplicateWindow is how long JetStream remembers a Nats-Msg-Id:
// a row re-published within it (the relay crashed between the ack and
// marking the row sent) is stored once.
const DefaultDuplicateWindow = 5 * time.Minute

// StreamOptions configure EnsureStream. The zero value is the embedded
// default.
type StreamOptions struct {
	// Replicas is the stream's replica count on a cluster (config
	// nats.replicas); 0 means 1.
	Replicas int
	// Duplicates is the deduplication window; 0 means
	// DefaultDuplicateWindow.
	Duplicates time.Duration
	// MaxAge drops events older than this from the stream; 0 keeps them.
	MaxAge time.Duration
}

// EnsureStream creates the stream CUSTODIAN_EVENTS (subjects custodian.>,
// file storage) if it is absent. An existing stream is left as it is,
// except for compatible updates: the custodian.> subject added if missing,
// a duplicate window raised to at least o.Duplicates, the replica count
// set to o.Replicas when given.
func EnsureStream(ctx context.Context, js jetstream.JetStream, o StreamOptions) (jetstream.Stream, error) {
	want := jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Custodian state changes as CloudEvents 1.0 JSON",
		Subjects:    []string{SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  o.Duplicates,
		MaxAge:      o.MaxAge,
		Replicas:    o.Replicas,
	}
	if want.Duplicates <= 0 {
		want.Duplicates = DefaultDuplicateWindow
	}
	if want.MaxAge > 0 && want.Duplicates > want.MaxAge {
		want.Duplicates = want.MaxAge
	}
	if want.Replicas <= 0 {
		want.Replicas = 1
	}
	st, err := js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// another instance created it meanwhile
			st, err = js.Stream(ctx, StreamName)
		}
		if err != nil {
			return nil, fmt.Errorf("events: create stream %s: %w", StreamName, err)
		}
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("events: look up stream %s: %w", StreamName, err)
	}
	cfg := st.CachedInfo().Config
	changed := false
	if !slices.Contains(cfg.Subjects, want.Subjects[0]) {
		cfg.Subjects = append(cfg.Subjects, want.Subjects[0])
		changed = true
	}
	if cfg.Duplicates < want.Duplicates {
		cfg.Duplicates = want.Duplicates
		changed = true
	}
	if o.Replicas > 0 && cfg.Replicas != o.Replicas {
		cfg.Replicas = o.Replicas
		changed = true
	}
	if !changed {
		return st, nil
	}
	st, err = js.UpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("events: update stream %s: %w", StreamName, err)
	}
	return st, nil
}
