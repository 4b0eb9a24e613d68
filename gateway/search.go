package gateway

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/transcribe/search"
)

// Search: this instance's replica of the transcript index (search.dir,
// default DATA/index), fed by its durable JetStream consumer of
// transcript.completed and recording.deleted, and GET /v1/search.
func init() {
	registerComponent(component{name: "search", order: 70, start: startSearch})
}

// SearchKeyPurpose names the tenant key the index is encrypted under
// (storage.Store.NamedKey).
const SearchKeyPurpose = "search-index"

// searchIndexes holds each running gateway's index (SearchIndex).
var searchIndexes sync.Map // *Gateway → *search.Index

// SearchIndex returns the gateway's search index replica, or nil when
// search is disabled.
func (g *Gateway) SearchIndex() *search.Index {
	v, _ := searchIndexes.Load(g)
	x, _ := v.(*search.Index)
	return x
}

// SearchDir returns the directory of the gateway's index replica.
func (g *Gateway) SearchDir() string {
	if g.Config.Search.Dir != "" {
		return g.Config.Search.Dir
	}
	return g.Config.Path("index")
}

// SearchOptions returns the index options of the gateway (also used by
// `custodian index rebuild`).
func (g *Gateway) SearchOptions() search.Options {
	return search.Options{
		Dir: g.SearchDir(),
		Key: func(ctx context.Context, tenant string) ([]byte, error) {
			return g.Store.NamedKey(ctx, tenant, SearchKeyPurpose)
		},
		Logger: g.Log,
	}
}

// SearchLoader returns the loader that reads what the index should hold
// from the database and the object store.
func (g *Gateway) SearchLoader() *search.Loader {
	return search.NewLoader(g.DB, g.Store, g.Log).WithSealed(g.sealedObject)
}

func startSearch(ctx context.Context, g *Gateway) error {
	if !g.Config.Search.Enabled {
		return nil
	}
	idx, err := search.Open(ctx, g.SearchOptions())
	if err != nil {
		return err
	}
	g.Metrics.Register(idx.Collectors()...)
	rep := search.NewReplica(search.ReplicaOptions{
		JS: g.JS, Index: idx, Loader: g.SearchLoader(),
		Consumer: search.ConsumerName(g.InstanceID), Logger: g.Log,
	})
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := rep.Run(rctx); err != nil {
			g.Log.Error("search replica stopped", "err", err)
		}
	}()
	searchIndexes.Store(g, idx)
	g.OnStop("search index", func(ctx context.Context) error {
		cancel()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("search replica did not stop: %w", ctx.Err())
		case <-time.After(30 * time.Second):
			return fmt.Errorf("search replica did not stop within 30 s")
		}
		searchIndexes.Delete(g)
		return idx.Close()
	})
	api.NewSearchAPI(g.API, api.SearchOptions{DB: g.DB, Index: idx, Logger: g.Log}).Register()
	return nil
}
