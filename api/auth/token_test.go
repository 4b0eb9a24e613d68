package auth

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
	"gorm.io/gorm"
)

func TestNewToken(t *testing.T) {
	re := regexp.MustCompile(`^cst_[A-Za-z0-9_-]{43}$`)
	seen := map[string]bool{}
	for range 1000 {
		p, h := NewToken()
		if !re.MatchString(p) || !looksLikeOpaque(p) {
			t.Fatalf("token %q has the wrong form", p[:8])
		}
		if len(h) != 64 || h != HashToken(p) || strings.Contains(h, p) {
			t.Fatalf("hash %q", h)
		}
		if seen[p] {
			t.Fatal("duplicate token")
		}
		seen[p] = true
	}
	for _, s := range []string{"", "cst_", "cst_short", "xyz_" + strings.Repeat("a", 43), "cst_" + strings.Repeat("a", 42) + "!", "cst_" + strings.Repeat("a", 44)} {
		if looksLikeOpaque(s) {
			t.Errorf("%q looks like a token", s)
		}
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestTokens(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		clk := &clock{t: time.Now()}
		a := NewAuthenticator(db, WithClock(clk.Now))

		plain, tok, err := CreateToken(ctx, db, Spec{Tenant: "acme", Role: RoleSupervisor, Department: "sales", Name: "team lead", TTL: time.Hour, CreatedBy: "cli"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok.ID, "tok_") || tok.Hash != HashToken(plain) || tok.ExpiresAt == nil {
			t.Fatalf("token row %+v", tok)
		}
		var stored meta.Token
		if err := db.Where("id = ?", tok.ID).Take(&stored).Error; err != nil {
			t.Fatal(err)
		}
		if stored.Hash != HashToken(plain) || strings.Contains(stored.Hash+stored.Name, plain) {
			t.Fatal("the row must hold the hash only")
		}
		var tenant meta.Tenant
		if err := db.Where("id = ?", "acme").Take(&tenant).Error; err != nil {
			t.Fatalf("tenant row not created: %v", err)
		}

		p, err := a.Authenticate(ctx, plain)
		if err != nil {
			t.Fatal(err)
		}
		want := Principal{TokenID: tok.ID, Name: "team lead", Tenant: "acme", Role: RoleSupervisor, Department: "sales", Source: SourceToken, ExpiresAt: *tok.ExpiresAt}
		if p.TokenID != want.TokenID || p.Tenant != want.Tenant || p.Role != want.Role || p.Department != want.Department ||
			p.Source != want.Source || p.Name != want.Name || !p.ExpiresAt.Equal(want.ExpiresAt) {
			t.Fatalf("principal %+v, want %+v", p, want)
		}
		if p.Actor() != "token:"+tok.ID {
			t.Errorf("actor %q", p.Actor())
		}
		if _, err := a.Authenticate(ctx, "Bearer "+plain); err != nil {
			t.Errorf("a whole header value: %v", err)
		}

		// Unknown, malformed and empty credentials.
		other, _ := NewToken()
		for cred, wantErr := range map[string]error{
			other: ErrUnknownToken, plain[:len(plain)-1] + "x": ErrUnknownToken, "nonsense": ErrUnknownToken,
			"": ErrNoToken, "Bearer ": ErrNoToken, "a.b.c": ErrUnknownToken,
		} {
			if _, err := a.Authenticate(ctx, cred); !errors.Is(err, wantErr) || !IsUnauthenticated(err) {
				t.Errorf("credential %.10q: %v, want %v", cred, err, wantErr)
			}
		}

		// Expiry.
		clk.t = tok.ExpiresAt.Add(-time.Nanosecond)
		if _, err := a.Authenticate(ctx, plain); err != nil {
			t.Fatalf("just before expiry: %v", err)
		}
		clk.t = *tok.ExpiresAt
		if _, err := a.Authenticate(ctx, plain); !errors.Is(err, ErrExpired) || !IsUnauthenticated(err) {
			t.Fatalf("expired token: %v", err)
		}
		clk.t = time.Now()

		if got, err := GetToken(ctx, db, "acme", tok.ID); err != nil || got.ID != tok.ID || got.Role != "supervisor" {
			t.Fatalf("GetToken: %v %+v", err, got)
		}
		if _, err := GetToken(ctx, db, "globex", tok.ID); !errors.Is(err, ErrTokenNotFound) {
			t.Fatalf("GetToken from another tenant: %v", err)
		}

		// Revocation wins over everything and is idempotent.
		rt, err := RevokeToken(ctx, db, "acme", tok.ID)
		if err != nil || rt.RevokedAt == nil {
			t.Fatalf("revoke: %v %+v", err, rt)
		}
		first := *rt.RevokedAt
		if _, err := a.Authenticate(ctx, plain); !errors.Is(err, ErrRevoked) || !IsUnauthenticated(err) {
			t.Fatalf("revoked token: %v", err)
		}
		rt2, err := RevokeToken(ctx, db, "acme", tok.ID)
		if err != nil || rt2.RevokedAt == nil || !rt2.RevokedAt.Equal(first) {
			t.Fatalf("second revoke: %v %+v", err, rt2)
		}
		if _, err := RevokeToken(ctx, db, "globex", tok.ID); !errors.Is(err, ErrTokenNotFound) {
			t.Fatalf("revoke from another tenant: %v", err)
		}
		if _, err := RevokeToken(ctx, db, "acme", "tok_nope"); !errors.Is(err, ErrTokenNotFound) {
			t.Fatalf("revoke unknown: %v", err)
		}

		// A token without TTL never expires.
		forever, ftok, err := CreateToken(ctx, db, Spec{Tenant: "acme", Role: RoleAdmin, Name: "bootstrap"})
		if err != nil || ftok.ExpiresAt != nil {
			t.Fatalf("no-ttl token: %v %+v", err, ftok)
		}
		clk.Add(100 * 365 * 24 * time.Hour)
		if p, err := a.Authenticate(ctx, forever); err != nil || !p.ExpiresAt.IsZero() {
			t.Fatalf("no-ttl token after a century: %v %+v", err, p)
		}
		clk.Add(-100 * 365 * 24 * time.Hour)

		// Listing is per tenant, with statuses and no hash.
		if _, _, err := CreateToken(ctx, db, Spec{Tenant: "globex", Role: RoleAuditor}); err != nil {
			t.Fatal(err)
		}
		list, err := ListTokens(ctx, db, "acme")
		if err != nil || len(list) != 2 || list[0].ID != tok.ID || list[1].ID != ftok.ID {
			t.Fatalf("list: %v %+v", err, list)
		}
		if got := Info(list[0], clk.Now()).Status; got != TokenRevoked {
			t.Errorf("status %q", got)
		}
		if got := Info(list[1], clk.Now()).Status; got != TokenActive {
			t.Errorf("status %q", got)
		}
		exp := clk.Now().Add(-time.Second)
		if got := Info(meta.Token{ExpiresAt: &exp}, clk.Now()).Status; got != TokenExpired {
			t.Errorf("status %q", got)
		}
	})
}

func TestCreateTokenRejectsBadSpecs(t *testing.T) {
	db := metatest.SQLite(t)
	for _, s := range []Spec{
		{Tenant: "", Role: RoleAdmin},
		{Tenant: "../etc", Role: RoleAdmin},
		{Tenant: "a", Role: "root"},
		{Tenant: "a", Role: ""},
		{Tenant: "a", Role: RoleSupervisor},
		{Tenant: "a", Role: RoleAdmin, TTL: -time.Second},
		{Tenant: "a", Role: RoleAdmin, Name: "line\nbreak"},
		{Tenant: "a", Role: RoleIngest, Department: strings.Repeat("d", 129)},
	} {
		if _, _, err := CreateToken(context.Background(), db, s); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("CreateToken(%+v): %v, want ErrInvalidSpec", s, err)
		}
	}
	var n int64
	db.Model(&meta.Token{}).Count(&n)
	if n != 0 {
		t.Errorf("%d tokens stored from bad specs", n)
	}
}

