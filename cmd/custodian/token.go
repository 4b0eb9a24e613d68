package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/custodian/custodian/api/audit"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/gateway"
	"gorm.io/gorm"
)

func init() {
	registerGroup("token", "`token create --role ROLE` prints a new API token once", subcommand{"create", cmdTokenCreate})
}

func cmdTokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token create", stderr)
	var sf stateFlags
	sf.register(fs)
	role := fs.String("role", "", "role: admin, compliance, supervisor, auditor or ingest (required)")
	tenant := fs.String("tenant", gateway.DefaultTenant, "tenant (created if it does not exist)")
	dept := fs.String("department", "", "department (required for supervisor; confines an ingest token)")
	ttl := fs.Duration("ttl", 720*time.Hour, "lifetime; 0 never expires")
	name := fs.String("name", "", "what the token is for, shown in token lists")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected arguments %q", fs.Args())
	}
	if *role == "" {
		return usageErr("--role is required")
	}
	if !auth.Role(*role).Valid() {
		return usageErr("--role %q: want admin, compliance, supervisor, auditor or ingest", *role)
	}
	if *ttl < 0 {
		return usageErr("--ttl must not be negative")
	}
	g, err := openLocal(ctx, sf, stderr)
	if err != nil {
		return err
	}
	defer g.Close(context.WithoutCancel(ctx))
	spec := auth.Spec{Tenant: *tenant, Role: auth.Role(*role), Department: *dept, Name: *name, TTL: *ttl, CreatedBy: "cli"}
	var plaintext string
	err = g.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		p, row, err := auth.CreateToken(ctx, tx, spec)
		if err != nil {
			return err
		}
		plaintext = p
		_, err = audit.AppendTx(tx, audit.Entry{
			Tenant: spec.Tenant, Actor: "cli", Role: "operator", Action: audit.ActionTokenCreate, Target: "token:" + row.ID,
			Source: "local", Details: map[string]any{"role": string(spec.Role), "department": spec.Department, "ttl": spec.TTL.String()},
		})
		if err == nil {
			expiry := "never expires"
			if row.ExpiresAt != nil {
				expiry = "expires " + row.ExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(stderr, "created token %s: tenant %s, role %s, %s (shown once; store it now)\n", row.ID, row.TenantID, row.Role, expiry)
		}
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, plaintext)
	return nil
}
