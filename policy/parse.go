package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/custodian/custodian/config"
	"gopkg.in/yaml.v3"
)

// ErrInvalid is matched (errors.Is) by every *ParseError.
var ErrInvalid = errors.New("policy: invalid policy document")

// ParseError says why a policy document was rejected, and where. The
// whole document is rejected; nothing of it applies.
type ParseError struct {
	Line, Column int    // 1-based position in the document; 0 when unknown
	Rule         string // name of the rule (or "#N", its 1-based index, before its name is known); "" outside rules
	Field        string // field path within the rule, e.g. "match.labels.queue"; "" for the rule or document itself
	Reason       string
	Err          error // underlying error, if any (YAML syntax, retention)
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("policy: ")
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ", column %d", e.Column)
		}
		b.WriteString(": ")
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %s: ", e.Rule)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "%s: ", e.Field)
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap lets errors.Is find ErrInvalid and the underlying error.
func (e *ParseError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}

// Warning is something legal in a document that is probably not meant.
type Warning struct {
	Line, Column int
	Rule         string
	Message      string
}

func (w Warning) String() string {
	if w.Line > 0 {
		return fmt.Sprintf("line %d, column %d: rule %q: %s", w.Line, w.Column, w.Rule, w.Message)
	}
	return fmt.Sprintf("rule %q: %s", w.Rule, w.Message)
}

// Limits on names and values, so a document cannot smuggle huge strings
// into every decision and event.
const (
	maxNameLen  = 64
	maxValueLen = 256
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Parse parses a policy document in YAML or JSON: either a mapping with the
// single key "policies" holding the list of rules (the form of SPEC section
// 8 and of PUT /v1/policies), or the list itself. An empty document is an
// empty Set. Any error rejects the whole document with a *ParseError.
func Parse(doc []byte) (*Set, error) {
	doc = jsonTabs(doc)
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return &Set{}, nil
		}
		return nil, syntaxError(doc, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, syntaxError(doc, err)
		}
		return nil, &ParseError{Line: extra.Line, Column: extra.Column, Reason: "more than one YAML document"}
	}
	n := &root
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return &Set{}, nil
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.MappingNode {
		var list *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Value != "policies" {
				return nil, &ParseError{Line: k.Line, Column: k.Column, Field: k.Value,
					Reason: `unknown key: the document is {policies: [rules...]} or the list of rules itself`}
			}
			if list != nil {
				return nil, &ParseError{Line: k.Line, Column: k.Column, Field: "policies", Reason: "duplicate key"}
			}
			list = n.Content[i+1]
		}
		if list == nil {
			return &Set{}, nil
		}
		n = list
	}
	return ParseNode(n)
}

// ParseNode parses the list of rules from a YAML node, keeping its line
// numbers: the value of config.Config.Policies (pass &cfg.Policies). A zero
// or null node is an empty Set.
func ParseNode(n *yaml.Node) (*Set, error) {
	if n == nil || n.Kind == 0 {
		return &Set{}, nil
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return &Set{}, nil
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return &Set{}, nil
	}
	if n.Kind == yaml.AliasNode {
		return nil, nodeErr(n, "", "policies", "YAML aliases are not supported in policies")
	}
	if n.Kind != yaml.SequenceNode {
		return nil, nodeErr(n, "", "policies", "must be a list of rules")
	}
	s := &Set{rules: make([]Rule, 0, len(n.Content))}
	names := map[string]int{} // name -> line
	for i, rn := range n.Content {
		r, err := parseRule(rn, i)
		if err != nil {
			return nil, err
		}
		if line, dup := names[r.Name]; dup {
			return nil, &ParseError{Line: r.Line, Column: r.Column, Rule: strconv.Quote(r.Name), Field: "name",
				Reason: fmt.Sprintf("duplicate rule name (first used on line %d)", line)}
		}
		names[r.Name] = r.Line
		s.rules = append(s.rules, r)
	}
	s.warnings = lint(s.rules)
	return s, nil
}

