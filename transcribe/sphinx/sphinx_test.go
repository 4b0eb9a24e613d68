package sphinx

import (
	"math"
	"testing"
)

func TestCleanWord(t *testing.T) {
	tests := []struct{ in, want string }{
		{"hello", "hello"},
		{"read(2)", "read"},
		{"the(10)", "the"},
		{"<s>", ""},
		{"</s>", ""},
		{"<sil>", ""},
		{"[NOISE]", ""},
		{"[SPEECH]", ""},
		{"++BREATH++", ""},
		{"", ""},
		{"don't", "don't"},
		{"(2)", "(2)"},
	}
	for _, tt := range tests {
		if got := cleanWord(tt.in); got != tt.want {
			t.Errorf("cleanWord(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestClamp01(t *testing.T) {
	tests := []struct{ in, want float64 }{
		{0.5, 0.5}, {1.0000001, 1}, {-0.1, 0}, {math.NaN(), 0}, {math.Inf(1), 1}, {0, 0}, {1, 1},
	}
	for _, tt := range tests {
		if got := clamp01(tt.in); got != tt.want {
			t.Errorf("clamp01(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
