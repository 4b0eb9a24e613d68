package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/custodian/custodian/storage/meta"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// TokenPrefix starts every opaque token, so that secret scanners and
// people recognise one (pattern cst_[A-Za-z0-9_-]{43}).
const TokenPrefix = "cst_"

const (
	tokenBytes   = 32                                    // 256 bits
	tokenTextLen = len(TokenPrefix) + (tokenBytes*8+5)/6 // prefix + unpadded base64url
	tokenIDKind  = "tok"                                 // meta.NewID prefix of token rows
)

// ErrInvalidSpec means a token request is malformed (HTTP 400).
var ErrInvalidSpec = errors.New("auth: invalid token spec")

// ErrTokenNotFound means no token with that id exists in the tenant.
var ErrTokenNotFound = errors.New("auth: token not found")

// NewToken returns a new opaque token and the hex SHA-256 hash under which
// it is stored. The plaintext has 256 bits from crypto/rand.
func NewToken() (plaintext, hash string) {
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("auth: crypto/rand failed: " + err.Error())
	}
	plaintext = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return plaintext, HashToken(plaintext)
}

// HashToken returns the hex SHA-256 of a token, as stored in meta.Token.Hash.
func HashToken(plaintext string) string {
	sum := sha256.Sum256([]byte(plaintext))
	return hex.EncodeToString(sum[:])
}

// looksLikeOpaque reports whether s has the form of a token from NewToken.
func looksLikeOpaque(s string) bool {
	if len(s) != tokenTextLen || !strings.HasPrefix(s, TokenPrefix) {
		return false
	}
	for _, c := range s[len(TokenPrefix):] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Spec describes a token to create.
type Spec struct {
	Tenant     string
	Role       Role
	Department string        // required for supervisor; optional for ingest (confines it); ignored by nothing else
	Name       string        // what it is for, shown in lists
	TTL        time.Duration // 0: never expires
	CreatedBy  string        // Principal.Actor() of the creator, or "cli"
}

func (s Spec) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, args...))
	}
	if !meta.ValidID(s.Tenant) || strings.ContainsAny(s.Tenant, ".:@") || strings.HasPrefix(s.Tenant, "_") {
		// A tenant names NATS subjects (custodian.{tenant}.{kind}) and
		// object key prefixes: no dots; "_" prefixes are the system's.
		return bad("tenant %q: use 1 to 128 letters, digits, '-' or '_' (not starting with '_')", s.Tenant)
	}
	if !s.Role.Valid() {
		return bad("role %q is not one of admin, compliance, supervisor, auditor, ingest", s.Role)
	}
	if s.Role == RoleSupervisor && s.Department == "" {
		return bad("a supervisor token needs a department")
	}
	if len(s.Department) > 128 || strings.IndexFunc(s.Department, unicode.IsControl) >= 0 {
		return bad("department: at most 128 printable characters")
	}
	if len(s.Name) > 200 || strings.IndexFunc(s.Name, unicode.IsControl) >= 0 {
		return bad("name: at most 200 printable characters")
	}
	if s.TTL < 0 {
		return bad("ttl must not be negative")
	}
	return nil
}

// CreateToken stores a new token and returns its plaintext, shown once and
// never stored or logged. The tenant row is created if it does not exist
// (this is how `custodian token create --tenant T` starts a tenant).
// Authorization (CanCreateToken) is the caller's job. db may be a
// transaction, so that the caller's audit entry commits with the token.
func CreateToken(ctx context.Context, db *gorm.DB, s Spec) (string, meta.Token, error) {
	if err := s.validate(); err != nil {
		return "", meta.Token{}, err
	}
	plaintext, hash := NewToken()
	now := time.Now().UTC().Truncate(time.Microsecond) // what the databases keep
	t := meta.Token{
		ID:         meta.NewID(tokenIDKind),
		TenantID:   s.Tenant,
		Name:       s.Name,
		Role:       string(s.Role),
		Department: s.Department,
		Hash:       hash,
		CreatedBy:  s.CreatedBy,
		CreatedAt:  now,
	}
	if s.TTL > 0 {
		exp := now.Add(s.TTL)
		t.ExpiresAt = &exp
	}
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		tenant := meta.Tenant{ID: s.Tenant, Name: s.Tenant, CreatedAt: now}
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&tenant).Error; err != nil {
			return err
		}
		return tx.Create(&t).Error
	})
	if err != nil {
		return "", meta.Token{}, fmt.Errorf("auth: create token: %w", err)
	}
	return plaintext, t, nil
}

// RevokeToken revokes the token id of tenant and returns it. Revoking a
// revoked token changes nothing. ErrTokenNotFound when there is no such
// token in that tenant.
func RevokeToken(ctx context.Context, db *gorm.DB, tenant, id string) (meta.Token, error) {
	var t meta.Token
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("tenant_id = ? AND id = ?", tenant, id).Take(&t).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return ErrTokenNotFound
			}
			return err
		}
		if t.RevokedAt != nil {
			return nil
		}
		now := time.Now().UTC().Truncate(time.Microsecond)
		res := tx.Model(&meta.Token{}).Where("id = ? AND revoked_at IS NULL", t.ID).Update("revoked_at", now)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 1 {
			t.RevokedAt = &now
			return nil
		}
		return tx.Where("id = ?", t.ID).Take(&t).Error // revoked concurrently
	})
	if err != nil {
		if errors.Is(err, ErrTokenNotFound) {
			return meta.Token{}, err
		}
		return meta.Token{}, fmt.Errorf("auth: revoke token: %w", err)
	}
	return t, nil
}

// GetToken returns the token id of tenant (e.g. to check CanRevokeToken
// before RevokeToken). ErrTokenNotFound when there is none.
func GetToken(ctx context.Context, db *gorm.DB, tenant, id string) (meta.Token, error) {
	var t meta.Token
	if err := db.WithContext(ctx).Where("tenant_id = ? AND id = ?", tenant, id).Take(&t).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return meta.Token{}, ErrTokenNotFound
		}
		return meta.Token{}, fmt.Errorf("auth: get token: %w", err)
	}
	return t, nil
}

// ListTokens returns the tenant's tokens, revoked and expired included,
// oldest first. Show them with Info, which leaves out the hash.
func ListTokens(ctx context.Context, db *gorm.DB, tenant string) ([]meta.Token, error) {
	var ts []meta.Token
	if err := db.WithContext(ctx).Where("tenant_id = ?", tenant).Order("created_at, id").Find(&ts).Error; err != nil {
		return nil, fmt.Errorf("auth: list tokens: %w", err)
	}
	return ts, nil
}

// Token states reported by Info.
const (
	TokenActive  = "active"
	TokenExpired = "expired"
	TokenRevoked = "revoked"
)

// TokenInfo is a token as shown by the API: everything but the hash.
type TokenInfo struct {
	ID         string     `json:"id"`
	Tenant     string     `json:"tenant"`
	Name       string     `json:"name,omitempty"`
	Role       Role       `json:"role"`
	Department string     `json:"department,omitempty"`
	Status     string     `json:"status"` // active | expired | revoked
	CreatedBy  string     `json:"created_by,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// Info returns t without its hash, with its status at now.
func Info(t meta.Token, now time.Time) TokenInfo {
	status := TokenActive
	switch {
	case t.RevokedAt != nil:
		status = TokenRevoked
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		status = TokenExpired
	}
	return TokenInfo{
		ID: t.ID, Tenant: t.TenantID, Name: t.Name, Role: Role(t.Role), Department: t.Department,
		Status: status, CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt,
		ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt, LastUsedAt: t.LastUsedAt,
	}
}
