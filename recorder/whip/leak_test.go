package whip_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/recorder/whip"
)

// TestNoGoroutineLeak publishes with every impairment that starts
// goroutines, closes everything, and checks that the goroutine count
// returns to where it was.
func TestNoGoroutineLeak(t *testing.T) {
	a, v := media(t)
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	before := runtime.NumGoroutine()
	func() {
		e := newEndpoint(t)
		defer func() {
			e.srv.Close()
			e.mu.Lock()
			for _, pc := range e.pcs {
				_ = pc.Close()
			}
			e.mu.Unlock()
			_ = e.api.Close()
		}()
		ctx := context.Background()
		pub, err := whip.Publish(ctx, whip.Options{
			URL: e.url("s", "p"), Token: e.token, Audio: a, Video: v, Duration: 500 * time.Millisecond,
			Impairment: whip.Impairment{Jitter: 5 * time.Millisecond, ReorderPercent: 5, LossPercent: 2},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if err := pub.Close(ctx); err != nil {
			t.Fatal(err)
		}
		// A failed publish leaves nothing running either.
		if _, err := whip.Publish(ctx, whip.Options{URL: e.url("s", "p"), Token: "wrong", Audio: a}); err == nil {
			t.Fatal("wrong token accepted")
		}
	}()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	checkFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if n := runtime.NumGoroutine(); n > before {
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			return fmt.Errorf("%d goroutines, %d before:\n%s", n, before, b.String())
		}
		return nil
	})
}
