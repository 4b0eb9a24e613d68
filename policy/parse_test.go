package policy

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/custodian/custodian/config"
	"gopkg.in/yaml.v3"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		doc    string
		line   int
		column int
		rule   string
		field  string
		reason string // substring
	}{
		{"syntax error", "policies:\n  - name: a\n   record: off\n", 3, 0, "", "", "syntax"},
		{"syntax error deep in a list", "policies:\n  - name: a\n    record: required\n  - name: b\n    match: {tenant: x\n    record: optional\n  - name: c\n", 5, 0, "", "", "syntax"},
		{"syntax error bad indentation", "policies:\n  - name: a\n    match:\n      tenant: x\n     department: y\n", 5, 0, "", "", "syntax"},
		{"json syntax error", "{\"policies\": [\n  {\"name\": \"a\",\n   \"record\" \"required\"}\n]}", 3, 13, "", "", "syntax"},
		{"json trailing garbage", "[\n {\"name\": \"a\"}\n]]", 3, 2, "", "", "syntax"},
		{"unknown top-level key", "rules:\n  - name: a\n", 1, 1, "", "rules", "unknown key"},
		{"policies not a list", "policies: {name: a}\n", 1, 11, "", "policies", "list of rules"},
		{"policies a scalar", "policies: yes\n", 1, 11, "", "policies", "list of rules"},
		{"rule not a mapping", "policies:\n  - just-a-name\n", 2, 5, "#1", "", "mapping"},
		{"missing name", "policies:\n  - record: required\n", 2, 5, "#1", "name", "is required"},
		{"empty name", "policies:\n  - name: \"\"\n", 2, 11, "#1", "name", "must not be empty"},
		{"null name", "policies:\n  - name:\n    record: required\n", 2, 10, "#1", "name", "has no value"},
		{"bad name characters", "policies:\n  - name: sales calls\n", 2, 5, `"sales calls"`, "name", "letters, digits"},
		{"name too long", "policies:\n  - name: " + strings.Repeat("a", 65) + "\n", 2, 5, "#1", "name", "letters, digits"},
		{"duplicate rule names", "policies:\n  - name: a\n  - name: b\n  - name: a\n", 4, 5, `"a"`, "name", "duplicate rule name (first used on line 2)"},
		{"unknown rule field", "policies:\n  - name: a\n    recrod: required\n", 3, 5, `"a"`, "recrod", "unknown field"},
		{"unknown match field", "policies:\n  - name: a\n    match: {tenant: t, dept: sales}\n", 3, 24, `"a"`, "match.dept", "unknown field"},
		{"unknown access field", "policies:\n  - name: a\n    access: {groups: [x]}\n", 3, 14, `"a"`, "access.groups", "unknown field"},
		{"bad record value", "policies:\n  - name: a\n    record: sometimes\n", 3, 13, `"a"`, "record", `"sometimes" is not one of required, optional, off`},
		{"record as boolean", "policies:\n  - name: a\n    record: true\n", 3, 13, `"a"`, "record", "not a boolean"},
		{"bad consent value", "policies:\n  - name: a\n    consent: implied\n", 3, 14, `"a"`, "consent", "not one of required, notice, none"},
		{"transcribe not bool", "policies:\n  - name: a\n    transcribe: yes\n", 3, 17, `"a"`, "transcribe", "true or false"},
		{"redact_pii as number", "policies:\n  - name: a\n    redact_pii: 1\n", 3, 17, `"a"`, "redact_pii", "true or false"},
		{"keep_unredacted quoted", "policies:\n  - name: a\n    keep_unredacted: \"true\"\n", 3, 22, `"a"`, "keep_unredacted", "true or false"},
		{"retention without unit", "policies:\n  - name: a\n    retention: 2190\n", 3, 16, `"a"`, "retention", "needs a unit"},
		{"retention nonsense", "policies:\n  - name: a\n    retention: forever\n", 3, 16, `"a"`, "retention", "not a duration"},
		{"retention zero days", "policies:\n  - name: a\n    retention: 0d\n", 3, 16, `"a"`, "retention", "between 1d"},
		{"retention negative", "policies:\n  - name: a\n    retention: -5h\n", 3, 16, `"a"`, "retention", "positive"},
		{"retention over a century", "policies:\n  - name: a\n    retention: 40000d\n", 3, 16, `"a"`, "retention", "between 1d"},
		{"retention fractional days", "policies:\n  - name: a\n    retention: 1.5d\n", 3, 16, `"a"`, "retention", "whole number"},
		{"retention as list", "policies:\n  - name: a\n    retention: [30d]\n", 3, 16, `"a"`, "retention", "must be days"},
		{"match not a mapping", "policies:\n  - name: a\n    match: sales\n", 3, 12, `"a"`, "match", "must be a mapping"},
		{"empty tenant", "policies:\n  - name: a\n    match: {tenant: \"\"}\n", 3, 21, `"a"`, "match.tenant", "must not be empty"},
		{"labels not a mapping", "policies:\n  - name: a\n    match: {labels: [queue]}\n", 3, 21, `"a"`, "match.labels", "mapping"},
		{"label value boolean", "policies:\n  - name: a\n    match: {labels: {vip: true}}\n", 3, 27, `"a"`, "match.labels.vip", "not a boolean"},
		{"label value nested", "policies:\n  - name: a\n    match: {labels: {vip: {a: b}}}\n", 3, 27, `"a"`, "match.labels.vip", "must be a string"},
		{"participant attribute null", "policies:\n  - name: a\n    match:\n      participant:\n        role:\n", 5, 0, `"a"`, "match.participant.role", "has no value"},
		{"duplicate key in rule", "policies:\n  - name: a\n    record: required\n    record: off\n", 4, 5, `"a"`, "record", "duplicate key"},
		{"duplicate label key", "policies:\n  - name: a\n    match: {labels: {q: a, q: b}}\n", 3, 28, `"a"`, "match.labels.q", "duplicate key"},
		{"access role cannot read", "policies:\n  - name: a\n    access: {roles: [compliance, auditor]}\n", 3, 34, `"a"`, "access.roles", `"auditor" cannot read`},
		{"access role unknown", "policies:\n  - name: a\n    access: {roles: [everyone]}\n", 3, 22, `"a"`, "access.roles", `"everyone" cannot read`},
		{"access empty list", "policies:\n  - name: a\n    access: {departments: []}\n", 3, 27, `"a"`, "access.departments", "empty list"},
		{"access duplicate entry", "policies:\n  - name: a\n    access: {departments: [sales, sales]}\n", 3, 35, `"a"`, "access.departments", "listed twice"},
		{"access roles not a list", "policies:\n  - name: a\n    access: {roles: compliance}\n", 3, 21, `"a"`, "access.roles", "must be a list"},
		{"transcribe with record off", "policies:\n  - name: a\n    record: \"off\"\n    transcribe: true\n", 4, 5, `"a"`, "transcribe", "record is off"},
		{"unknown transcription_engine", "policies:\n  - name: a\n    transcribe: true\n    transcription_engine: whisper\n", 4, 27, `"a"`, "transcription_engine", `"whisper" is not one of offline, openai, aws`},
		{"transcription_engine none", "policies:\n  - name: a\n    transcription_engine: none\n", 3, 27, `"a"`, "transcription_engine", "not one of"},
		{"transcription_engine not a string", "policies:\n  - name: a\n    transcription_engine: [aws]\n", 3, 27, `"a"`, "transcription_engine", ""},
		{"keep_unredacted with record off", "policies:\n  - name: a\n    record: \"off\"\n    keep_unredacted: true\n", 4, 5, `"a"`, "keep_unredacted", "record is off"},
		{"error in a later rule rejects all", "policies:\n  - name: good\n  - name: bad\n    consent: maybe\n", 4, 14, `"bad"`, "consent", "not one of"},
		{"alias rejected", "policies:\n  - &r {name: a}\n  - *r\n", 3, 5, "#2", "", "aliases"},
		{"alias in field rejected", "x: &d sales\npolicies:\n  - name: a\n    match: {department: *d}\n", 1, 1, "", "x", "unknown key"},
		{"merge key rejected", "policies:\n  - name: a\n    <<: {record: off}\n", 3, 5, `"a"`, "<<", "keys must be strings"},
		{"two documents", "policies: []\n---\npolicies: []\n", 2, 1, "", "", "more than one YAML document"},
		{"duplicate policies key", "policies: []\npolicies: []\n", 2, 1, "", "policies", "duplicate key"},
		{"json unknown field", "{\"policies\": [\n  {\"name\": \"a\",\n   \"recording\": \"required\"}\n]}", 3, 4, `"a"`, "recording", "unknown field"},
		{"json wrong type", "[\n {\"name\": \"a\", \"transcribe\": \"yes\"}\n]", 2, 30, `"a"`, "transcribe", "true or false"},
		{"json with tabs keeps lines", "{\n\t\"policies\": [\n\t\t{\"name\": \"a\", \"retention\": 30}\n\t]\n}", 3, 30, `"a"`, "retention", "needs a unit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("accepted: %d rules", s.Len())
			}
			if s != nil {
				t.Errorf("returned a set with the error")
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *ParseError", err, err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not match ErrInvalid")
			}
			if pe.Line != tt.line || (tt.column != 0 && pe.Column != tt.column) || pe.Rule != tt.rule || pe.Field != tt.field ||
				!strings.Contains(pe.Reason, tt.reason) {
				t.Errorf("got  line %d col %d rule %s field %q reason %q\nwant line %d col %d rule %s field %q reason ~%q\n(%v)",
					pe.Line, pe.Column, pe.Rule, pe.Field, pe.Reason, tt.line, tt.column, tt.rule, tt.field, tt.reason, err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Error() %q lacks the reason", err.Error())
			}
		})
	}
}

