package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
)

func init() {
	register("version", "print the version", func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fmt.Fprintf(stdout, "custodian %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	})
}