// jsonTabs replaces tabs by spaces in a valid JSON document: YAML forbids
// tab indentation, and in valid JSON a raw tab can only be whitespace
// (inside strings it must be escaped), so lines and meaning are unchanged.
func jsonTabs(doc []byte) []byte {
	if !bytes.Contains(doc, []byte{'\t'}) || !json.Valid(doc) {
		return doc
	}
	return bytes.ReplaceAll(doc, []byte{'\t'}, []byte{' '})
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// maxScanBytes bounds the documents whose syntax errors are located more
// precisely than yaml.v3 does (see problemLine).
const maxScanBytes = 64 << 10

// syntaxError locates a syntax error. For JSON (the document starts with
// '{' or '[') the position comes from encoding/json. yaml.v3 reports the
// line where the enclosing construct began, not where the problem is, so
// the first longer prefix of the document that fails with the same message
// gives the problem's line (for documents up to 64 KiB; otherwise
// yaml.v3's line).
func syntaxError(doc []byte, err error) *ParseError {
	if t := bytes.TrimLeft(doc, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		var v any
		var se *json.SyntaxError
		if jerr := json.Unmarshal(doc, &v); errors.As(jerr, &se) {
			line, col := position(doc, se.Offset)
			return &ParseError{Line: line, Column: col, Reason: "syntax: " + se.Error(), Err: err}
		}
	}
	msg := err.Error()
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		return &ParseError{Reason: "syntax: " + strings.TrimPrefix(msg, "yaml: "), Err: err}
	}
	line, _ := strconv.Atoi(m[1])
	reason := m[2]
	if len(doc) <= maxScanBytes {
		line = problemLine(doc, line, reason)
	}
	return &ParseError{Line: line, Reason: "syntax: " + reason, Err: err}
}

