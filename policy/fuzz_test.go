package policy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
)

// sameRules reports how two sets differ in their rules (positions aside).
func sameRules(a, b *Set) error {
	ra, rb := a.Rules(), b.Rules()
	if len(ra) != len(rb) {
		return fmt.Errorf("%d rules, then %d", len(ra), len(rb))
	}
	for i := range ra {
		x, y := ra[i], rb[i]
		if x.Name != y.Name || x.Record != y.Record || x.Consent != y.Consent || x.Transcribe != y.Transcribe ||
			x.RedactPII != y.RedactPII || x.KeepUnredacted != y.KeepUnredacted || x.Retention != y.Retention ||
			x.TranscriptionEngine != y.TranscriptionEngine ||
			x.Match.Tenant != y.Match.Tenant || x.Match.Department != y.Match.Department ||
			!maps.Equal(x.Match.Labels, y.Match.Labels) || !maps.Equal(x.Match.Participant, y.Match.Participant) ||
			!slices.Equal(x.Access.Roles, y.Access.Roles) || !slices.Equal(x.Access.Departments, y.Access.Departments) {
			return fmt.Errorf("rule %d: %+v, then %+v", i, x, y)
		}
	}
	return nil
}

// probeInputs derives inputs that exercise every rule of s: each rule's
// own match, the same with one condition missing, and an empty input.
func probeInputs(s *Set) []Input {
	ins := []Input{{}, {Tenant: "default"}}
	for _, r := range s.Rules() {
		full := Input{Tenant: r.Match.Tenant, Department: r.Match.Department, Labels: r.Match.Labels, Participant: r.Match.Participant}
		ins = append(ins, full,
			Input{Department: full.Department, Labels: full.Labels, Participant: full.Participant},
			Input{Tenant: full.Tenant, Labels: full.Labels, Participant: full.Participant},
			Input{Tenant: full.Tenant, Department: full.Department, Participant: full.Participant},
			Input{Tenant: full.Tenant, Department: full.Department, Labels: full.Labels},
		)
	}
	return ins
}

func FuzzPolicy(f *testing.F) {
	f.Add([]byte(testDoc))
	f.Add([]byte(`{"policies": [{"name": "a", "match": {"labels": {"q": "1"}}, "record": "optional", "retention": "36h"}]}`))
	f.Add([]byte("- name: a\n  match: {department: 042}\n  access: {roles: [supervisor], departments: [x]}\n"))
	f.Add([]byte("policies:\n  - name: a\n    record: sometimes\n"))
	f.Add([]byte("policies:\n  - name: a\n    transcribe: true\n    transcription_engine: aws\n"))
	f.Add([]byte(`{"policies": [{"name": "a", "transcription_engine": "whisper"}]}`))
	f.Add([]byte("policies:\n  - &r {name: a}\n  - *r\n"))
	f.Add([]byte("policies: []\n---\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := Parse(doc)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error is not a *ParseError: %T %v", err, err)
			}
			if s != nil {
				t.Fatal("set returned with an error")
			}
			return
		}
		y, err := s.YAML()
		if err != nil {
			t.Fatalf("YAML: %v", err)
		}
		j, err := s.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON: %v", err)
		}
		for name, out := range map[string][]byte{"yaml": y, "json": j} {
			back, err := Parse(out)
			if err != nil {
				t.Fatalf("%s re-parse: %v\n%s", name, err, out)
			}
			if err := sameRules(s, back); err != nil {
				t.Fatalf("%s round trip: %v\n%s", name, err, out)
			}
			for _, in := range probeInputs(s) {
				if a, b := s.Decide(in), back.Decide(in); !decisionEqual(a, b) {
					t.Fatalf("%s round trip: Decide(%+v) = %+v, then %+v", name, in, a, b)
				}
			}
		}
	})
}