func TestParseForms(t *testing.T) {
	yamlDoc := "policies:\n  - name: a\n    match: {department: sales}\n    transcribe: true\n    retention: 90d\n"
	jsonDoc := `{"policies": [{"name": "a", "match": {"department": "sales"}, "transcribe": true, "retention": "90d"}]}`
	listDoc := "- name: a\n  match: {department: sales}\n  transcribe: true\n  retention: 2160h\n"
	for name, doc := range map[string]string{"yaml": yamlDoc, "json": jsonDoc, "bare list": listDoc} {
		s := mustParse(t, doc)
		d := s.Decide(Input{Department: "sales"})
		if d.Rule != "a" || !d.Transcribe || d.Retention != 90*day {
			t.Errorf("%s: decision %+v", name, d)
		}
	}
	// Numbers and dates are strings as written, so department codes work.
	s := mustParse(t, "- name: a\n  match: {department: 042, labels: {since: 2024-01-01, rate: 1.50}}\n")
	if d := s.Decide(Input{Department: "042", Labels: map[string]string{"since": "2024-01-01", "rate": "1.50"}}); d.Rule != "a" {
		t.Errorf("numeric strings: %+v", d)
	}
}

func TestParseNodeFromConfig(t *testing.T) {
	file := "log:\n  level: info\npolicies:\n  - name: a\n    record: optional\n  - name: b\n    record: sometimes\n"
	cfg := config.Default()
	if err := config.Decode([]byte(file), &cfg); err != nil {
		t.Fatal(err)
	}
	_, err := ParseNode(&cfg.Policies)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 7 || pe.Rule != `"b"` || pe.Field != "record" {
		t.Fatalf("line numbers must be the config file's: %v", err)
	}

	cfg = config.Default()
	if err := config.Decode([]byte("log:\n  level: info\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	s, err := ParseNode(&cfg.Policies)
	if err != nil || s.Len() != 0 {
		t.Fatalf("absent policies: %v, %d rules", err, s.Len())
	}
	if _, err := ParseNode(nil); err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("- name: x\n  record: \"off\"\n"), &doc); err != nil {
		t.Fatal(err)
	}
	s, err = ParseNode(&doc)
	if err != nil || s.Decide(Input{}).Record != RecordOff {
		t.Fatalf("document node: %v", err)
	}
}

func TestWarnings(t *testing.T) {
	s := mustParse(t, `
policies:
  - name: everything
    match: {}
  - name: sales
    match: {department: sales}
  - name: pointless-keep
    keep_unredacted: true
    redact_pii: false
    transcribe: true
  - name: off-with-retention
    record: "off"
    retention: 30d
  - name: dept-no-supervisor
    access: {departments: [sales], roles: [compliance]}
  - name: engine-no-transcribe
    match: {tenant: x}
    transcription_engine: aws
`)
	ws := s.Warnings()
	want := []struct {
		rule, msg string
		line      int
	}{
		{"sales", `never matches: rule "everything" (line 3) before it matches everything`, 5},
		{"pointless-keep", "never matches", 7},
		{"pointless-keep", "keep_unredacted has no effect without redact_pii", 7},
		{"off-with-retention", "never matches", 11},
		{"off-with-retention", "record is off", 11},
		{"dept-no-supervisor", "never matches", 14},
		{"dept-no-supervisor", "access.departments has no effect", 14},
		{"engine-no-transcribe", "never matches", 16},
		{"engine-no-transcribe", "transcription_engine has no effect without transcribe", 16},
	}
	if len(ws) != len(want) {
		t.Fatalf("warnings %d, want %d: %v", len(ws), len(want), ws)
	}
	for i, w := range want {
		if ws[i].Rule != w.rule || !strings.Contains(ws[i].Message, w.msg) || ws[i].Line != w.line {
			t.Errorf("warning %d = %v, want rule %q line %d ~%q", i, ws[i], w.rule, w.line, w.msg)
		}
	}
}

// TestRoundTrip re-serializes parsed sets as YAML and JSON and checks that
// both parse back to the same rules.
func TestRoundTrip(t *testing.T) {
	s := mustParse(t, testDoc)
	y, err := s.YAML()
	if err != nil {
		t.Fatal(err)
	}
	j, err := s.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string][]byte{"yaml": y, "json": j} {
		back, err := Parse(doc)
		if err != nil {
			t.Fatalf("%s: reparse: %v\n%s", name, err, doc)
		}
		if err := sameRules(s, back); err != nil {
			t.Errorf("%s: %v\n%s", name, err, doc)
		}
	}
}

