package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/custodian/custodian/transcribe/search"
)

func init() {
	registerGroup("index", "search index: `index rebuild` rebuilds this instance's replica from the stored transcripts", subcommand{"rebuild", cmdIndexRebuild})
}

// cmdIndexRebuild builds a fresh replica (search.dir) from the database
// and the object store, decrypting every completed transcript, and swaps
// it in when it is complete. The gateway of this data directory must be
// stopped (the replica is locked while it serves); other instances keep
// answering searches from their own replicas meanwhile.
func cmdIndexRebuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("index rebuild", stderr)
	var sf stateFlags
	sf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	g, err := openLocal(ctx, sf, stderr)
	if err != nil {
		return err
	}
	defer g.Close(context.WithoutCancel(ctx))
	report, finish := itemProgress(stderr, "index")
	start := time.Now()
	st, err := search.Rebuild(ctx, g.SearchOptions(), g.SearchLoader(), search.ConsumerName(g.InstanceID), report)
	finish()
	if errors.Is(err, search.ErrLocked) {
		return fmt.Errorf("%w: stop the gateway using %s first (other instances keep serving searches)", err, g.SearchDir())
	}
	if err != nil {
		return err
	}
	rate := 0.0
	if s := time.Since(start).Seconds(); s > 0 {
		rate = float64(st.Words) / s
	}
	fmt.Fprintf(stdout, "rebuilt %s: %d transcripts, %d indexed, %d skipped (deleted or unreadable), %d words in %s (%.0f words/s)\n",
		g.SearchDir(), st.Transcripts, st.Indexed, st.Skipped, st.Words, time.Since(start).Round(time.Millisecond), rate)
	return nil
}
