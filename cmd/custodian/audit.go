package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/custodian/custodian/api/audit"
)

func init() {
	registerGroup("audit", "`audit verify` checks the whole audit chain; exit 0 only if intact", subcommand{"verify", cmdAuditVerify})
}

// errChainBroken is returned (exit 1) when verification finds a problem.
var errChainBroken = errors.New("audit chain BROKEN")

func cmdAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit verify", stderr)
	var sf stateFlags
	sf.register(fs)
	headSeq := fs.Int64("head-seq", 0, "sequence number of a head kept outside the database (detects a cut end)")
	headHash := fs.String("head-hash", "", "hash of the entry at --head-seq")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	if (*headSeq > 0) != (*headHash != "") {
		return usageErr("--head-seq and --head-hash go together")
	}
	g, err := openLocal(ctx, sf, stderr)
	if err != nil {
		return err
	}
	defer g.Close(context.WithoutCancel(ctx))
	key, keyID, err := g.SigningKey(ctx)
	if err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	clear(key)
	opts := []audit.VerifyOption{audit.WithTrustedKey(keyID, pub)}
	if *headSeq > 0 {
		opts = append(opts, audit.WithExpectedHead(*headSeq, *headHash))
	}
	res, err := audit.Verify(ctx, g.DB, opts...)
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintln(stdout, string(b))
	}
	if !res.OK {
		if !*asJSON {
			fmt.Fprintf(stdout, "audit chain BROKEN at seq %d: %s: %s\n", res.FirstBadSeq, res.Reason, res.Detail)
			fmt.Fprintf(stdout, "intact up to seq %d (hash %s)\n", res.HeadSeq, res.HeadHash)
		}
		return fmt.Errorf("%w at seq %d (%s)", errChainBroken, res.FirstBadSeq, res.Reason)
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "audit chain OK: %d entries, %d signed checkpoints, head seq %d hash %s\n",
			res.Entries, res.Checkpoints, res.HeadSeq, res.HeadHash)
	}
	return nil
}
