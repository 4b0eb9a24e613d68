//go:build !unix

package search

import (
	"context"
	"os"
	"time"
)

// lockDir opens the lock file; other systems get no cross-process lock.
func lockDir(_ context.Context, path string, _ time.Duration) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
}
