package janus_test

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"unicode"

	"github.com/custodian/custodian/recorder/janus"
	"github.com/custodian/custodian/storage/meta"
)

func TestParseDescription(t *testing.T) {
	tests := []struct {
		desc   string
		dept   string
		labels map[string]string
	}{
		{"Trading floor", "", map[string]string{}},
		{"Sales floor department=sales desk=equities", "sales", map[string]string{"desk": "equities"}},
		{"a=1,b=2;c=3 d=", "", map[string]string{"a": "1", "b": "2", "c": "3"}},
		{"a=1 a=2 .bad=x department=bad/dept", "", map[string]string{"a": "1"}},
		{"key=" + strings.Repeat("v", 257) + " ok=yes", "", map[string]string{"ok": "yes"}},
	}
	for _, tc := range tests {
		m := janus.ParseDescription(tc.desc)
		if m.Department != tc.dept || !maps.Equal(m.Labels, tc.labels) {
			t.Errorf("ParseDescription(%q) = %q %v, want %q %v", tc.desc, m.Department, m.Labels, tc.dept, tc.labels)
		}
	}
}

func TestID(t *testing.T) {
	for _, in := range []string{`1234`, `"room-a"`, `18446744073709551615`, `"1234"`} {
		var id janus.ID
		if err := json.Unmarshal([]byte(in), &id); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		out, _ := json.Marshal(id)
		if string(out) != in {
			t.Errorf("round trip %s → %s", in, out)
		}
	}
	for _, bad := range []string{`-1`, `1.5`, `18446744073709551616`, `{}`} {
		var id janus.ID
		if err := json.Unmarshal([]byte(bad), &id); err == nil {
			t.Errorf("%s accepted as %v", bad, id)
		}
	}
	if b, _ := json.Marshal(janus.ParseID("42")); string(b) != "42" {
		t.Errorf("ParseID(42) marshals as %s", b)
	}
	if b, _ := json.Marshal(janus.ParseID("lobby")); string(b) != `"lobby"` {
		t.Errorf("ParseID(lobby) marshals as %s", b)
	}
}

func TestParseEventGone(t *testing.T) {
	for in, want := range map[string]string{
		`{"videoroom":"event","room":1,"leaving":42}`:        "42",
		`{"videoroom":"event","room":1,"unpublished":"abc"}`: "abc",
		`{"videoroom":"event","room":1,"unpublished":"ok"}`:  "",
		`{"videoroom":"event","room":1,"leaving":"ok"}`:      "",
		`{"videoroom":"event","room":1}`:                     "",
	} {
		ev, err := janus.ParseEvent(json.RawMessage(in))
		if err != nil {
			t.Fatal(err)
		}
		id, ok := ev.Gone()
		if got := id.String(); got != want || ok != (want != "") {
			t.Errorf("%s: gone %q %v, want %q", in, got, ok, want)
		}
	}
}

func FuzzParseMessages(f *testing.F) {
	f.Add([]byte(`{"janus":"keepalive"}`))
	f.Add([]byte(`[{"janus":"event","sender":1,"transaction":"x","plugindata":{"plugin":"janus.plugin.videoroom","data":{"videoroom":"event","publishers":[{"id":5,"display":"A","streams":[{"type":"audio","mid":"0"}]}]}},"jsep":{"type":"offer","sdp":"v=0"}}]`))
	f.Add([]byte(`{"janus":"error","error":{"code":458,"reason":"No such session"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := janus.ParseMessages(b)
		if err != nil {
			if !errors.Is(err, janus.ErrBadResponse) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		for _, m := range ms {
			if m.Janus == "" {
				t.Fatal("message without a type")
			}
			if m.PluginData != nil {
				if ev, err := janus.ParseEvent(m.PluginData.Data); err == nil {
					ev.Gone()
				}
			}
		}
	})
}

func FuzzParseDescription(f *testing.F) {
	f.Add("Sales floor department=sales desk=equities")
	f.Add("a=1,b=2;c=3")
	f.Fuzz(func(t *testing.T, desc string) {
		m := janus.ParseDescription(desc)
		if m.Department != "" && !meta.ValidID(m.Department) {
			t.Fatalf("department %q", m.Department)
		}
		if len(m.Labels) > 30 {
			t.Fatalf("%d labels", len(m.Labels))
		}
		for k, v := range m.Labels {
			if !meta.ValidID(k) || len(k) > 64 || len(v) > 256 || v == "" || strings.ContainsAny(v, ",;") || strings.ContainsFunc(v, unicode.IsSpace) {
				t.Fatalf("label %q=%q", k, v)
			}
		}
	})
}
