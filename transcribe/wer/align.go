package wer

import "fmt"

// Counts are the edit counts of one alignment or a sum of alignments.
type Counts struct {
	Ref     int `json:"ref"`     // reference words
	Correct int `json:"correct"` // reference words matched exactly
	Sub     int `json:"sub"`     // substitutions
	Del     int `json:"del"`     // deletions (reference words missing from the hypothesis)
	Ins     int `json:"ins"`     // insertions (hypothesis words not in the reference)
}

// Errors is Sub + Del + Ins.
func (c Counts) Errors() int { return c.Sub + c.Del + c.Ins }

// Rate is the word error rate Errors/Ref as a fraction (0.25 is 25 %).
// With an empty reference it is 0 when the hypothesis is empty too and
// the number of inserted words otherwise.
func (c Counts) Rate() float64 {
	if c.Ref == 0 {
		return float64(c.Errors())
	}
	return float64(c.Errors()) / float64(c.Ref)
}

// Add returns the sum of c and o.
func (c Counts) Add(o Counts) Counts {
	return Counts{Ref: c.Ref + o.Ref, Correct: c.Correct + o.Correct, Sub: c.Sub + o.Sub, Del: c.Del + o.Del, Ins: c.Ins + o.Ins}
}

// String formats the counts like sclite's summary line.
func (c Counts) String() string {
	return fmt.Sprintf("WER %.1f%% (ref %d, sub %d, del %d, ins %d)", 100*c.Rate(), c.Ref, c.Sub, c.Del, c.Ins)
}

// OpKind is one step of an alignment.
type OpKind byte

// Alignment steps.
const (
	OpMatch OpKind = '='
	OpSub   OpKind = 'S'
	OpDel   OpKind = 'D'
	OpIns   OpKind = 'I'
)

// Op pairs a reference word with a hypothesis word; Ref is empty for an
// insertion and Hyp for a deletion.
type Op struct {
	Kind OpKind
	Ref  string
	Hyp  string
}

// Align finds a minimum-edit alignment of hyp against ref (Levenshtein
// distance over words, every edit costing 1) and returns its counts and
// steps in order. Among equally short alignments it prefers matches and
// substitutions over insertion/deletion pairs.
func Align(ref, hyp []string) (Counts, []Op) {
	n, m := len(ref), len(hyp)
	// d[i][j] = distance between ref[:i] and hyp[:j], stored row-major.
	w := m + 1
	d := make([]int32, (n+1)*w)
	for j := 0; j <= m; j++ {
		d[j] = int32(j)
	}
	for i := 1; i <= n; i++ {
		d[i*w] = int32(i)
		for j := 1; j <= m; j++ {
			diag := d[(i-1)*w+j-1]
			if ref[i-1] != hyp[j-1] {
				diag++
			}
			best := min(diag, d[(i-1)*w+j]+1, d[i*w+j-1]+1)
			d[i*w+j] = best
		}
	}
	ops := make([]Op, 0, max(n, m))
	var c Counts
	c.Ref = n
	i, j := n, m
	for i > 0 || j > 0 {
		switch {
		case i > 0 && j > 0 && ref[i-1] == hyp[j-1] && d[i*w+j] == d[(i-1)*w+j-1]:
			ops = append(ops, Op{OpMatch, ref[i-1], hyp[j-1]})
			c.Correct++
			i, j = i-1, j-1
		case i > 0 && j > 0 && d[i*w+j] == d[(i-1)*w+j-1]+1:
			ops = append(ops, Op{OpSub, ref[i-1], hyp[j-1]})
			c.Sub++
			i, j = i-1, j-1
		case i > 0 && d[i*w+j] == d[(i-1)*w+j]+1:
			ops = append(ops, Op{OpDel, ref[i-1], ""})
			c.Del++
			i--
		default:
			ops = append(ops, Op{OpIns, "", hyp[j-1]})
			c.Ins++
			j--
		}
	}
	for l, r := 0, len(ops)-1; l < r; l, r = l+1, r-1 {
		ops[l], ops[r] = ops[r], ops[l]
	}
	return c, ops
}

// Compare normalizes both texts and aligns them.
func Compare(reference, hypothesis string) Counts {
	c, _ := Align(Normalize(reference), Normalize(hypothesis))
	return c
}
