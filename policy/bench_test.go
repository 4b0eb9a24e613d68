package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// benchSet has n rules that do not match the probe followed by one that does.
func benchSet(b *testing.B, n int) *Set {
	b.Helper()
	var sb strings.Builder
	sb.WriteString("policies:\n")
	for i := range n {
		fmt.Fprintf(&sb, "  - name: r%d\n    match: {tenant: default, department: d%d, labels: {queue: q%d}}\n    retention: %dd\n", i, i, i, i+1)
	}
	sb.WriteString("  - name: hit\n    match: {tenant: default, participant: {role: agent}}\n    transcribe: true\n    access: {roles: [compliance]}\n")
	s, err := Parse([]byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkDecide(b *testing.B) {
	in := Input{Tenant: "default", Department: "sales", Labels: map[string]string{"queue": "billing"}, Participant: map[string]string{"role": "agent"}}
	for _, n := range []int{1, 20, 200} {
		s := benchSet(b, n)
		b.Run(fmt.Sprintf("rules=%d", n+1), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := s.Decide(in); d.Rule != "hit" {
					b.Fatal(d.Rule)
				}
			}
		})
	}
}

func BenchmarkParse(b *testing.B) {
	doc := []byte(testDoc)
	b.ReportAllocs()
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := Parse(doc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseSyntaxErrorLate measures the worst case of locating a
// syntax error: a 60 KiB document whose only problem is on its last line.
func BenchmarkParseSyntaxErrorLate(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("policies:\n")
	for i := 0; sb.Len() < 60<<10; i++ {
		fmt.Fprintf(&sb, "  - name: r%d\n    match: {department: d%d}\n", i, i)
	}
	sb.WriteString("   record: off\n")
	doc := []byte(sb.String())
	b.ReportAllocs()
	for b.Loop() {
		_, err := Parse(doc)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line == 0 {
			b.Fatal(err)
		}
	}
}
