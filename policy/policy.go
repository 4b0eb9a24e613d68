package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/custodian/custodian/config"
)

// Record says whether a participant's media is recorded.
type Record string

// Record values.
const (
	// RecordRequired records and fails closed: when recording cannot run,
	// the session's recording_status turns failed so the application can
	// block the call.
	RecordRequired Record = "required"
	// RecordOptional records when it can; a failure is reported but the
	// application is not expected to block the call.
	RecordOptional Record = "optional"
	// RecordOff never stores media.
	RecordOff Record = "off"
)

// Consent says what a participant must have given before media is stored.
type Consent string

// Consent values.
const (
	// ConsentRequired stores a participant's media only while the consent
	// ledger says granted; nothing is stored before or without it.
	ConsentRequired Consent = "required"
	// ConsentNotice stores media; the application is expected to have
	// played or shown a recording notice. Consent states are still kept.
	ConsentNotice Consent = "notice"
	// ConsentNone stores media; no notice or consent is involved.
	ConsentNone Consent = "none"
)

// Consent states as kept by the consent ledger (meta.Participant.Consent).
const (
	StateGranted = "granted"
	StateDenied  = "denied"
	StateUnknown = "unknown"
)

// Roles that an access rule may name. They are the content-reading roles
// of api/auth; auditor and ingest can never read content.
const (
	RoleAdmin      = "admin"
	RoleCompliance = "compliance"
	RoleSupervisor = "supervisor"
)

// DefaultRetention is the retention of a decision whose rule sets none,
// unless the Set was given another with WithDefaultRetention: 2555 days,
// about seven years (config retention.default has the same default).
const DefaultRetention = 2555 * 24 * time.Hour

// Match selects the sessions and participants a rule applies to. Every
// field that is set must match; an empty Match matches everything.
type Match struct {
	Tenant     string `json:"tenant,omitempty" yaml:"tenant,omitempty"`
	Department string `json:"department,omitempty" yaml:"department,omitempty"`
	// Labels must all be present on the session with the same values.
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	// Participant attributes (e.g. role: agent) must all be present on the
	// participant with the same values.
	Participant map[string]string `json:"participant,omitempty" yaml:"participant,omitempty"`
}

// IsEmpty reports whether m matches everything.
func (m Match) IsEmpty() bool {
	return m.Tenant == "" && m.Department == "" && len(m.Labels) == 0 && len(m.Participant) == 0
}

// Matches reports whether in fits every condition of m.
func (m Match) Matches(in Input) bool {
	if m.Tenant != "" && m.Tenant != in.Tenant {
		return false
	}
	if m.Department != "" && m.Department != in.Department {
		return false
	}
	return subset(m.Labels, in.Labels) && subset(m.Participant, in.Participant)
}

// covers reports whether every input matching o also matches m, i.e. m's
// conditions are a subset of o's.
func (m Match) covers(o Match) bool {
	if m.Tenant != "" && m.Tenant != o.Tenant {
		return false
	}
	if m.Department != "" && m.Department != o.Department {
		return false
	}
	return subset(m.Labels, o.Labels) && subset(m.Participant, o.Participant)
}

