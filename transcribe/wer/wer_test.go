package wer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"lower and punctuation", "Hello, World!", "hello world"},
		{"sphinx markers", "<s> and mister john </s>", "and mister john"},
		{"sphinx fillers", "<sil> [NOISE] yes ++BREATH++ [SPEECH]", "yes"},
		{"alternate pronunciation", "read(2) the(3) book", "read the book"},
		{"parenthesis kept as punctuation", "(aside) word", "aside word"},
		{"apostrophes kept inside", "Don't stop, 'John's' dog", "don't stop john's dog"},
		{"curly apostrophe", "it\u2019s", "it's"},
		{"hyphen splits", "cold-hearted ill-disposed", "cold hearted ill disposed"},
		{"dashes split", "yes\u2014no", "yes no"},
		{"abbreviations", "Mr. Dashwood and Mrs. Jennings, Dr. Who", "mister dashwood and missus jennings doctor who"},
		{"small cardinal", "I have 3 cats", "i have three cats"},
		{"teens and tens", "13, 20, 21 and 99", "thirteen twenty twenty one and ninety nine"},
		{"hundreds", "105 and 999", "one hundred five and nine hundred ninety nine"},
		{"phone number", "call 555-1234.", "call five five five one two three four"},
		{"group ends at punctuation", "4111 1111, 12", "four one one one one one one one twelve"},
		{"four digits cardinal", "1999", "one thousand nine hundred ninety nine"},
		{"zero", "0", "zero"},
		{"leading zero digit by digit", "0800", "zero eight zero zero"},
		{"long run digit by digit", "4111 1111", "four one one one one one one one"},
		{"card number run", "41111111", "four one one one one one one one"},
		{"grouped thousands", "1,000 12,345", "one thousand twelve thousand three hundred forty five"},
		{"million", "2,000,001", "two million one"},
		{"decimal", "3.05", "three point zero five"},
		{"ordinals", "1st 2nd 3rd 4th 21st 12th 20th", "first second third fourth twenty first twelfth twentieth"},
		{"dollars", "$5 and $1", "five dollars and one dollar"},
		{"percent", "50% of it", "fifty percent of it"},
		{"sentence end number", "call 911.", "call nine hundred eleven"},
		{"alphanumeric kept", "mp3 files", "mp3 files"},
		{"only punctuation", "... -- !", ""},
		{"unicode letters", "Café Über", "café über"},
		{"slash splits", "and/or", "and or"},
		{"quotes stripped", `"quoted"`, "quoted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(Normalize(tt.in), " ")
			if got != tt.want {
				t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestAlign(t *testing.T) {
	tests := []struct {
		name, ref, hyp string
		want           Counts
		ops            string
	}{
		{"identical", "a b c", "a b c", Counts{Ref: 3, Correct: 3}, "==="},
		{"both empty", "", "", Counts{}, ""},
		{"empty hypothesis", "a b c", "", Counts{Ref: 3, Del: 3}, "DDD"},
		{"empty reference", "", "a b", Counts{Ins: 2}, "II"},
		{"one substitution", "a b c", "a x c", Counts{Ref: 3, Correct: 2, Sub: 1}, "=S="},
		{"one deletion", "a b c", "a c", Counts{Ref: 3, Correct: 2, Del: 1}, "=D="},
		{"one insertion", "a b c", "a b x c", Counts{Ref: 3, Correct: 3, Ins: 1}, "==I="},
		{"insertion at start", "a b", "x a b", Counts{Ref: 2, Correct: 2, Ins: 1}, "I=="},
		{"deletion at end", "a b c", "a b", Counts{Ref: 3, Correct: 2, Del: 1}, "==D"},
		{"all different", "a b", "c d", Counts{Ref: 2, Sub: 2}, "SS"},
		{"mixed", "he was not an ill disposed young man", "he was not an ill the spoke young men",
			Counts{Ref: 8, Correct: 6, Sub: 2, Ins: 1}, "=====SI=S"},
		{"repeated words", "the the the", "the the", Counts{Ref: 3, Correct: 2, Del: 1}, "==D"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, hyp := strings.Fields(tt.ref), strings.Fields(tt.hyp)
			got, ops := Align(ref, hyp)
			if got != tt.want {
				t.Errorf("Align counts = %+v, want %+v", got, tt.want)
			}
			var kinds strings.Builder
			for _, op := range ops {
				kinds.WriteByte(byte(op.Kind))
			}
			// Insertions next to substitutions can be ordered either way;
			// compare as a multiset, and exactly when unambiguous.
			if !sameKinds(kinds.String(), tt.ops) {
				t.Errorf("ops = %q, want %q", kinds.String(), tt.ops)
			}
			checkOps(t, ref, hyp, ops)
		})
	}
}

func sameKinds(a, b string) bool {
	x, y := []byte(a), []byte(b)
	slices.Sort(x)
	slices.Sort(y)
	return string(x) == string(y)
}

// checkOps verifies the alignment rebuilds both sides.
func checkOps(t testing.TB, ref, hyp []string, ops []Op) {
	t.Helper()
	var r, h []string
	for _, op := range ops {
		switch op.Kind {
		case OpMatch:
			if op.Ref != op.Hyp {
				t.Fatalf("match of different words %q %q", op.Ref, op.Hyp)
			}
			r, h = append(r, op.Ref), append(h, op.Hyp)
		case OpSub:
			if op.Ref == op.Hyp {
				t.Fatalf("substitution of equal words %q", op.Ref)
			}
			r, h = append(r, op.Ref), append(h, op.Hyp)
		case OpDel:
			r = append(r, op.Ref)
		case OpIns:
			h = append(h, op.Hyp)
		default:
			t.Fatalf("unknown op %q", op.Kind)
		}
	}
	if !slices.Equal(r, ref) || !slices.Equal(h, hyp) {
		t.Fatalf("ops rebuild ref %q hyp %q, want %q %q", r, h, ref, hyp)
	}
}

func TestCountsRate(t *testing.T) {
	tests := []struct {
		name string
		c    Counts
		want float64
	}{
		{"perfect", Counts{Ref: 10, Correct: 10}, 0},
		{"quarter", Counts{Ref: 8, Sub: 1, Del: 1}, 0.25},
		{"over one", Counts{Ref: 2, Sub: 2, Ins: 3}, 2.5},
		{"empty both", Counts{}, 0},
		{"empty reference", Counts{Ins: 2}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.Rate(); got != tt.want {
				t.Errorf("Rate() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReportAggregates(t *testing.T) {
	var r Report
	r.Add("u1", "<s> he was not an ill disposed young man </s>", "he was not an ill the spoke young men")
	r.Add("u2", "Mr. Smith paid $5", "mister smith paid five dollars")
	r.Add("u3", "a b", "")
	want := Counts{Ref: 8 + 5 + 2, Correct: 6 + 5, Sub: 2, Del: 2, Ins: 1}
	if r.Total != want {
		t.Fatalf("Total = %+v, want %+v", r.Total, want)
	}
	if got, want := r.Rate(), 5.0/15; got != want {
		t.Fatalf("Rate = %v, want %v (errors summed, not averaged per utterance)", got, want)
	}
	if len(r.Results) != 3 || r.Results[2].Counts.Del != 2 {
		t.Fatalf("results %+v", r.Results)
	}
}

func TestParseTRN(t *testing.T) {
	in := ";; comment\n<s> and mister john </s> (utt-1)\n\ni would like (spk_cc01)\n"
	got, err := ParseTRN(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["utt-1"] != "<s> and mister john </s>" || got["spk_cc01"] != "i would like" {
		t.Fatalf("ParseTRN = %q", got)
	}
	for _, bad := range []string{"no id here\n", "words (a)\nmore (a)\n", "empty id ()\n"} {
		if _, err := ParseTRN(strings.NewReader(bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseTRN(%q) error = %v, want ErrFormat", bad, err)
		}
	}
}

// wavBytes builds a WAV file; extra chunks are inserted before data.
func wavBytes(channels, rate, bits int, tag uint16, samples []int16, extra ...[]byte) []byte {
	var b bytes.Buffer
	data := make([]byte, 2*len(samples))
	for i, s := range samples {
		binary.LittleEndian.PutUint16(data[2*i:], uint16(s))
	}
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(0)) // size unchecked by readers of streams
	b.WriteString("WAVEfmt ")
	binary.Write(&b, binary.LittleEndian, uint32(16))
	binary.Write(&b, binary.LittleEndian, tag)
	binary.Write(&b, binary.LittleEndian, uint16(channels))
	binary.Write(&b, binary.LittleEndian, uint32(rate))
	binary.Write(&b, binary.LittleEndian, uint32(rate*channels*bits/8))
	binary.Write(&b, binary.LittleEndian, uint16(channels*bits/8))
	binary.Write(&b, binary.LittleEndian, uint16(bits))
	for _, e := range extra {
		b.Write(e)
	}
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

func TestReadWAV(t *testing.T) {
	samples := []int16{0, 1, -1, 32767, -32768, 1234}
	list := []byte("LIST\x05\x00\x00\x00abcde\x00") // odd-sized chunk with pad byte
	tests := []struct {
		name    string
		in      []byte
		wantErr bool
	}{
		{"plain", wavBytes(1, 16000, 16, 1, samples), false},
		{"extra chunk", wavBytes(1, 16000, 16, 1, samples, list), false},
		{"stereo", wavBytes(2, 16000, 16, 1, samples), true},
		{"48 kHz", wavBytes(1, 48000, 16, 1, samples), true},
		{"8 bit", wavBytes(1, 16000, 8, 1, samples), true},
		{"mu-law", wavBytes(1, 16000, 16, 7, samples), true},
		{"not riff", []byte("RIFX\x00\x00\x00\x00WAVE"), true},
		{"short", []byte("RIFF"), true},
		{"truncated data", wavBytes(1, 16000, 16, 1, samples)[:50], true},
		{"no data chunk", wavBytes(1, 16000, 16, 1, samples)[:36], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ReadWAV(bytes.NewReader(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("err = %v, want ErrFormat", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(a.Samples, samples) {
				t.Fatalf("samples = %v, want %v", a.Samples, samples)
			}
		})
	}
}

func FuzzReadWAV(f *testing.F) {
	f.Add(wavBytes(1, 16000, 16, 1, []int16{1, 2, 3}))
	f.Add(wavBytes(2, 44100, 16, 1, []int16{1, 2, 3, 4}))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEdata\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ReadWAV(bytes.NewReader(b))
		if err == nil && 2*len(a.Samples) > len(b) {
			t.Fatalf("%d samples from %d bytes", len(a.Samples), len(b))
		}
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("error %v does not wrap ErrFormat", err)
		}
	})
}

func FuzzAlign(f *testing.F) {
	f.Add("he was not an ill disposed young man", "he was not an ill the spoke young men")
	f.Add("", "a b")
	f.Add("4111 1,000 Mr. $5", "four one one one")
	f.Fuzz(func(t *testing.T, ref, hyp string) {
		r, h := Normalize(ref), Normalize(hyp)
		c, ops := Align(r, h)
		checkOps(t, r, h, ops)
		if c.Ref != len(r) || c.Correct+c.Sub+c.Del != len(r) || c.Correct+c.Sub+c.Ins != len(h) {
			t.Fatalf("counts %+v inconsistent with %d ref and %d hyp words", c, len(r), len(h))
		}
		lo, hi := len(r)-len(h), max(len(r), len(h))
		if lo < 0 {
			lo = -lo
		}
		if c.Errors() < lo || c.Errors() > hi {
			t.Fatalf("errors %d outside [%d, %d]", c.Errors(), lo, hi)
		}
		if self, _ := Align(r, r); self.Errors() != 0 {
			t.Fatalf("self-alignment has %d errors", self.Errors())
		}
		for _, w := range r {
			if w == "" || strings.ContainsAny(w, " \t\n") {
				t.Fatalf("Normalize(%q) gave word %q", ref, w)
			}
		}
	})
}

func BenchmarkAlign(b *testing.B) {
	ref := Normalize(strings.Repeat("had he married a more amiable woman he might have been made still more respectable ", 20))
	hyp := Normalize(strings.Repeat("had he married a more a amiable woman he might have been made steel more respectable than ", 20))
	b.ReportAllocs()
	for b.Loop() {
		Align(ref, hyp)
	}
}