// TestDocExamples parses every complete example in docs/policy.md, so the
// documentation cannot drift from the parser.
func TestDocExamples(t *testing.T) {
	b, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Skipf("docs not present: %v", err)
	}
	blocks := strings.Split(string(b), "```yaml\n")
	n := 0
	for _, blk := range blocks[1:] {
		body, _, _ := strings.Cut(blk, "```")
		if !strings.HasPrefix(body, "policies:") {
			continue
		}
		s, err := Parse([]byte(body))
		if err != nil {
			t.Errorf("example %d: %v\n%s", n+1, err, body)
			continue
		}
		if w := s.Warnings(); len(w) > 0 {
			t.Errorf("example %d has warnings: %v", n+1, w)
		}
		n++
	}
	if n < 4 {
		t.Errorf("found %d examples, want at least 4", n)
	}
}

// TestSyntaxErrorLineInLongDocument checks that a syntax error far from
// the start of its enclosing block is reported on its own line, not on the
// block's first line as yaml.v3 alone would.
func TestSyntaxErrorLineInLongDocument(t *testing.T) {
	for _, badAt := range []int{3, 50, 401, 800} {
		var sb strings.Builder
		sb.WriteString("policies:\n")
		line := 1
		for i := 0; line < 801; i++ {
			if line+1 == badAt {
				sb.WriteString("   record: optional\n") // bad indentation
				line++
				continue
			}
			fmt.Fprintf(&sb, "  - name: r%d\n", i)
			line++
		}
		_, err := Parse([]byte(sb.String()))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != badAt {
			t.Errorf("error on line %d reported as %v", badAt, err)
		}
	}
}
