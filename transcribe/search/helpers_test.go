package search

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/custodian/custodian/internal/testpoll"
	"github.com/custodian/custodian/policy"
	"github.com/custodian/custodian/transcribe"
)

// speechDir holds the shared speech samples (text spoken in callNN.wav).
const speechDir = "../../testdata/speech"

// testKeys returns a KeyFunc giving each tenant a fixed random key for the
// test, the way storage.NamedKey would.
func testKeys(tb testing.TB) KeyFunc {
	tb.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	return func(ctx context.Context, tenant string) ([]byte, error) {
		h := sha256.Sum256(append(append([]byte{}, secret...), tenant...))
		return h[:], nil
	}
}

func openTestIndex(tb testing.TB, dir string, keys KeyFunc, mutate ...func(*Options)) *Index {
	tb.Helper()
	o := Options{Dir: dir, Key: keys, CompactDelay: time.Hour, CompactMaxDelay: time.Hour}
	for _, m := range mutate {
		m(&o)
	}
	x, err := Open(context.Background(), o)
	if err != nil {
		tb.Fatalf("open index: %v", err)
	}
	tb.Cleanup(func() { x.Close() })
	return x
}

// speak turns text into a transcript with plausible word times: about
// 150 words a minute, a pause after punctuation, one segment per
// sentence, starting at startMS on the session clock.
func speak(recID, session, participant, speaker, text string, startMS int64) transcribe.Transcript {
	t := transcribe.Transcript{RecordingID: recID, SessionID: session, ParticipantID: participant,
		Speaker: speaker, Engine: "test", Language: "en-US"}
	at := startMS
	var seg *transcribe.Segment
	for _, raw := range strings.Fields(text) {
		w := strings.TrimFunc(raw, func(r rune) bool { return unicode.IsPunct(r) && r != '\'' && r != '[' && r != ']' })
		if w == "" {
			continue
		}
		if seg == nil {
			t.Segments = append(t.Segments, transcribe.Segment{StartMS: at})
			seg = &t.Segments[len(t.Segments)-1]
		}
		d := int64(180 + 45*len([]rune(w)))
		seg.Words = append(seg.Words, transcribe.Word{StartMS: at, EndMS: at + d, Word: w, Confidence: 0.9})
		seg.EndMS = at + d
		if seg.Text != "" {
			seg.Text += " "
		}
		seg.Text += w
		at += d + 60
		if strings.ContainsAny(raw[len(raw)-1:], ".,?!") {
			at += 350
			if strings.ContainsAny(raw[len(raw)-1:], ".?!") {
				seg = nil
			}
		}
	}
	return t
}

// speechSample returns the text spoken in callNN.
func speechSample(tb testing.TB, name string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(speechDir, name+".txt"))
	if err != nil {
		tb.Fatalf("speech sample: %v", err)
	}
	return strings.TrimSpace(string(bytes.TrimSpace(b)))
}

type docSpec struct {
	tenant, rec, session, participant, speaker, dept string
	at                                               time.Time
	offsetMS                                         int64
	access                                           *policy.Access
	text                                             string
}

func (s docSpec) doc() Document {
	tr := speak(s.rec, s.session, s.participant, s.speaker, s.text, s.offsetMS+500)
	if s.tenant == "" {
		s.tenant = "t1"
	}
	return NewDocument(tr, s.tenant, s.dept, s.at, s.offsetMS, s.access)
}

func mustApply(tb testing.TB, x *Index, tenant string, put []Document, del []string) {
	tb.Helper()
	if err := x.Apply(context.Background(), tenant, put, del); err != nil {
		tb.Fatalf("apply: %v", err)
	}
}

func mustQuery(tb testing.TB, text string) *Query {
	tb.Helper()
	q, err := ParseQuery(text)
	if err != nil {
		tb.Fatalf("parse %q: %v", text, err)
	}
	return q
}

var adminOf = func(tenant string) Access {
	return Access{Tenant: tenant, AllDepartments: true, Role: policy.RoleAdmin}
}

func mustSearch(tb testing.TB, x *Index, r Request) Result {
	tb.Helper()
	res, err := x.Search(context.Background(), r)
	if err != nil {
		tb.Fatalf("search: %v", err)
	}
	return res
}

func hitIDs(res Result) []string {
	out := make([]string, len(res.Hits))
	for i, h := range res.Hits {
		out[i] = h.RecordingID
	}
	return out
}

// checkFor polls f until it returns nil or the timeout passes.
var checkFor = testpoll.Until
