package gateway

import (
	"context"

	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/recorder"
)

// The recorder: WHIP ingest, sessions, participant connections, crash
// recovery of interrupted recordings at start.
func init() {
	registerComponent(component{name: "recorder", order: 10, start: startRecorder})
}

func startRecorder(ctx context.Context, g *Gateway) error {
	r, err := recorder.New(ctx, recorder.Options{
		DB:    g.DB,
		Store: g.Store,
		Policies: func() (*policy.Set, int) {
			v := g.Policies.Current()
			return v.Set, v.Version
		},
		Recording:  g.Config.Recording,
		Session:    g.Config.Session,
		WebRTC:     g.Config.WebRTC,
		InstanceID: g.InstanceID,
		Logger:     g.Log,
	})
	if err != nil {
		return err
	}
	// Registered after the store, relay, NATS and database, so it runs
	// before them at Close: recordings are finalized while everything
	// they need is still up.
	g.Recorder = r
	g.OnStop("recorder", r.Close)
	r.Register(g.API)
	g.Metrics.Register(r.Metrics().Collectors()...)
	g.Go("recorder watch", r.Run)
	return nil
}
