package retention

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/storage/meta/metatest"
)

func TestNewHold(t *testing.T) {
	many := make([]string, MaxHoldIDs+1)
	for i := range many {
		many[i] = sessionName(i)
	}
	tests := []struct {
		name      string
		spec      HoldSpec
		wantField string // "" = valid
	}{
		{"sessions", HoldSpec{Tenant: "default", Name: "SEC inquiry 42", Reason: "r", SessionIDs: []string{"s2", "s1", "s2"}}, ""},
		{"participants", HoldSpec{Tenant: "default", Name: "x", Reason: "r", ParticipantIDs: []string{"alice@example.com"}}, ""},
		{"both with reason", HoldSpec{Tenant: "t", Name: "x", Reason: "line 1\nline 2", SessionIDs: []string{"s"}, ParticipantIDs: []string{"p"}}, ""},
		{"no name", HoldSpec{Tenant: "default", Reason: "r", SessionIDs: []string{"s"}}, "name"},
		{"blank name", HoldSpec{Tenant: "default", Name: "  \t", Reason: "r", SessionIDs: []string{"s"}}, "name"},
		{"long name", HoldSpec{Tenant: "default", Name: strings.Repeat("n", MaxHoldNameLen+1), Reason: "r", SessionIDs: []string{"s"}}, "name"},
		{"control in name", HoldSpec{Tenant: "default", Name: "a\x00b", Reason: "r", SessionIDs: []string{"s"}}, "name"},
		{"newline in name", HoldSpec{Tenant: "default", Name: "a\nb", Reason: "r", SessionIDs: []string{"s"}}, "name"},
		{"long reason", HoldSpec{Tenant: "default", Name: "x", Reason: strings.Repeat("r", MaxHoldReasonLen+1), SessionIDs: []string{"s"}}, "reason"},
		{"escape in reason", HoldSpec{Tenant: "default", Name: "x", Reason: "\x1b[31m", SessionIDs: []string{"s"}}, "reason"},
		{"nothing named", HoldSpec{Tenant: "default", Name: "x", Reason: "r"}, "session_ids"},
		{"no reason", HoldSpec{Tenant: "default", Name: "x", SessionIDs: []string{"s"}}, "reason"},
		{"blank reason", HoldSpec{Tenant: "default", Name: "x", Reason: " \n ", SessionIDs: []string{"s"}}, "reason"},
		{"empty lists", HoldSpec{Tenant: "default", Name: "x", Reason: "r", SessionIDs: []string{}, ParticipantIDs: []string{}}, "session_ids"},
		{"bad session id", HoldSpec{Tenant: "default", Name: "x", Reason: "r", SessionIDs: []string{"../etc"}}, "session_ids"},
		{"empty session id", HoldSpec{Tenant: "default", Name: "x", Reason: "r", SessionIDs: []string{""}}, "session_ids"},
		{"bad participant id", HoldSpec{Tenant: "default", Name: "x", Reason: "r", ParticipantIDs: []string{"a b"}}, "participant_ids"},
		{"too many ids", HoldSpec{Tenant: "default", Name: "x", Reason: "r", SessionIDs: many}, "session_ids"},
		{"bad tenant", HoldSpec{Tenant: "", Name: "x", Reason: "r", SessionIDs: []string{"s"}}, "tenant"},
	}
	now := time.Date(2030, 1, 2, 3, 4, 5, 6789, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHold(tt.spec, now)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("NewHold: %v", err)
				}
				if !strings.HasPrefix(h.ID, HoldIDPrefix+"_") || h.TenantID != tt.spec.Tenant || h.ReleasedAt != nil ||
					!h.CreatedAt.Equal(now.Truncate(time.Microsecond)) {
					t.Fatalf("hold = %+v", h)
				}
				if !slices.IsSorted(h.SessionIDs.V) || len(slices.Compact(slices.Clone(h.SessionIDs.V))) != len(h.SessionIDs.V) {
					t.Errorf("session ids not sorted and unique: %v", h.SessionIDs.V)
				}
				return
			}
			var he *HoldError
			if !errors.As(err, &he) || !errors.Is(err, ErrInvalidHold) || he.Field != tt.wantField {
				t.Fatalf("NewHold error = %v, want a HoldError on %s", err, tt.wantField)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	h := meta.LegalHold{SessionIDs: meta.NewJSON([]string{"s1", "s2"}), ParticipantIDs: meta.NewJSON([]string{"alice"})}
	tests := []struct {
		session, participant string
		want                 bool
	}{
		{"s1", "bob", true},
		{"s2", "", true},
		{"s3", "alice", true},
		{"", "alice", true},
		{"s3", "bob", false},
		{"", "", false},
		{"S1", "Alice", false}, // exact, case-sensitive
	}
	for _, tt := range tests {
		if got := Covers(&h, tt.session, tt.participant); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tt.session, tt.participant, got, tt.want)
		}
	}
}

