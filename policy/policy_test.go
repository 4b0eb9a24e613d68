package policy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

// testDoc is a realistic document for a bank, a contact center and a
// hospital sharing one gateway.
const testDoc = `
policies:
  - name: pci-payments
    match: {tenant: bank, labels: {queue: payments}}
    record: required
    consent: notice
    transcribe: true
    redact_pii: true
    keep_unredacted: false
    retention: 3650d
    access: {roles: [compliance]}
  - name: sales-agents
    match: {tenant: default, department: sales, labels: {queue: billing}, participant: {role: agent}}
    record: required
    consent: required
    transcribe: true
    redact_pii: true
    retention: 2190d
    access: {departments: [sales], roles: [compliance, supervisor]}
  - name: sales-customers
    match: {tenant: default, department: sales}
    consent: required
    retention: 720h
  - name: hospital-psych
    match:
      tenant: hospital
      department: psychiatry
    record: "off"
  - name: hospital
    match: {tenant: hospital}
    record: optional
    consent: required
    transcribe: true
    transcription_engine: openai  # the hospital's own whisper server
    keep_unredacted: true
    retention: 10950d  # 30 years
  - name: training
    match: {labels: {training: "yes"}}
    record: optional
    consent: none
    transcribe: true
    redact_pii: false
    retention: 30d
  - name: archive-100y
    match: {tenant: archive}
    retention: 36600d
`

func mustParse(tb testing.TB, doc string) *Set {
	tb.Helper()
	s, err := Parse([]byte(doc))
	if err != nil {
		tb.Fatalf("Parse: %v", err)
	}
	return s
}

