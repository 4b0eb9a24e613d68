package gateway

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/custodian/custodian/recorder/janus"
)

// The Janus VideoRoom adapter (join mode): when janus.url is set, the
// recorder joins the configured rooms (or all rooms) of that Janus server
// and records their publishers. See docs/join.md.
func init() {
	registerComponent(component{name: "janus", order: 15, start: startJanus})
}

func startJanus(ctx context.Context, g *Gateway) error {
	cfg := g.Config.Janus
	if cfg.URL == "" {
		return nil
	}
	if g.Recorder == nil {
		return fmt.Errorf("janus: the recorder is not running")
	}
	a, err := janus.New(janus.Options{
		Config:      cfg,
		Recorder:    g.Recorder,
		Logger:      g.Log,
		GracePeriod: g.Config.Recording.MediaGracePeriod,
	})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(runCtx); err != nil {
			g.Log.Error("janus adapter stopped", "err", err)
		}
	}()
	// Registered after the recorder's, so it runs before it at Close: the
	// adapter leaves its rooms and ends its recordings while the recorder
	// is still up.
	g.OnStop("janus", func(context.Context) error {
		cancel()
		<-done
		return nil
	})
	status := func(f func(janus.Status) float64) func() float64 {
		return func() float64 { return f(a.Status()) }
	}
	g.Metrics.Register(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custodian_janus_connected",
			Help: "1 while the Janus adapter has a Janus session attached."},
			status(func(s janus.Status) float64 {
				if s.Connected {
					return 1
				}
				return 0
			})),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "custodian_janus_attaches_total",
			Help: "Janus sessions the adapter created (1 + re-attaches after a Janus restart or a lost session)."},
			status(func(s janus.Status) float64 { return float64(s.Attaches) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custodian_janus_rooms",
			Help: "Janus rooms the adapter has joined."},
			status(func(s janus.Status) float64 { return float64(len(s.Rooms)) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "custodian_janus_subscriptions",
			Help: "Janus publishers being subscribed to (recorded or being set up)."},
			status(func(s janus.Status) float64 {
				n := 0
				for _, v := range s.Rooms {
					n += v
				}
				return float64(n)
			})),
	)
	g.Log.Info("janus adapter started", "rooms", cfg.Rooms, "all_rooms", cfg.AllRooms, "tenant", cfg.Tenant)
	return nil
}
