package job

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/redact"
)

// TestRedactionBeforeStorage transcribes call04 ("my card number is four
// one one one …", a Luhn-valid 4111 1111 1111 1111) for a policy that
// redacts: the sealed transcript holds [REDACTED:CARD_NUMBER] and none of
// the spoken digits, the redaction span is on the session clock, and an
// unredacted copy exists only when the policy keeps one.
func TestRedactionBeforeStorage(t *testing.T) {
	en := offlineEngine(t)
	e := newEnv(t, envOptions{})
	q := e.queue(t, testQueueConfig(30*time.Second, 3))
	startWorker(t, fastWorker(q, e.transcriber(en)))
	spokenRun := regexp.MustCompile(`(?i)\b(one|four)( +(one|four)){3,}\b`)
	digitRun := regexp.MustCompile(`\d{4}`)
	for _, keep := range []bool{false, true} {
		name := "redacted only"
		if keep {
			name = "redacted and kept unredacted"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			const offset = 3000
			rec := e.record(t, recSpec{file: testdata("call04.ogg"), name: "Customer", redact: true, keepUnredacted: keep, startOffsetMS: offset})
			if _, err := q.Enqueue(ctx, rec, SourceCompleted, time.Time{}); err != nil {
				t.Fatal(err)
			}
			row := e.waitStatus(t, rec.ID, meta.TranscriptCompleted, time.Minute)
			tr, plain := e.storedTranscript(t, rec.ID, ObjectTranscript)
			text := string(plain)
			if !strings.Contains(text, redact.Placeholder(redact.CardNumber)) {
				t.Fatalf("stored transcript has no %s: %s", redact.Placeholder(redact.CardNumber), text)
			}
			if m := spokenRun.FindString(text); m != "" {
				t.Errorf("stored plaintext still holds spoken digits %q", m)
			}
			// Numbers in the JSON are times and confidences; the text
			// fields must hold no digits either.
			for _, s := range tr.Segments {
				for _, f := range append([]string{s.Text}, wordTexts(s.Words)...) {
					if m := digitRun.FindString(f); m != "" || spokenRun.FindString(f) != "" {
						t.Errorf("stored text %q holds the card number", f)
					}
				}
			}
			if len(tr.Redactions) != 1 || tr.Redactions[0].Type != redact.CardNumber ||
				tr.Redactions[0].StartMS < offset || tr.Redactions[0].EndMS > offset+rec.DurationMS {
				t.Errorf("redactions = %+v, want one CARD_NUMBER span inside [%d, %d]", tr.Redactions, offset, offset+rec.DurationMS)
			}
			if !row.Redacted {
				t.Error("row.Redacted is false")
			}
			if ev := e.outbox(t, events.TranscriptCompleted, rec.ID); len(ev) != 1 || !ev[0].Redacted || ev[0].Redactions != 1 {
				t.Errorf("transcript.completed = %+v", ev)
			}
			_, err := e.store.GetObject(ctx, e.tenant, rec.ID, ObjectUnredacted)
			if !keep {
				if !isNotFound(err) || row.UnredactedKey != "" {
					t.Errorf("unredacted object without keep_unredacted: err %v, key %q", err, row.UnredactedKey)
				}
				return
			}
			if row.UnredactedKey != storage.ObjectKey(e.tenant, rec.ID, ObjectUnredacted) {
				t.Errorf("UnredactedKey = %q", row.UnredactedKey)
			}
			un, unPlain := e.storedTranscript(t, rec.ID, ObjectUnredacted)
			if spokenRun.FindString(string(unPlain)) == "" || len(un.Redactions) != 0 || strings.Contains(string(unPlain), "REDACTED") {
				t.Errorf("unredacted copy does not hold the spoken number: %s", unPlain)
			}
		})
	}
}

func wordTexts(ws []transcribe.Word) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.Word
	}
	return out
}
