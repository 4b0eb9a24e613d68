package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/custodian/custodian/config"
	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/storage/meta"
	"gorm.io/gorm"
)

// Policies holds the policy set in force. It starts from the newest
// version stored in the database (PUT /v1/policies) or, when none was ever
// stored, from the config file's `policies`. Readers take Current once per
// decision; updates swap it atomically.
type Policies struct {
	cur atomic.Pointer[PolicyVersion]
}

// PolicyVersion is a policy set and the database version it came from
// (0: the config file).
type PolicyVersion struct {
	Set     *policy.Set
	Version int
}

// Current returns the policy set in force.
func (p *Policies) Current() PolicyVersion { return *p.cur.Load() }

// Swap puts v in force.
func (p *Policies) Swap(v PolicyVersion) { p.cur.Store(&v) }

func loadPolicies(ctx context.Context, db *gorm.DB, cfg config.Config) (*Policies, error) {
	def, err := config.ParseRetention(cfg.Retention.Default)
	if err != nil {
		return nil, fmt.Errorf("gateway: retention.default: %w", err)
	}
	p := &Policies{}
	var row meta.PolicyVersion
	err = db.WithContext(ctx).Order("version DESC").Take(&row).Error
	switch {
	case err == nil:
		set, perr := policy.Parse([]byte(row.Document))
		if perr != nil {
			return nil, fmt.Errorf("gateway: stored policy version %d no longer parses: %w", row.Version, perr)
		}
		p.Swap(PolicyVersion{Set: set.WithDefaultRetention(def), Version: row.Version})
	case errors.Is(err, gorm.ErrRecordNotFound):
		set, perr := policy.ParseNode(&cfg.Policies)
		if perr != nil {
			return nil, fmt.Errorf("gateway: config policies: %w", perr)
		}
		p.Swap(PolicyVersion{Set: set.WithDefaultRetention(def), Version: 0})
	default:
		return nil, fmt.Errorf("gateway: load policies: %w", err)
	}
	return p, nil
}