// TestHeld: what the recorder asks at recording start; active holds of
// the same tenant only.
func TestHeld(t *testing.T) {
	metatest.Each(t, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		e := newEnv(t, db, nil)
		h, _ := e.hold("default", []string{"s1"}, []string{"alice"})
		e.hold("other", []string{"s9"}, nil)
		tests := []struct {
			tenant, session, participant string
			want                         bool
		}{
			{"default", "s1", "bob", true},
			{"default", "s2", "alice", true},
			{"default", "s2", "bob", false},
			{"default", "s9", "bob", false}, // another tenant's hold
			{"other", "s9", "x", true},
			{"other", "s1", "alice", false},
		}
		for _, tt := range tests {
			got, err := Held(ctx, db, tt.tenant, tt.session, tt.participant)
			if err != nil || got != tt.want {
				t.Errorf("Held(%s, %s, %s) = %v, %v; want %v", tt.tenant, tt.session, tt.participant, got, err, tt.want)
			}
		}
		covering, err := HoldsCovering(ctx, db, "default", "s1", "")
		if err != nil || len(covering) != 1 || covering[0].ID != h.ID {
			t.Fatalf("HoldsCovering = %v, %v", covering, err)
		}
		e.release(h)
		if got, err := Held(ctx, db, "default", "s1", "alice"); err != nil || got {
			t.Errorf("Held after release = %v, %v; want false", got, err)
		}

		// HoldForWrite fails safe: a lookup error means held.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if got, err := HoldForWrite(cctx, db, "default", "s2", "bob"); err == nil || !got {
			t.Errorf("HoldForWrite with a failing lookup = %v, %v; want true and the error", got, err)
		}
		if got, err := HoldForWrite(ctx, db, "other", "s9", ""); err != nil || !got {
			t.Errorf("HoldForWrite = %v, %v; want true", got, err)
		}
	})
}

func TestCoveredRecordings(t *testing.T) {
	db := metatest.SQLite(t)
	e := newEnv(t, db, nil)
	in := ptr(time.Now().Add(day))
	a := e.record(recOpts{session: "s1", participant: "p1", retainUntil: in})
	b := e.record(recOpts{session: "s2", participant: "alice", retainUntil: in})
	e.record(recOpts{session: "s2", participant: "bob", retainUntil: in})
	e.record(recOpts{tenant: "other", session: "s1", participant: "alice", retainUntil: in})
	h, lost := e.hold("default", []string{"s1"}, []string{"alice"})
	if len(lost) != 0 {
		t.Fatalf("lost = %v", lost)
	}
	recs, err := CoveredRecordings(context.Background(), db, &h)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	want := []string{a.ID, b.ID}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("covered = %v, want %v", ids, want)
	}
}

// FuzzNewHold: any request either fails with a *HoldError or yields a
// hold whose ids are valid, sorted and unique and that names something.
func FuzzNewHold(f *testing.F) {
	f.Add("matter", "reason", "s1,s2", "alice")
	f.Add("", "", "", "")
	f.Add("x\x00", "\x1b", "../a", "a b")
	f.Fuzz(func(t *testing.T, name, reason, sessions, participants string) {
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		h, err := NewHold(HoldSpec{Tenant: "default", Name: name, Reason: reason, SessionIDs: split(sessions), ParticipantIDs: split(participants)}, time.Now())
		if err != nil {
			var he *HoldError
			if !errors.As(err, &he) {
				t.Fatalf("error %v is not a HoldError", err)
			}
			return
		}
		if h.Name == "" || h.Reason == "" || len(h.SessionIDs.V)+len(h.ParticipantIDs.V) == 0 {
			t.Fatalf("accepted an empty hold: %+v", h)
		}
		for _, ids := range [][]string{h.SessionIDs.V, h.ParticipantIDs.V} {
			if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
				t.Fatalf("ids not sorted and unique: %v", ids)
			}
			for _, id := range ids {
				if !meta.ValidID(id) {
					t.Fatalf("accepted invalid id %q", id)
				}
			}
		}
	})
}
