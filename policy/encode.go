package policy

import (
	"encoding/json"
	"fmt"

	"gopkg.in/yaml.v3"
)

// ruleDoc is a rule's document form with every default written out.
type ruleDoc struct {
	Name           string  `json:"name" yaml:"name"`
	Match          Match   `json:"match" yaml:"match"`
	Record         Record  `json:"record" yaml:"record"`
	Consent        Consent `json:"consent" yaml:"consent"`
	Transcribe     bool    `json:"transcribe" yaml:"transcribe"`
	RedactPII      bool    `json:"redact_pii" yaml:"redact_pii"`
	KeepUnredacted bool    `json:"keep_unredacted" yaml:"keep_unredacted"`
	// TranscriptionEngine is written only when the rule names one (empty
	// means the configured default, which a document cannot spell out).
	TranscriptionEngine string  `json:"transcription_engine,omitempty" yaml:"transcription_engine,omitempty"`
	Retention           string  `json:"retention,omitempty" yaml:"retention,omitempty"`
	Access              *Access `json:"access,omitempty" yaml:"access,omitempty"`
}

type setDoc struct {
	Policies []ruleDoc `json:"policies" yaml:"policies"`
}

func (s *Set) doc() setDoc {
	d := setDoc{Policies: []ruleDoc{}}
	for _, r := range s.Rules() {
		rd := ruleDoc{
			Name: r.Name, Match: r.Match, Record: r.Record, Consent: r.Consent,
			Transcribe: r.Transcribe, RedactPII: r.RedactPII, KeepUnredacted: r.KeepUnredacted,
			TranscriptionEngine: r.TranscriptionEngine, Retention: FormatRetention(r.Retention),
		}
		if len(r.Access.Departments) > 0 || len(r.Access.Roles) > 0 {
			a := r.Access
			rd.Access = &a
		}
		d.Policies = append(d.Policies, rd)
	}
	return d
}

// YAML returns the set as a canonical policy document ({policies: [...]})
// with every default written out. Parse reads it back to a Set that takes
// the same decisions.
func (s *Set) YAML() ([]byte, error) {
	b, err := yaml.Marshal(s.doc())
	if err != nil {
		return nil, fmt.Errorf("policy: encode yaml: %w", err)
	}
	return b, nil
}

// MarshalJSON returns the set in the JSON form of the document
// ({"policies": [...]}), which Parse also reads.
func (s *Set) MarshalJSON() ([]byte, error) {
	return json.Marshal(s.doc())
}
