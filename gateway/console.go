package gateway

import (
	"context"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/console"
)

// The review console (api/console) at /, with the two API routes it needs:
// GET /v1/me (who the credential is) and media tickets (streaming into
// <audio>/<video> elements, which cannot send Authorization headers).
// It starts after the API component, whose media route serves tickets.
func init() {
	registerComponent(component{name: "console", order: 90, start: startConsole})
}

func startConsole(ctx context.Context, g *Gateway) error {
	api.RegisterMe(g.API)
	key, _, err := g.SigningKey(ctx)
	if err != nil {
		return err
	}
	tickets := api.NewMediaTickets(g.API, api.MediaTicketOptions{DB: g.DB, Key: key, Logger: g.Log})
	if err := tickets.Register(); err != nil {
		return err
	}
	c, err := console.New(console.Options{OIDC: g.Config.OIDC, Logger: g.Log})
	if err != nil {
		return err
	}
	c.Register(g.API)
	g.Go("console oidc discovery", c.Discover)
	return nil
}
