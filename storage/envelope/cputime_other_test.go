//go:build !linux

package envelope_test

import "time"

var start = time.Now()

// threadCPU falls back to wall time where thread CPU clocks are missing.
func threadCPU() time.Duration { return time.Since(start) }
