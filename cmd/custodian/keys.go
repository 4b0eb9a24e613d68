package main

import (
	"context"
	"fmt"
	"io"

	"github.com/custodian/custodian/storage"
)

func init() {
	registerGroup("keys", "key management: `keys rotate` makes a new KEK primary and re-wraps every data key", subcommand{"rotate", cmdKeysRotate})
}

func cmdKeysRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys rotate", stderr)
	var sf stateFlags
	sf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	g, err := openLocal(ctx, sf, stderr)
	if err != nil {
		return err
	}
	defer g.Close(context.WithoutCancel(ctx))
	if r, ok := g.Keys.(storage.Rotator); ok {
		id, err := r.Rotate(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "new primary key-encryption key: %s\n", id)
	} else {
		fmt.Fprintf(stdout, "key provider %s rotates its own key material; re-wrapping under the configured key\n", g.Config.KMS.Provider)
	}
	report, finish := itemProgress(stderr, "rewrap")
	n, err := g.Store.Rewrap(ctx, report)
	finish()
	fmt.Fprintf(stdout, "re-wrapped %d data keys; objects unchanged\n", n)
	return err
}