func TestDecide(t *testing.T) {
	set := mustParse(t, testDoc)
	type want struct {
		rule       string
		record     Record
		consent    Consent
		transcribe bool
		redact     bool
		keep       bool
		retention  time.Duration
		access     Access
		engine     string
	}
	def := want{rule: "", record: RecordRequired, consent: ConsentNotice, redact: true, retention: DefaultRetention}
	pci := want{rule: "pci-payments", record: RecordRequired, consent: ConsentNotice, transcribe: true, redact: true,
		retention: 3650 * day, access: Access{Roles: []string{"compliance"}}}
	agents := want{rule: "sales-agents", record: RecordRequired, consent: ConsentRequired, transcribe: true, redact: true,
		retention: 2190 * day, access: Access{Departments: []string{"sales"}, Roles: []string{"compliance", "supervisor"}}}
	customers := want{rule: "sales-customers", record: RecordRequired, consent: ConsentRequired, redact: true, retention: 720 * time.Hour}
	psych := want{rule: "hospital-psych", record: RecordOff, consent: ConsentNotice, redact: true, retention: DefaultRetention}
	hospital := want{rule: "hospital", record: RecordOptional, consent: ConsentRequired, transcribe: true, redact: true, keep: true, retention: 10950 * day, engine: "openai"}
	training := want{rule: "training", record: RecordOptional, consent: ConsentNone, transcribe: true, retention: 30 * day}
	archive := want{rule: "archive-100y", record: RecordRequired, consent: ConsentNotice, redact: true, retention: 36600 * day}

	tests := []struct {
		name string
		in   Input
		want want
	}{
		{"tenant and label match", Input{Tenant: "bank", Labels: map[string]string{"queue": "payments"}}, pci},
		{"extra labels do not hurt", Input{Tenant: "bank", Department: "cards", Labels: map[string]string{"queue": "payments", "lang": "fr"}}, pci},
		{"participant attributes ignored by rule without participant match", Input{Tenant: "bank", Labels: map[string]string{"queue": "payments"}, Participant: map[string]string{"role": "customer"}}, pci},
		{"label value differs", Input{Tenant: "bank", Labels: map[string]string{"queue": "mortgages"}}, def},
		{"label values are case sensitive", Input{Tenant: "bank", Labels: map[string]string{"queue": "Payments"}}, def},
		{"label missing", Input{Tenant: "bank"}, def},
		{"label on wrong tenant", Input{Tenant: "bank2", Labels: map[string]string{"queue": "payments"}}, def},
		{"all conditions with participant", Input{Tenant: "default", Department: "sales", Labels: map[string]string{"queue": "billing"}, Participant: map[string]string{"role": "agent", "site": "lyon"}}, agents},
		{"participant attribute differs falls through", Input{Tenant: "default", Department: "sales", Labels: map[string]string{"queue": "billing"}, Participant: map[string]string{"role": "customer"}}, customers},
		{"session-level decision skips participant rules", Input{Tenant: "default", Department: "sales", Labels: map[string]string{"queue": "billing"}}, customers},
		{"participant without the attribute", Input{Tenant: "default", Department: "sales", Labels: map[string]string{"queue": "billing"}, Participant: map[string]string{"name": "x"}}, customers},
		{"other queue same department", Input{Tenant: "default", Department: "sales", Labels: map[string]string{"queue": "renewals"}, Participant: map[string]string{"role": "agent"}}, customers},
		{"department mismatch no rule", Input{Tenant: "default", Department: "support"}, def},
		{"department is exact", Input{Tenant: "default", Department: "Sales"}, def},
		{"tenant mismatch with matching department", Input{Tenant: "acme", Department: "sales", Labels: map[string]string{"queue": "billing"}, Participant: map[string]string{"role": "agent"}}, def},
		{"record off for psychiatry", Input{Tenant: "hospital", Department: "psychiatry"}, psych},
		{"first match wins over later broader rule", Input{Tenant: "hospital", Department: "psychiatry", Labels: map[string]string{"training": "yes"}}, psych},
		{"hospital 30 years", Input{Tenant: "hospital", Department: "cardiology"}, hospital},
		{"hospital without department", Input{Tenant: "hospital"}, hospital},
		{"label-only rule any tenant", Input{Tenant: "default", Department: "support", Labels: map[string]string{"training": "yes"}}, training},
		{"label-only rule empty tenant", Input{Labels: map[string]string{"training": "yes"}}, training},
		{"earlier rule beats label-only rule", Input{Tenant: "default", Department: "sales", Labels: map[string]string{"training": "yes"}}, customers},
		{"label-only rule needs exact value", Input{Tenant: "default", Labels: map[string]string{"training": "no"}}, def},
		{"retention 100 years", Input{Tenant: "archive"}, archive},
		{"empty input", Input{}, def},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := set.Decide(tt.in)
			got := want{d.Rule, d.Record, d.Consent, d.Transcribe, d.RedactPII, d.KeepUnredacted, d.Retention, d.Access, d.TranscriptionEngine}
			if got.rule != tt.want.rule || got.record != tt.want.record || got.consent != tt.want.consent ||
				got.transcribe != tt.want.transcribe || got.redact != tt.want.redact || got.keep != tt.want.keep ||
				got.retention != tt.want.retention || got.engine != tt.want.engine ||
				!slices.Equal(got.access.Roles, tt.want.access.Roles) || !slices.Equal(got.access.Departments, tt.want.access.Departments) {
				t.Errorf("Decide(%+v)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
			if d.Matched() != (tt.want.rule != "") {
				t.Errorf("Matched() = %v", d.Matched())
			}
		})
	}
}