// problemLine finds the first line k >= from such that the document's
// first k lines fail to parse with the message reason: galloping, then a
// binary search, so about 2·log2(lines) parses. Prefixes that fail with
// another message (cut inside a flow collection or a quoted string) count
// as not failing yet. from is returned when nothing is found.
func problemLine(doc []byte, from int, reason string) int {
	lines := bytes.SplitAfter(doc, []byte{'\n'})
	n := len(lines)
	from = max(from, 1)
	fails := func(k int) bool {
		err := yaml.Unmarshal(bytes.Join(lines[:k], nil), new(yaml.Node))
		if err == nil {
			return false
		}
		m := yamlLineRE.FindStringSubmatch(err.Error())
		return m != nil && m[2] == reason
	}
	lo, hi := from-1, 0 // fails(lo) is false (or lo is before from); fails(hi) is true
	for step := 1; ; step *= 2 {
		k := min(from-1+step, n)
		if fails(k) {
			hi = k
			break
		}
		lo = k
		if k == n {
			return from
		}
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// position converts a byte offset (as in json.SyntaxError, the offset just
// after the bad byte) to a 1-based line and column.
func position(doc []byte, offset int64) (line, col int) {
	if offset > int64(len(doc)) {
		offset = int64(len(doc))
	}
	before := doc[:max(offset-1, 0)]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = len(before) - bytes.LastIndexByte(before, '\n')
	return line, col
}

func nodeErr(n *yaml.Node, rule, field, format string, args ...any) *ParseError {
	return &ParseError{Line: n.Line, Column: n.Column, Rule: rule, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// fields iterates over a mapping's key/value pairs, rejecting non-string
// keys, duplicate keys and aliases.
func fields(n *yaml.Node, rule, path string, fn func(k, v *yaml.Node) error) error {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || (k.ShortTag() != "!!str" && k.ShortTag() != "!!int" && k.ShortTag() != "!!float") {
			return nodeErr(k, rule, join(path, k.Value), "keys must be strings")
		}
		if k.Value == "" {
			return nodeErr(k, rule, path, "empty key")
		}
		if seen[k.Value] {
			return nodeErr(k, rule, join(path, k.Value), "duplicate key")
		}
		seen[k.Value] = true
		if v.Kind == yaml.AliasNode {
			return nodeErr(v, rule, join(path, k.Value), "YAML aliases are not supported in policies")
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// scalarString reads a string value. Numbers and dates are taken as
// written (department: 042 is "042"); booleans and null are rejected so
// that `vip: true` is not silently the string "true".
func scalarString(v *yaml.Node, rule, field string) (string, error) {
	if v.Kind != yaml.ScalarNode {
		return "", nodeErr(v, rule, field, "must be a string")
	}
	switch v.ShortTag() {
	case "!!str", "!!int", "!!float", "!!timestamp":
	case "!!null":
		return "", nodeErr(v, rule, field, "has no value (omit the field for its default)")
	case "!!bool":
		return "", nodeErr(v, rule, field, "must be a string, not a boolean (quote it: %q)", v.Value)
	default:
		return "", nodeErr(v, rule, field, "must be a string")
	}
	if v.Value == "" {
		return "", nodeErr(v, rule, field, "must not be empty (omit the field instead)")
	}
	if len(v.Value) > maxValueLen {
		return "", nodeErr(v, rule, field, "longer than %d bytes", maxValueLen)
	}
	return v.Value, nil
}

func scalarBool(v *yaml.Node, rule, field string) (bool, error) {
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" {
		return strings.EqualFold(v.Value, "true"), nil
	}
	return false, nodeErr(v, rule, field, "must be true or false")
}

func stringMap(v *yaml.Node, rule, field string) (map[string]string, error) {
	if v.Kind != yaml.MappingNode {
		return nil, nodeErr(v, rule, field, "must be a mapping of names to values")
	}
	m := make(map[string]string, len(v.Content)/2)
	err := fields(v, rule, field, func(k, val *yaml.Node) error {
		if len(k.Value) > maxValueLen {
			return nodeErr(k, rule, field, "key longer than %d bytes", maxValueLen)
		}
		s, err := scalarString(val, rule, join(field, k.Value))
		if err != nil {
			return err
		}
		m[k.Value] = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

func stringList(v *yaml.Node, rule, field string) ([]string, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, nodeErr(v, rule, field, "must be a list")
	}
	if len(v.Content) == 0 {
		return nil, nodeErr(v, rule, field, "empty list: omit the field for no restriction")
	}
	out := make([]string, 0, len(v.Content))
	for i, e := range v.Content {
		if e.Kind == yaml.AliasNode {
			return nil, nodeErr(e, rule, field, "YAML aliases are not supported in policies")
		}
		s, err := scalarString(e, rule, fmt.Sprintf("%s[%d]", field, i))
		if err != nil {
			return nil, err
		}
		if slices.Contains(out, s) {
			return nil, nodeErr(e, rule, field, "%q listed twice", s)
		}
		out = append(out, s)
	}
	return out, nil
}

// ruleName finds the rule's name before its other fields are read, so
// every error can name the rule.
func ruleName(n *yaml.Node) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], n.Content[i+1]; k.Value == "name" && v.Kind == yaml.ScalarNode && v.Value != "" && len(v.Value) <= maxNameLen {
			return strconv.Quote(v.Value)
		}
	}
	return ""
}

func parseRule(n *yaml.Node, idx int) (Rule, error) {
	label := fmt.Sprintf("#%d", idx+1)
	if n.Kind == yaml.AliasNode {
		return Rule{}, nodeErr(n, label, "", "YAML aliases are not supported in policies")
	}
	if n.Kind != yaml.MappingNode {
		return Rule{}, nodeErr(n, label, "", "a rule must be a mapping with at least a name")
	}
	if name := ruleName(n); name != "" {
		label = name
	}
	r := Rule{Line: n.Line, Column: n.Column}
	var set = map[string]*yaml.Node{}
	err := fields(n, label, "", func(k, v *yaml.Node) error {
		set[k.Value] = k
		var err error
		switch k.Value {
		case "name":
			r.Name, err = scalarString(v, label, "name")
		case "match":
			r.Match, err = parseMatch(v, label)
		case "record":
			var s string
			if s, err = scalarString(v, label, "record"); err == nil {
				r.Record = Record(s)
				if !validRecord(r.Record) {
					err = nodeErr(v, label, "record", "%q is not one of required, optional, off", s)
				}
			}
		case "consent":
			var s string
			if s, err = scalarString(v, label, "consent"); err == nil {
				r.Consent = Consent(s)
				if !validConsent(r.Consent) {
					err = nodeErr(v, label, "consent", "%q is not one of required, notice, none", s)
				}
			}
		case "transcribe":
			r.Transcribe, err = scalarBool(v, label, "transcribe")
		case "redact_pii":
			r.RedactPII, err = scalarBool(v, label, "redact_pii")
		case "keep_unredacted":
			r.KeepUnredacted, err = scalarBool(v, label, "keep_unredacted")
		case "transcription_engine":
			if r.TranscriptionEngine, err = scalarString(v, label, "transcription_engine"); err == nil && !ValidEngine(r.TranscriptionEngine) {
				err = nodeErr(v, label, "transcription_engine", "%q is not one of %s", r.TranscriptionEngine, strings.Join(Engines, ", "))
			}
		case "retention":
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
				if v.Kind == yaml.ScalarNode && (v.ShortTag() == "!!int" || v.ShortTag() == "!!float") {
					return nodeErr(v, label, "retention", "%s needs a unit: days like %sd or a Go duration like 720h", v.Value, v.Value)
				}
				return nodeErr(v, label, "retention", "must be days (2190d) or a Go duration (720h)")
			}
			d, perr := config.ParseRetention(v.Value)
			if perr != nil {
				e := nodeErr(v, label, "retention", "%v", perr)
				e.Err = perr
				return e
			}
			r.Retention = d
		case "access":
			r.Access, err = parseAccess(v, label)
		default:
			return nodeErr(k, label, k.Value, "unknown field (known: name, match, record, consent, transcribe, redact_pii, keep_unredacted, transcription_engine, retention, access)")
		}
		return err
	})
	if err != nil {
		return Rule{}, err
	}
	if set["name"] == nil {
		return Rule{}, nodeErr(n, label, "name", "is required")
	}
	if set["record"] == nil {
		r.Record = RecordRequired
	}
	if set["consent"] == nil {
		r.Consent = ConsentNotice
	}
	if set["redact_pii"] == nil {
		r.RedactPII = true
	}
	if err := checkRule(&r, label); err != nil {
		if pe, ok := err.(*ParseError); ok && pe.Line == 0 {
			pos := n
			if k := set[pe.Field]; k != nil {
				pos = k
			}
			pe.Line, pe.Column = pos.Line, pos.Column
		}
		return Rule{}, err
	}
	return r, nil
}

func parseMatch(v *yaml.Node, rule string) (Match, error) {
	var m Match
	if v.Kind != yaml.MappingNode {
		return m, nodeErr(v, rule, "match", "must be a mapping (use {} to match everything)")
	}
	err := fields(v, rule, "match", func(k, val *yaml.Node) error {
		var err error
		switch k.Value {
		case "tenant":
			m.Tenant, err = scalarString(val, rule, "match.tenant")
		case "department":
			m.Department, err = scalarString(val, rule, "match.department")
		case "labels":
			m.Labels, err = stringMap(val, rule, "match.labels")
		case "participant":
			m.Participant, err = stringMap(val, rule, "match.participant")
		default:
			return nodeErr(k, rule, "match."+k.Value, "unknown field (known: tenant, department, labels, participant)")
		}
		return err
	})
	return m, err
}

func parseAccess(v *yaml.Node, rule string) (Access, error) {
	var a Access
	if v.Kind != yaml.MappingNode {
		return a, nodeErr(v, rule, "access", "must be a mapping {departments: [...], roles: [...]}")
	}
	err := fields(v, rule, "access", func(k, val *yaml.Node) error {
		var err error
		switch k.Value {
		case "departments":
			a.Departments, err = stringList(val, rule, "access.departments")
		case "roles":
			if a.Roles, err = stringList(val, rule, "access.roles"); err == nil {
				for i, role := range a.Roles {
					if !validAccessRole(role) {
						return nodeErr(val.Content[i], rule, "access.roles", "%q cannot read recordings (roles: admin, compliance, supervisor)", role)
					}
				}
			}
		default:
			return nodeErr(k, rule, "access."+k.Value, "unknown field (known: departments, roles)")
		}
		return err
	})
	return a, err
}

// Engines are the transcription engines a rule's transcription_engine may
// name (transcription.engine's values other than none).
var Engines = config.TranscriptionEngines

// ValidEngine reports whether name is one of Engines.
func ValidEngine(name string) bool { return slices.Contains(Engines, name) }

func validRecord(r Record) bool {
	return r == RecordRequired || r == RecordOptional || r == RecordOff
}

func validConsent(c Consent) bool {
	return c == ConsentRequired || c == ConsentNotice || c == ConsentNone
}

func validAccessRole(r string) bool {
	return r == RoleAdmin || r == RoleCompliance || r == RoleSupervisor
}

// checkRule validates what a rule says as a whole (the parser has already
// checked types and enums). Its errors carry no position.
func checkRule(r *Rule, label string) error {
	bad := func(field, format string, args ...any) error {
		return &ParseError{Rule: label, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if r.Name == "" {
		return bad("name", "is required")
	}
	if len(r.Name) > maxNameLen || !nameRE.MatchString(r.Name) {
		return bad("name", "%q: use 1 to %d letters, digits, '.', '_' or '-', starting with a letter or digit", r.Name, maxNameLen)
	}
	if r.Record == RecordOff && r.Transcribe {
		return bad("transcribe", "cannot be true when record is off: there is nothing to transcribe")
	}
	if r.Record == RecordOff && r.KeepUnredacted {
		return bad("keep_unredacted", "cannot be true when record is off")
	}
	return nil
}

// validateRule checks a rule built in code (NewSet): enums, names, ranges.
func validateRule(r *Rule, names map[string]bool) error {
	label := strconv.Quote(r.Name)
	if r.Record == "" {
		r.Record = RecordRequired
	}
	if r.Consent == "" {
		r.Consent = ConsentNotice
	}
	if !validRecord(r.Record) {
		return &ParseError{Rule: label, Field: "record", Reason: fmt.Sprintf("%q is not one of required, optional, off", r.Record)}
	}
	if !validConsent(r.Consent) {
		return &ParseError{Rule: label, Field: "consent", Reason: fmt.Sprintf("%q is not one of required, notice, none", r.Consent)}
	}
	if r.TranscriptionEngine != "" && !ValidEngine(r.TranscriptionEngine) {
		return &ParseError{Rule: label, Field: "transcription_engine", Reason: fmt.Sprintf("%q is not one of %s", r.TranscriptionEngine, strings.Join(Engines, ", "))}
	}
	if r.Retention < 0 {
		return &ParseError{Rule: label, Field: "retention", Reason: "must not be negative"}
	}
	if r.Retention > 0 {
		if _, err := config.ParseRetention(r.Retention.String()); err != nil {
			return &ParseError{Rule: label, Field: "retention", Reason: err.Error(), Err: err}
		}
	}
	for _, role := range r.Access.Roles {
		if !validAccessRole(role) {
			return &ParseError{Rule: label, Field: "access.roles", Reason: fmt.Sprintf("%q cannot read recordings (roles: admin, compliance, supervisor)", role)}
		}
	}
	if names[r.Name] {
		return &ParseError{Rule: label, Field: "name", Reason: "duplicate rule name"}
	}
	names[r.Name] = true
	return checkRule(r, label)
}

// lint finds rules that can never match and fields without effect.
func lint(rules []Rule) []Warning {
	var ws []Warning
	warn := func(r Rule, format string, args ...any) {
		ws = append(ws, Warning{Line: r.Line, Column: r.Column, Rule: r.Name, Message: fmt.Sprintf(format, args...)})
	}
	for i, r := range rules {
		for _, e := range rules[:i] {
			if e.Match.covers(r.Match) {
				where := ""
				if e.Line > 0 {
					where = fmt.Sprintf(" (line %d)", e.Line)
				}
				if e.Match.IsEmpty() {
					warn(r, "never matches: rule %q%s before it matches everything", e.Name, where)
				} else {
					warn(r, "never matches: rule %q%s before it matches everything this rule matches", e.Name, where)
				}
				break
			}
		}
		if r.KeepUnredacted && !r.RedactPII {
			warn(r, "keep_unredacted has no effect without redact_pii")
		} else if r.KeepUnredacted && !r.Transcribe {
			warn(r, "keep_unredacted has no effect without transcribe")
		}
		if r.TranscriptionEngine != "" && !r.Transcribe {
			warn(r, "transcription_engine has no effect without transcribe")
		}
		if r.Record == RecordOff && (r.Consent == ConsentRequired || r.Retention > 0 || len(r.Access.Roles) > 0 || len(r.Access.Departments) > 0) {
			warn(r, "record is off: consent, retention and access have no effect")
		}
		if len(r.Access.Departments) > 0 && len(r.Access.Roles) > 0 && !slices.Contains(r.Access.Roles, RoleSupervisor) {
			warn(r, "access.departments has no effect: access.roles does not include supervisor")
		}
	}
	return ws
}
