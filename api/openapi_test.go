package api_test

import (
	"bytes"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/custodian/custodian/api"
	"github.com/custodian/custodian/api/auth"
	"github.com/custodian/custodian/recorder"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/render"
	"github.com/custodian/custodian/transcribe/search"
	"gopkg.in/yaml.v3"
)

// The canonical document is docs/openapi.yaml; api/openapi.yaml is the
// embedded copy (go generate ./api).
func TestOpenAPICopy(t *testing.T) {
	canon, err := os.ReadFile(repoFile(t, "docs/openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(canon, api.OpenAPI) {
		t.Fatal("api/openapi.yaml differs from docs/openapi.yaml: run `go generate ./api`")
	}
}

type openapiDoc struct {
	OpenAPI    string                    `yaml:"openapi"`
	Security   []map[string][]string     `yaml:"security"`
	Paths      map[string]map[string]any `yaml:"paths"`
	Components map[string]map[string]any `yaml:"components"`
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadSpec(t *testing.T) (openapiDoc, any) {
	t.Helper()
	var doc openapiDoc
	if err := yaml.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	var raw any
	yaml.Unmarshal(api.OpenAPI, &raw)
	return doc, raw
}

var paramRE = regexp.MustCompile(`\{[^}]*\}`)

// routeKey normalizes "GET /v1/recordings/{id}" so that parameter names
// (and wildcards) do not matter. The router's end anchor "{$}" is not a
// parameter: "GET /{$}" is the path "/" (so it cannot stand in for
// "GET /{page}", or the reverse).
func routeKey(method, path string) string {
	path = strings.TrimSuffix(path, "{$}")
	return strings.ToUpper(method) + " " + paramRE.ReplaceAllString(path, "{}")
}

func TestOpenAPIWellFormed(t *testing.T) {
	doc, raw := loadSpec(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Fatalf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	// Every $ref resolves.
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if k == "$ref" {
					ref, _ := val.(string)
					if !resolves(raw, ref) {
						t.Errorf("unresolved $ref %q", ref)
					}
				}
				walk(val)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(raw)
	ops := map[string]bool{}
	for path, item := range doc.Paths {
		names := paramRE.FindAllString(path, -1)
		for _, m := range httpMethods {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			id, _ := op["operationId"].(string)
			if id == "" || ops[id] {
				t.Errorf("%s %s: missing or duplicate operationId %q", m, path, id)
			}
			ops[id] = true
			if _, ok := op["responses"]; !ok {
				t.Errorf("%s %s: no responses", m, path)
			}
			// Path parameters are declared (on the path or the operation).
			declared := map[string]bool{}
			for _, src := range []any{item["parameters"], op["parameters"]} {
				list, _ := src.([]any)
				for _, p := range list {
					pm, _ := p.(map[string]any)
					if ref, ok := pm["$ref"].(string); ok {
						pm = lookup(raw, ref)
					}
					if pm["in"] == "path" {
						declared[pm["name"].(string)] = true
					}
				}
			}
			for _, n := range names {
				if !declared[strings.Trim(n, "{}")] {
					t.Errorf("%s %s: path parameter %s not declared", m, path, n)
				}
			}
		}
	}
}

func lookup(raw any, ref string) map[string]any {
	cur := raw
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	m, _ := cur.(map[string]any)
	return m
}

func resolves(raw any, ref string) bool {
	return strings.HasPrefix(ref, "#/") && lookup(raw, ref) != nil
}

// Every route of the full gateway router is documented, with its
// permission, and every documented operation is served.
func TestOpenAPIMatchesRouter(t *testing.T) {
	doc, _ := loadSpec(t)
	g := start(t)
	type info struct {
		perm   string
		public bool
		name   string
	}
	spec := map[string]info{}
	for path, item := range doc.Paths {
		for _, m := range httpMethods {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			perm, _ := op["x-permission"].(string)
			sec, hasSec := op["security"].([]any)
			spec[routeKey(m, path)] = info{perm: perm, public: hasSec && len(sec) == 0, name: strings.ToUpper(m) + " " + path}
		}
	}
	router := map[string]api.Route{}
	for _, rt := range g.API.Routes() {
		router[routeKey(rt.Method, rt.Pattern)] = rt
	}
	var missingInSpec, missingInRouter, mismatch []string
	for k, rt := range router {
		s, ok := spec[k]
		if !ok {
			missingInSpec = append(missingInSpec, rt.Method+" "+rt.Pattern)
			continue
		}
		if s.perm != string(rt.Perm) || s.public != (rt.Perm == "") {
			mismatch = append(mismatch, rt.Method+" "+rt.Pattern+": router permission "+quote(string(rt.Perm))+
				", spec x-permission "+quote(s.perm)+" (public in spec: "+boolStr(s.public)+")")
		}
	}
	for k, s := range spec {
		if _, ok := router[k]; !ok {
			missingInRouter = append(missingInRouter, s.name)
		}
	}
	sort.Strings(missingInSpec)
	sort.Strings(missingInRouter)
	sort.Strings(mismatch)
	if len(missingInSpec) > 0 {
		t.Errorf("routes in the router but not in docs/openapi.yaml (%d):\n  %s", len(missingInSpec), strings.Join(missingInSpec, "\n  "))
	}
	if len(missingInRouter) > 0 {
		t.Errorf("operations in docs/openapi.yaml but not in the router (%d):\n  %s", len(missingInRouter), strings.Join(missingInRouter, "\n  "))
	}
	if len(mismatch) > 0 {
		t.Errorf("permissions differ (%d):\n  %s", len(mismatch), strings.Join(mismatch, "\n  "))
	}
	if !slices.ContainsFunc(g.API.Routes(), func(r api.Route) bool { return r.Pattern == "/v1/openapi.yaml" }) {
		t.Error("the document is not served")
	}
}

func quote(s string) string { return `"` + s + `"` }

func boolStr(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func TestOpenAPIServed(t *testing.T) {
	g := start(t)
	r := do(t, "GET", g.URL()+"/v1/openapi.yaml", "", nil)
	if r.Status != 200 || r.Header.Get("Content-Type") != "application/yaml" || !bytes.Equal(r.Body, api.OpenAPI) {
		t.Fatalf("%d %s", r.Status, r.Header.Get("Content-Type"))
	}
}

// jsonFields returns the JSON member names of a struct type (embedded
// structs flattened, as encoding/json does) and whether each is always
// present (no omitempty).
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			maps.Copy(out, jsonFields(ft))
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = !slices.Contains(strings.Split(opts, ","), "omitempty")
	}
	return out
}

// schemaMembers returns the properties and required members of the
// object schema at ref (allOf parts merged).
func schemaMembers(raw any, ref string) (props map[string]bool, required []string, ok bool) {
	s := lookup(raw, ref)
	if s == nil {
		return nil, nil, false
	}
	props = map[string]bool{}
	parts := []map[string]any{s}
	if all, _ := s["allOf"].([]any); len(all) > 0 {
		parts = nil
		for _, p := range all {
			pm, _ := p.(map[string]any)
			if r, ok := pm["$ref"].(string); ok {
				pm = lookup(raw, r)
			}
			parts = append(parts, pm)
		}
	}
	for _, p := range parts {
		pr, _ := p["properties"].(map[string]any)
		for k := range pr {
			props[k] = true
		}
		req, _ := p["required"].([]any)
		for _, r := range req {
			required = append(required, r.(string))
		}
	}
	return props, required, true
}

// The documented response and request objects have exactly the members
// the handlers' types marshal, and a member the spec calls required is
// never omitted.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	_, raw := loadSpec(t)
	const s = "#/components/schemas/"
	tests := []struct {
		ref string
		typ any
	}{
		{s + "SearchResult", api.SearchResponse{}},
		{s + "SearchHit", api.SearchHit{}},
		{s + "SearchHit/properties/highlights/items", search.Range{}},
		{s + "SearchHit/properties/moments/items", search.Moment{}},
		{s + "HoldRequest", api.HoldRequest{}},
		{s + "Hold", api.Hold{}},
		{s + "Hold/properties/recordings", api.HoldRecordings{}},
		{s + "Hold/properties/object_lock", api.HoldObjectLock{}},
		{s + "Me", api.Me{}},
		{s + "MediaTicket", api.MediaTicket{}},
		{s + "Problem", api.Problem{}},
		{s + "Problem/properties/errors/items", api.FieldError{}},
		{s + "TokenRequest", api.TokenRequest{}},
		{s + "TokenInfo", auth.TokenInfo{}},
		{s + "CreatedToken", api.CreatedToken{}},
		{s + "AuditEntry", api.AuditEntryJSON{}},
		{s + "AuditVerifyResult", api.AuditVerifyResult{}},
		{s + "AuditVerifyResult/properties/last_checkpoint", api.CheckpointJSON{}},
		{s + "SigningKey", api.SigningKeyJSON{}},
		{s + "ExportRequest", api.ExportRequest{}},
		{s + "ExportRequest/properties/filters", api.ExportFilters{}},
		{s + "Export", api.ExportJSON{}},
		{s + "Export/properties/links", api.ExportLinks{}},
		{s + "Recording", api.RecordingJSON{}},
		{s + "PolicyDocument", api.PolicyDocument{}},
		{s + "PolicyDocument/properties/warnings/items", api.PolicyWarning{}},
		{s + "Session", recorder.SessionDoc{}},
		{s + "Participant", recorder.ParticipantDoc{}},
		{s + "Pull", recorder.PullDoc{}},
		{s + "Transcript", transcribe.Transcript{}},
		{s + "Segment", transcribe.Segment{}},
		{s + "Word", transcribe.Word{}},
		{s + "Redaction", render.MergedRedaction{}}, // recording_id, participant_id: session transcripts only
		{s + "SessionTranscript", render.Merged{}},
		{s + "SessionTranscript/properties/recordings/items", render.Source{}},
	}
	for _, tt := range tests {
		typ := reflect.TypeOf(tt.typ)
		t.Run(typ.String(), func(t *testing.T) {
			props, required, ok := schemaMembers(raw, tt.ref)
			if !ok {
				t.Fatalf("no schema %s", tt.ref)
			}
			fields := jsonFields(typ)
			for name := range fields {
				if !props[name] {
					t.Errorf("%s: member %q is served but not documented", tt.ref, name)
				}
			}
			for name := range props {
				if _, ok := fields[name]; !ok {
					t.Errorf("%s: member %q is documented but %s has no such field", tt.ref, name, typ)
				}
			}
			for _, name := range required {
				if always, ok := fields[name]; ok && !always {
					t.Errorf("%s: member %q is required but omitted when empty", tt.ref, name)
				}
			}
		})
	}
}
