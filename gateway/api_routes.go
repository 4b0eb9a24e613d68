package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/storage/spool"
)

// The /v1 API of recordings, media, transcripts, tokens, the audit log and
// exports (api.V1), the audit checkpointer and the export worker.
func init() {
	registerComponent(component{name: "api", order: 50, start: startAPIRoutes})
}

func startAPIRoutes(ctx context.Context, g *Gateway) error {
	key, keyID, err := g.SigningKey(ctx)
	if err != nil {
		return err
	}
	v := api.NewV1(g.API, api.V1Options{
		DB:         g.DB,
		Store:      g.Store,
		Sealed:     g.sealedObject,
		Bundles:    g.Blob,
		SigningKey: g.SigningKey,
		Owner:      g.InstanceID,
		Logger:     g.Log,
	})
	v.Register()
	g.OnStop("api", func(context.Context) error { return v.Close() })
	cp := &audit.Checkpointer{
		DB:       g.DB,
		Key:      key,
		KeyID:    keyID,
		Interval: g.Config.Audit.CheckpointInterval,
		Owner:    g.InstanceID,
		Log:      g.Log,
	}
	g.Go("audit checkpointer", cp.Run)
	g.Go("export worker", v.RunExports)
	return nil
}

// sealedObject returns an object's sealed bytes as the store would read
// them: the spooled copy while it is not uploaded, else the blob store's.
func (g *Gateway) sealedObject(ctx context.Context, key string) ([]byte, error) {
	b, err := g.Spool.Get(key)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, spool.ErrNotFound) {
		return nil, fmt.Errorf("gateway: spool get %s: %w", key, err)
	}
	return g.Blob.Get(ctx, key)
}
