package api

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/custodian/custodian/api/auth"
)

func testTickets(tb testing.TB, now time.Time) *MediaTickets {
	tb.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return NewMediaTickets(NewServer(Options{}), MediaTicketOptions{Key: key, Clock: func() time.Time { return now }})
}

func validClaims(now time.Time) ticketClaims {
	return ticketClaims{Recording: "rec_1", Tenant: "default", Role: string(auth.RoleCompliance), Source: auth.SourceToken,
		TokenID: "tok_1", Expires: now.Add(time.Minute).UnixMilli()}
}

// A ticket round-trips; changing any byte of it makes it invalid; it
// expires at its expiry.
func TestTicketSignVerify(t *testing.T) {
	now := time.Now()
	m := testTickets(t, now)
	c := validClaims(now)
	tk, err := m.sign(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.verify(tk)
	if err != nil || got != c {
		t.Fatalf("verify: %+v %v", got, err)
	}
	for i := range len(tk) {
		b := []byte(tk)
		b[i] ^= 0x01
		if _, err := m.verify(string(b)); err == nil {
			t.Fatalf("a ticket with byte %d flipped verified", i)
		} else if !auth.IsUnauthenticated(err) {
			t.Fatalf("byte %d: %v is not an authentication error", i, err)
		}
	}
	// Another gateway's key (another deployment) does not verify it.
	if _, err := testTickets(t, now).verify(tk); !errors.Is(err, ErrTicketInvalid) {
		t.Errorf("another key: %v", err)
	}
	m.opts.Clock = func() time.Time { return now.Add(time.Minute) }
	if _, err := m.verify(tk); !errors.Is(err, ErrTicketExpired) || !errors.Is(err, auth.ErrExpired) {
		t.Errorf("at expiry: %v", err)
	}
	// Claims that do not make a principal are refused even when signed.
	for _, bad := range []ticketClaims{
		{Recording: "../x", Tenant: "t", Role: "admin", Expires: c.Expires},
		{Recording: "rec_1", Tenant: "", Role: "admin", Expires: c.Expires},
		{Recording: "rec_1", Tenant: "t", Role: "root", Expires: c.Expires},
	} {
		tk, _ := m.sign(bad)
		if _, err := m.verify(tk); !errors.Is(err, ErrTicketInvalid) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// FuzzMediaTicket: verify never panics, and accepts nothing but the one
// ticket the key signed.
func FuzzMediaTicket(f *testing.F) {
	now := time.Now()
	m := testTickets(f, now)
	valid, err := m.sign(validClaims(now))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add("")
	f.Add(".")
	f.Add("e30.AAAA")
	f.Add(valid[:len(valid)-1])
	f.Add(valid + "." + valid)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := m.verify(s)
		if err == nil && s != valid {
			t.Fatalf("verified %q as %+v", s, c)
		}
		if err != nil && !auth.IsUnauthenticated(err) {
			t.Fatalf("%q: %v is not an authentication error", s, err)
		}
	})
}

// BenchmarkMediaTicketVerify is the cost a ticket adds to each media
// request (signature and claims; the token check is one indexed query).
func BenchmarkMediaTicketVerify(b *testing.B) {
	now := time.Now()
	m := testTickets(b, now)
	tk, err := m.sign(validClaims(now))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.verify(tk); err != nil {
			b.Fatal(err)
		}
	}
}