func TestDecideEmptyMatchAndOrder(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		in       Input
		wantRule string
		wantRec  Record
		warnings int
	}{
		{"empty match matches everything", `[{name: all, match: {}, record: "off"}]`, Input{Tenant: "x", Department: "y"}, "all", RecordOff, 0},
		{"omitted match matches everything", `[{name: all, record: optional}]`, Input{Tenant: "x"}, "all", RecordOptional, 0},
		{"catch-all last is a fallback", `[{name: s, match: {department: sales}, record: required}, {name: rest, match: {}, record: "off"}]`, Input{Tenant: "t", Department: "hr"}, "rest", RecordOff, 0},
		{"specific rule before catch-all wins", `[{name: s, match: {department: sales}, record: required}, {name: rest, match: {}, record: "off"}]`, Input{Tenant: "t", Department: "sales"}, "s", RecordRequired, 0},
		{"catch-all first shadows everything after", `[{name: all, match: {}, record: "off"}, {name: s, match: {department: sales}, record: required}]`, Input{Tenant: "t", Department: "sales"}, "all", RecordOff, 1},
		{"broader earlier rule shadows narrower later one", `[{name: t, match: {tenant: a}, record: optional}, {name: ts, match: {tenant: a, department: d, labels: {k: v}}, record: required}]`, Input{Tenant: "a", Department: "d", Labels: map[string]string{"k": "v"}}, "t", RecordOptional, 1},
		{"identical matches conflict: first wins", `[{name: one, match: {department: d}, record: "off"}, {name: two, match: {department: d}, record: required}]`, Input{Department: "d"}, "one", RecordOff, 1},
		{"narrower earlier rule does not shadow", `[{name: ts, match: {tenant: a, department: d}, record: required}, {name: t, match: {tenant: a}, record: optional}]`, Input{Tenant: "a", Department: "e"}, "t", RecordOptional, 0},
		{"disjoint rules do not shadow", `[{name: a, match: {labels: {q: "1"}}}, {name: b, match: {labels: {q: "2"}}}]`, Input{Labels: map[string]string{"q": "2"}}, "b", RecordRequired, 0},
		{"no rules: default", `policies: []`, Input{Tenant: "x"}, "", RecordRequired, 0},
		{"null policies: default", `policies:`, Input{Tenant: "x"}, "", RecordRequired, 0},
		{"empty document: default", ``, Input{Tenant: "x"}, "", RecordRequired, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.doc)
			d := s.Decide(tt.in)
			if d.Rule != tt.wantRule || d.Record != tt.wantRec {
				t.Errorf("Decide = rule %q record %q, want %q %q", d.Rule, d.Record, tt.wantRule, tt.wantRec)
			}
			ws := s.Warnings()
			n := 0
			for _, w := range ws {
				if strings.Contains(w.Message, "never matches") {
					n++
				}
			}
			if n != tt.warnings {
				t.Errorf("shadow warnings = %d (%v), want %d", n, ws, tt.warnings)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	s := mustParse(t, `[{name: bare}]`)
	r := s.Rules()[0]
	if r.Record != RecordRequired || r.Consent != ConsentNotice || r.Transcribe || !r.RedactPII || r.KeepUnredacted || r.Retention != 0 {
		t.Errorf("defaults of a bare rule: %+v", r)
	}
	d := s.Decide(Input{})
	if d.Rule != "bare" || d.Retention != DefaultRetention {
		t.Errorf("decision of a bare rule: %+v", d)
	}
	s2 := s.WithDefaultRetention(400 * day)
	if got := s2.Decide(Input{}).Retention; got != 400*day {
		t.Errorf("WithDefaultRetention: retention %v", got)
	}
	if got := s.Decide(Input{}).Retention; got != DefaultRetention {
		t.Errorf("WithDefaultRetention changed the original: %v", got)
	}
	var nilSet *Set
	if d := nilSet.Decide(Input{Tenant: "x"}); d.Rule != "" || d.Record != RecordRequired || d.Consent != ConsentNotice || !d.RedactPII || d.Retention != DefaultRetention {
		t.Errorf("nil set decision: %+v", d)
	}
	if nilSet.WithDefaultRetention(day).Decide(Input{}).Retention != day {
		t.Error("nil set WithDefaultRetention")
	}
}

func TestDecisionDoesNotAlias(t *testing.T) {
	s := mustParse(t, testDoc)
	in := Input{Tenant: "bank", Labels: map[string]string{"queue": "payments"}}
	d := s.Decide(in)
	d.Access.Roles[0] = "supervisor"
	if got := s.Decide(in).Access.Roles[0]; got != "compliance" {
		t.Fatalf("mutating a decision changed the set: %q", got)
	}
	rules := s.Rules()
	rules[1].Match.Labels["queue"] = "changed"
	if got := s.Rules()[1].Match.Labels["queue"]; got != "billing" {
		t.Fatalf("mutating Rules() changed the set: %q", got)
	}
}

func TestShouldStore(t *testing.T) {
	tests := []struct {
		record  Record
		consent Consent
		state   string
		want    bool
	}{
		{RecordRequired, ConsentRequired, StateGranted, true},
		{RecordRequired, ConsentRequired, StateDenied, false},
		{RecordRequired, ConsentRequired, StateUnknown, false},
		{RecordRequired, ConsentRequired, "", false},
		{RecordOptional, ConsentRequired, StateGranted, true},
		{RecordRequired, ConsentNotice, StateUnknown, true},
		{RecordRequired, ConsentNotice, StateDenied, true},
		{RecordOptional, ConsentNone, "", true},
		{RecordOff, ConsentNone, StateGranted, false},
		{RecordOff, ConsentRequired, StateGranted, false},
		{RecordRequired, Consent("bogus"), StateUnknown, false},
		{RecordRequired, Consent("bogus"), StateGranted, true},
		{Record("bogus"), ConsentNone, StateGranted, false},
	}
	for _, tt := range tests {
		d := Decision{Record: tt.record, Consent: tt.consent}
		if got := d.ShouldStore(tt.state); got != tt.want {
			t.Errorf("record %s consent %s state %q: ShouldStore = %v, want %v", tt.record, tt.consent, tt.state, got, tt.want)
		}
	}
}

func TestRetainUntil(t *testing.T) {
	start := time.Date(2024, 2, 29, 13, 30, 0, 0, time.UTC)
	tests := []struct {
		retention time.Duration
		want      time.Time
	}{
		{30 * day, time.Date(2024, 3, 30, 13, 30, 0, 0, time.UTC)},
		{2190 * day, time.Date(2030, 2, 27, 13, 30, 0, 0, time.UTC)}, // 6 years of 365 days, two leap days inside
		{3653 * day, time.Date(2034, 3, 1, 13, 30, 0, 0, time.UTC)},
		{36600 * day, time.Date(2124, 5, 15, 13, 30, 0, 0, time.UTC)},
		{36 * time.Hour, time.Date(2024, 3, 2, 1, 30, 0, 0, time.UTC)},
		{0, start.Add(DefaultRetention)},
	}
	for _, tt := range tests {
		if got := RetainUntil(start, Decision{Retention: tt.retention}); !got.Equal(tt.want) {
			t.Errorf("RetainUntil(%v) = %v, want %v", tt.retention, got, tt.want)
		}
	}
}

func TestCanAccess(t *testing.T) {
	open := Decision{}
	compOnly := Decision{Access: Access{Roles: []string{"compliance"}}}
	salesSup := Decision{Access: Access{Departments: []string{"sales"}, Roles: []string{"compliance", "supervisor"}}}
	deptOnly := Decision{Access: Access{Departments: []string{"sales", "quality"}}}
	adminOnly := Decision{Access: Access{Roles: []string{"admin"}}}
	tests := []struct {
		name string
		d    Decision
		role string
		dept string
		want bool
	}{
		{"admin open", open, "admin", "", true},
		{"admin not listed still reads", compOnly, "admin", "", true},
		{"compliance open", open, "compliance", "", true},
		{"compliance listed", compOnly, "compliance", "", true},
		{"compliance not listed", adminOnly, "compliance", "", false},
		{"supervisor open", open, "supervisor", "sales", true},
		{"supervisor without department", open, "supervisor", "", false},
		{"supervisor not listed", compOnly, "supervisor", "sales", false},
		{"supervisor listed right department", salesSup, "supervisor", "sales", true},
		{"supervisor listed wrong department", salesSup, "supervisor", "support", false},
		{"supervisor departments only", deptOnly, "supervisor", "quality", true},
		{"supervisor departments only wrong", deptOnly, "supervisor", "hr", false},
		{"compliance ignores departments", deptOnly, "compliance", "", true},
		{"auditor never", open, "auditor", "", false},
		{"ingest never", open, "ingest", "sales", false},
		{"unknown role never", open, "root", "", false},
		{"empty role never", open, "", "", false},
	}
	for _, tt := range tests {
		if got := CanAccess(tt.d, tt.role, tt.dept); got != tt.want {
			t.Errorf("%s: CanAccess = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDecisionJSON(t *testing.T) {
	s := mustParse(t, testDoc)
	for _, in := range []Input{
		{Tenant: "default", Department: "sales", Labels: map[string]string{"queue": "billing"}, Participant: map[string]string{"role": "agent"}},
		{Tenant: "default", Department: "sales"},
		{Tenant: "nobody"},
		{Tenant: "archive"},
		{Tenant: "hospital"},
	} {
		d := s.Decide(in)
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"rule", "record", "consent", "transcribe", "redact_pii", "keep_unredacted", "retention", "access"} {
			if _, ok := m[k]; !ok {
				t.Errorf("decision JSON %s lacks %q", b, k)
			}
		}
		var back Decision
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		if !decisionEqual(back, d) {
			t.Errorf("JSON round trip: %+v != %+v", back, d)
		}
	}
	// The engine is written only when a rule names one, so decisions
	// stored before the key existed read back the same.
	if b, _ := json.Marshal(s.Decide(Input{Tenant: "hospital"})); !strings.Contains(string(b), `"transcription_engine":"openai"`) {
		t.Errorf("hospital decision lacks its engine: %s", b)
	}
	if b, _ := json.Marshal(s.Decide(Input{Tenant: "bank"})); strings.Contains(string(b), "transcription_engine") {
		t.Errorf("decision without an engine writes one: %s", b)
	}
	b, _ := json.Marshal(s.Decide(Input{Tenant: "default", Department: "sales"}))
	if !strings.Contains(string(b), `"retention":"30d"`) {
		t.Errorf("720h should be written as 30d: %s", b)
	}
	if err := json.Unmarshal([]byte(`{"retention":"forever"}`), new(Decision)); err == nil {
		t.Error("bad retention in decision JSON accepted")
	}
}

func TestFormatRetention(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "", day: "1d", 2190 * day: "2190d", 36 * time.Hour: "36h0m0s", 90 * time.Minute: "1h30m0s", 36600 * day: "36600d",
	} {
		if got := FormatRetention(d); got != want {
			t.Errorf("FormatRetention(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestNewSet(t *testing.T) {
	s, err := NewSet(
		Rule{Name: "a", Match: Match{Department: "sales"}, Transcribe: true, RedactPII: true, Retention: 90 * day},
		Rule{Name: "b"},
	)
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Decide(Input{Department: "sales"}); d.Rule != "a" || d.Record != RecordRequired || d.Consent != ConsentNotice || d.Retention != 90*day {
		t.Errorf("NewSet decision: %+v", d)
	}
	if d := s.Decide(Input{Department: "hr"}); d.Rule != "b" {
		t.Errorf("NewSet fallback: %+v", d)
	}
	bad := []Rule{
		{Name: ""},
		{Name: "has space"},
		{Name: "x", Record: "sometimes"},
		{Name: "x", Consent: "maybe"},
		{Name: "x", Retention: -day},
		{Name: "x", Retention: 40000 * day},
		{Name: "x", Access: Access{Roles: []string{"auditor"}}},
		{Name: "x", Record: RecordOff, Transcribe: true},
		{Name: "x", Transcribe: true, TranscriptionEngine: "whisper"},
		{Name: "x", Transcribe: true, TranscriptionEngine: "none"},
	}
	for _, r := range bad {
		if _, err := NewSet(r); err == nil {
			t.Errorf("NewSet(%+v) accepted", r)
		}
	}
	if _, err := NewSet(Rule{Name: "x"}, Rule{Name: "x"}); err == nil {
		t.Error("NewSet accepted duplicate names")
	}
}

func decisionEqual(a, b Decision) bool {
	return a.Rule == b.Rule && a.Record == b.Record && a.Consent == b.Consent && a.Transcribe == b.Transcribe &&
		a.RedactPII == b.RedactPII && a.KeepUnredacted == b.KeepUnredacted && a.Retention == b.Retention &&
		a.TranscriptionEngine == b.TranscriptionEngine &&
		slices.Equal(a.Access.Roles, b.Access.Roles) && slices.Equal(a.Access.Departments, b.Access.Departments)
}