func TestLastUsedAtMostOncePerMinute(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
		a := NewAuthenticator(db, WithClock(clk.Now))
		plain, tok, err := CreateToken(ctx, db, Spec{Tenant: "acme", Role: RoleIngest})
		if err != nil {
			t.Fatal(err)
		}
		lastUsed := func() time.Time {
			t.Helper()
			var r meta.Token
			if err := db.Where("id = ?", tok.ID).Take(&r).Error; err != nil {
				t.Fatal(err)
			}
			if r.LastUsedAt == nil {
				return time.Time{}
			}
			return r.LastUsedAt.UTC()
		}
		if !lastUsed().IsZero() {
			t.Fatal("last used before any use")
		}
		t0 := clk.Now()
		auth := func() {
			t.Helper()
			if _, err := a.Authenticate(ctx, plain); err != nil {
				t.Fatal(err)
			}
		}
		auth()
		if got := lastUsed(); !got.Equal(t0) {
			t.Fatalf("first use: last used %v, want %v", got, t0)
		}
		clk.Add(30 * time.Second)
		auth()
		if got := lastUsed(); !got.Equal(t0) {
			t.Fatalf("30 s later: last used %v, want unchanged %v", got, t0)
		}
		clk.Add(31 * time.Second)
		auth()
		if got := lastUsed(); !got.Equal(t0.Add(61 * time.Second)) {
			t.Fatalf("61 s later: last used %v, want %v", got, t0.Add(61*time.Second))
		}
	})
}

func BenchmarkAuthenticateToken(b *testing.B) {
	db := metatest.SQLite(b)
	ctx := context.Background()
	plain, _, err := CreateToken(ctx, db, Spec{Tenant: "acme", Role: RoleIngest})
	if err != nil {
		b.Fatal(err)
	}
	a := NewAuthenticator(db)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, plain); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthorize(b *testing.B) {
	p := Principal{Tenant: "acme", Role: RoleSupervisor, Department: "sales"}
	res := Resource{Tenant: "acme", Department: "sales"}
	b.ReportAllocs()
	for b.Loop() {
		if Authorize(p, MediaRead, res) != Allow {
			b.Fatal("denied")
		}
	}
}