// subset reports whether every key of want is in have with the same value.
func subset(want, have map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// Access narrows who may read what a rule governs. It never grants more
// than a role has (see CanAccess); an empty field means no narrowing.
type Access struct {
	// Departments whose supervisors may read; empty: any supervisor whose
	// own department scope covers the item.
	Departments []string `json:"departments,omitempty" yaml:"departments,omitempty"`
	// Roles among admin, compliance and supervisor that may read; empty:
	// every content-reading role. Admin may always read.
	Roles []string `json:"roles,omitempty" yaml:"roles,omitempty"`
}

func (a Access) clone() Access {
	return Access{Departments: slices.Clone(a.Departments), Roles: slices.Clone(a.Roles)}
}

// Rule is one entry of a policy document, with defaults applied.
type Rule struct {
	Name           string
	Match          Match
	Record         Record
	Consent        Consent
	Transcribe     bool
	RedactPII      bool
	KeepUnredacted bool
	// TranscriptionEngine names the engine that transcribes the rule's
	// recordings (one of Engines); empty: the workers' configured
	// default (transcription.engine).
	TranscriptionEngine string
	// Retention is 0 when the rule sets none: the Set's default applies.
	Retention time.Duration
	Access    Access
	// Line and Column locate the rule in its document (1-based; 0 when
	// the rule was not parsed from a document).
	Line, Column int
}

// Input is what a decision is taken on.
type Input struct {
	Tenant     string            `json:"tenant"`
	Department string            `json:"department,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	// Participant holds the participant's attributes; nil for a decision
	// about the session as a whole, which therefore never matches a rule
	// with a participant condition.
	Participant map[string]string `json:"participant,omitempty"`
}

// Decision is what a Set decided for one Input. It is stored with sessions
// and recordings as JSON (snake_case; retention as "2190d" or a Go
// duration).
type Decision struct {
	// Rule is the name of the rule that matched; empty when none did and
	// the built-in default applied.
	Rule           string  `json:"rule"`
	Record         Record  `json:"record"`
	Consent        Consent `json:"consent"`
	Transcribe     bool    `json:"transcribe"`
	RedactPII      bool    `json:"redact_pii"`
	KeepUnredacted bool    `json:"keep_unredacted"`
	// TranscriptionEngine is the rule's engine; empty: the configured
	// default.
	TranscriptionEngine string        `json:"transcription_engine,omitempty"`
	Retention           time.Duration `json:"-"`
	Access              Access        `json:"access"`
}

// decisionJSON is Decision's wire form.
type decisionJSON struct {
	Rule           string  `json:"rule"`
	Record         Record  `json:"record"`
	Consent        Consent `json:"consent"`
	Transcribe     bool    `json:"transcribe"`
	RedactPII      bool    `json:"redact_pii"`
	KeepUnredacted bool    `json:"keep_unredacted"`
	// TranscriptionEngine is omitted when empty, so decisions stored
	// before it existed read back unchanged.
	TranscriptionEngine string `json:"transcription_engine,omitempty"`
	Retention           string `json:"retention"`
	Access              Access `json:"access"`
}

// MarshalJSON writes the retention as days ("2190d") when it is a whole
// number of days, otherwise as a Go duration.
func (d Decision) MarshalJSON() ([]byte, error) {
	return json.Marshal(decisionJSON{
		Rule: d.Rule, Record: d.Record, Consent: d.Consent, Transcribe: d.Transcribe,
		RedactPII: d.RedactPII, KeepUnredacted: d.KeepUnredacted, TranscriptionEngine: d.TranscriptionEngine,
		Retention: FormatRetention(d.Retention), Access: d.Access,
	})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (d *Decision) UnmarshalJSON(b []byte) error {
	var w decisionJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("policy: decode decision: %w", err)
	}
	var ret time.Duration
	if w.Retention != "" {
		r, err := config.ParseRetention(w.Retention)
		if err != nil {
			return fmt.Errorf("policy: decode decision: %w", err)
		}
		ret = r
	}
	*d = Decision{
		Rule: w.Rule, Record: w.Record, Consent: w.Consent, Transcribe: w.Transcribe,
		RedactPII: w.RedactPII, KeepUnredacted: w.KeepUnredacted, TranscriptionEngine: w.TranscriptionEngine,
		Retention: ret, Access: w.Access,
	}
	return nil
}

// FormatRetention writes d as whole days ("2190d") when it is a whole number
// of days, otherwise as a Go duration ("36h0m0s"); "" for 0. The result
// parses back with config.ParseRetention.
func FormatRetention(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == 0:
		return ""
	case d%day == 0:
		return fmt.Sprintf("%dd", d/day)
	default:
		return d.String()
	}
}

// Matched reports whether a rule matched (false: the built-in default).
func (d Decision) Matched() bool { return d.Rule != "" }

// Records reports whether media is recorded at all (required or optional).
func (d Decision) Records() bool {
	return d.Record == RecordRequired || d.Record == RecordOptional
}

// ShouldStore reports whether a participant's media may be stored given
// its consent state (granted, denied, unknown): never with record off;
// with consent required only when granted; with notice or none always.
// An unknown Consent value is treated as required (fail closed).
func (d Decision) ShouldStore(consentState string) bool {
	if !d.Records() {
		return false
	}
	switch d.Consent {
	case ConsentNotice, ConsentNone:
		return true
	default:
		return consentState == StateGranted
	}
}

// RetainUntil is when an item recorded from start under d may be deleted:
// start plus the decision's retention (DefaultRetention when it has none).
func RetainUntil(start time.Time, d Decision) time.Time {
	r := d.Retention
	if r <= 0 {
		r = DefaultRetention
	}
	return start.Add(r)
}

// CanAccess applies a decision's access rule to a caller of the given role
// and department. It only narrows the role scopes of api/auth, which must
// also allow the read (tenant and, for supervisors, own department):
//   - admin: always (every read is audited);
//   - compliance: when access.roles is empty or names compliance;
//   - supervisor: when access.roles is empty or names supervisor, the
//     supervisor has a department, and access.departments is empty or
//     names it;
//   - any other role: never.
func CanAccess(d Decision, role, department string) bool {
	roleOK := len(d.Access.Roles) == 0 || slices.Contains(d.Access.Roles, role)
	switch role {
	case RoleAdmin:
		return true
	case RoleCompliance:
		return roleOK
	case RoleSupervisor:
		return roleOK && department != "" &&
			(len(d.Access.Departments) == 0 || slices.Contains(d.Access.Departments, department))
	default:
		return false
	}
}

// Set is a parsed, validated policy document. It is immutable and safe for
// concurrent use. A nil *Set has no rules: every decision is the default.
type Set struct {
	rules            []Rule
	warnings         []Warning
	defaultRetention time.Duration
}

// NewSet validates rules (as Parse would, without positions) and returns a
// Set. It is for building policies in code and tests.
func NewSet(rules ...Rule) (*Set, error) {
	s := &Set{rules: make([]Rule, 0, len(rules))}
	names := map[string]bool{}
	for _, r := range rules {
		if err := validateRule(&r, names); err != nil {
			return nil, err
		}
		s.rules = append(s.rules, r)
	}
	s.warnings = lint(s.rules)
	return s, nil
}

// WithDefaultRetention returns a copy of s whose rules without a retention
// use d (config retention.default) instead of DefaultRetention.
func (s *Set) WithDefaultRetention(d time.Duration) *Set {
	var c Set
	if s != nil {
		c = *s
	}
	c.defaultRetention = d
	return &c
}

// Rules returns a copy of the rules in order.
func (s *Set) Rules() []Rule {
	if s == nil {
		return nil
	}
	out := make([]Rule, len(s.rules))
	for i, r := range s.rules {
		r.Match = Match{
			Tenant: r.Match.Tenant, Department: r.Match.Department,
			Labels: cloneMap(r.Match.Labels), Participant: cloneMap(r.Match.Participant),
		}
		r.Access = r.Access.clone()
		out[i] = r
	}
	return out
}

// Len returns the number of rules.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Warnings returns what is legal but probably not meant: rules that can
// never match because an earlier rule matches everything they match, and
// fields that have no effect.
func (s *Set) Warnings() []Warning {
	if s == nil {
		return nil
	}
	return slices.Clone(s.warnings)
}

// DefaultRetention returns the retention used for rules that set none.
func (s *Set) DefaultRetention() time.Duration {
	if s == nil || s.defaultRetention <= 0 {
		return DefaultRetention
	}
	return s.defaultRetention
}

// Default returns the decision taken when no rule matches: record required
// (fail closed: a gateway that receives media is there to record it),
// consent notice, no transcription, PII redaction on for any transcript,
// no unredacted copy, the default retention, no access narrowing.
func (s *Set) Default() Decision {
	return Decision{
		Record:    RecordRequired,
		Consent:   ConsentNotice,
		RedactPII: true,
		Retention: s.DefaultRetention(),
	}
}

// Decide returns the decision of the first rule that matches in, or
// Default() when none does.
func (s *Set) Decide(in Input) Decision {
	if s != nil {
		for i := range s.rules {
			r := &s.rules[i]
			if !r.Match.Matches(in) {
				continue
			}
			ret := r.Retention
			if ret <= 0 {
				ret = s.DefaultRetention()
			}
			return Decision{
				Rule:                r.Name,
				Record:              r.Record,
				Consent:             r.Consent,
				Transcribe:          r.Transcribe,
				RedactPII:           r.RedactPII,
				KeepUnredacted:      r.KeepUnredacted,
				TranscriptionEngine: r.TranscriptionEngine,
				Retention:           ret,
				Access:              r.Access.clone(),
			}
		}
	}
	return s.Default()
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
