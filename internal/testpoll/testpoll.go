package testpoll

import (
	"testing"
	"time"
)

// Until calls f every interval until it returns nil, or fails tb with f's
// last error once timeout has passed.
func Until(tb testing.TB, timeout, interval time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}
