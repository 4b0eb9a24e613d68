package job

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custodian/custodian/api/events"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/render"
	"github.com/custodian/custodian/transcribe/wer"
)

// References of testdata/callNN.ogg (shared/testdata/speech/callNN.txt).
var callText = []string{
	"Thank you for calling customer support, my name is Alex, how can I help you today.",
	"I would like to cancel my account because the service was interrupted three times this month.",
	"Can you confirm the last four digits of the card on file.",
	"My card number is four one one one one one one one one one one one one one one one.",
	"I understand, I have applied a credit and your contract ends on the thirtieth of June.",
	"Please note that this call is being recorded for compliance and training purposes.",
}

func testdata(name string) string { return filepath.Join("..", "..", "testdata", name) }

// TestJobRoundTripThroughRecording writes the six calls back to back
// (testdata/calls-long.ogg, 40 s) as a sealed recording that starts 5 s
// into its session, runs its job from the recording.completed event, and
// checks the words, the word times on the session clock (each call's words
// inside that call's time), the stored object, the row and the event.
func TestJobRoundTripThroughRecording(t *testing.T) {
	en := offlineEngine(t)
	e := newEnv(t, envOptions{})
	e.relay(t)
	q := e.queue(t, testQueueConfig(30*time.Second, 3))
	d := NewDispatcher(q, DispatchConfig{PollWait: 200 * time.Millisecond})
	if _, err := d.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithCancel(context.Background())
	ddone := make(chan struct{})
	go func() { defer close(ddone); d.Run(dctx) }()
	t.Cleanup(func() { dcancel(); <-ddone })
	startWorker(t, fastWorker(q, e.transcriber(en)))

	const offset = 5000
	rec := e.record(t, recSpec{file: testdata("calls-long.ogg"), name: "Alex Agent", participant: "agent-1", startOffsetMS: offset})
	row := e.waitStatus(t, rec.ID, meta.TranscriptCompleted, 3*time.Minute)
	waitStreamEmpty(t, q, 10*time.Second)

	tr, plain := e.storedTranscript(t, rec.ID, ObjectTranscript)
	if tr.RecordingID != rec.ID || tr.SessionID != rec.SessionID || tr.ParticipantID != "agent-1" ||
		tr.Speaker != "Alex Agent" || tr.Engine != "offline" || tr.Language != "en-US" {
		t.Errorf("transcript header = %+v", transcribe.Transcript{RecordingID: tr.RecordingID, SessionID: tr.SessionID,
			ParticipantID: tr.ParticipantID, Speaker: tr.Speaker, Engine: tr.Engine, Language: tr.Language})
	}
	ws := words(tr)
	var rep wer.Report
	res := rep.Add("calls-long", strings.Join(callText, " "), wer.Text(ws))
	t.Logf("%d words in %d segments, WER %.1f%% (%v)", len(ws), len(tr.Segments), 100*res.Counts.Rate(), res.Counts)
	if r := res.Counts.Rate(); r > 0.45 {
		t.Errorf("WER %.1f%% through the recording; the engine gets about 30%% on these clips", 100*r)
	}

	// Times: on the session clock, ordered, inside the recording.
	end := int64(offset) + rec.DurationMS
	for i, w := range ws {
		if w.StartMS < offset || w.EndMS > end+50 || w.EndMS < w.StartMS {
			t.Fatalf("word %d %q at [%d, %d] ms, recording spans [%d, %d] on the session clock", i, w.Word, w.StartMS, w.EndMS, offset, end)
		}
		if i > 0 && w.StartMS < ws[i-1].StartMS {
			t.Fatalf("word %d starts at %d before word %d at %d", i, w.StartMS, i-1, ws[i-1].StartMS)
		}
	}
	for _, s := range tr.Segments {
		if len(s.Words) == 0 || s.StartMS != s.Words[0].StartMS || s.EndMS < s.Words[len(s.Words)-1].EndMS || s.Text == "" {
			t.Fatalf("segment [%d, %d] %d words, text %d bytes: bounds do not match its words", s.StartMS, s.EndMS, len(s.Words), len(s.Text))
		}
	}
	// Call 4 (the card number, 19.2–26.5 s into the file) is the only
	// one with a run of "one": its words must sit in its time span.
	var ones []transcribe.Word
	for _, w := range ws {
		if w.Word == "one" {
			ones = append(ones, w)
		}
	}
	if len(ones) < 10 {
		t.Fatalf("%d words \"one\"; want most of the 15 in call 4", len(ones))
	}
	for _, w := range ones {
		if w.StartMS < offset+19000 || w.EndMS > offset+26600 {
			t.Errorf("\"one\" at [%d, %d] ms; call 4 spans about [%d, %d] on the session clock", w.StartMS, w.EndMS, offset+19200, offset+26500)
		}
	}

	// Row and event.
	if row.WordCount != len(ws) || row.DurationMS < rec.DurationMS || row.Engine != "offline" || row.Attempts != 1 ||
		row.CipherSHA256 == "" || row.ObjectKey == "" || row.Redacted || row.UnredactedKey != "" || row.CompletedAt == nil ||
		row.SessionID != rec.SessionID || row.ParticipantID != "agent-1" || row.Department != "sales" {
		t.Errorf("transcript row = %+v", row)
	}
	evs := e.outbox(t, events.TranscriptCompleted, rec.ID)
	if len(evs) != 1 {
		t.Fatalf("%d transcript.completed events, want 1", len(evs))
	}
	if ev := evs[0]; ev.WordCount != len(ws) || ev.CipherSHA256 != row.CipherSHA256 || ev.RecordingID != rec.ID || ev.Attempts != 1 {
		t.Errorf("event data = %+v", ev)
	}
	var raw meta.OutboxEvent
	e.db.Where("kind = ? AND subject = ?", events.TranscriptCompleted, rec.ID).Take(&raw)
	for _, w := range []string{"customer", "cancel", "compliance"} {
		if bytes.Contains(raw.Data, []byte(w)) {
			t.Errorf("event data holds transcript text %q", w)
		}
		if !bytes.Contains(plain, []byte(w)) {
			t.Logf("note: %q not recognized", w)
		}
	}
}

// TestSegments checks how words become segments: per chunk, at pauses,
// at the length limit, shifted onto the session clock.
func TestSegments(t *testing.T) {
	w := func(s, e int64, word string) transcribe.Word {
		return transcribe.Word{StartMS: s, EndMS: e, Word: word, Confidence: 0.9}
	}
	tests := []struct {
		name   string
		words  []transcribe.Word
		spans  []span
		offset int64
		want   [][2]int64 // segment bounds
		texts  []string
	}{
		{"empty", nil, nil, 0, nil, nil},
		{"one chunk", []transcribe.Word{w(100, 300, "hello"), w(350, 600, "there")}, []span{{0, 1000}}, 1000,
			[][2]int64{{1100, 1600}}, []string{"hello there"}},
		{"two chunks", []transcribe.Word{w(100, 300, "a"), w(2100, 2300, "b")}, []span{{0, 1000}, {2000, 3000}}, 0,
			[][2]int64{{100, 300}, {2100, 2300}}, []string{"a", "b"}},
		{"chunks touching", []transcribe.Word{w(900, 990, "a"), w(1000, 1100, "b")}, []span{{0, 1000}, {1000, 2000}}, 0,
			[][2]int64{{900, 990}, {1000, 1100}}, []string{"a", "b"}},
		{"pause splits", []transcribe.Word{w(0, 100, "a"), w(150, 300, "b"), w(1000, 1200, "c")}, []span{{0, 5000}}, 0,
			[][2]int64{{0, 300}, {1000, 1200}}, []string{"a b", "c"}},
		{"short pause keeps", []transcribe.Word{w(0, 100, "a"), w(700, 800, "b")}, []span{{0, 5000}}, 0,
			[][2]int64{{0, 800}}, []string{"a b"}},
		{"long segment splits", []transcribe.Word{w(0, 7000, "a"), w(7100, 14000, "b"), w(14100, 16000, "c")}, []span{{0, 30000}}, 0,
			[][2]int64{{0, 14000}, {14100, 16000}}, []string{"a b", "c"}},
		{"blank words dropped", []transcribe.Word{w(0, 100, " "), w(200, 300, " x ")}, []span{{0, 1000}}, 0,
			[][2]int64{{200, 300}}, []string{"x"}},
		{"negative and inverted times clamped", []transcribe.Word{w(-50, 100, "a"), w(300, 200, "b")}, []span{{0, 1000}}, 10,
			[][2]int64{{10, 310}}, []string{"a b"}},
		{"words without a chunk (whole-recording engine)", []transcribe.Word{w(100, 200, "a"), w(5000, 5100, "b")}, nil, 0,
			[][2]int64{{100, 200}, {5000, 5100}}, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			segs := segments(tt.words, tt.spans, tt.offset)
			var got [][2]int64
			var texts []string
			for _, s := range segs {
				got = append(got, [2]int64{s.StartMS, s.EndMS})
				texts = append(texts, s.Text)
			}
			if !slices.Equal(got, tt.want) || !slices.Equal(texts, tt.texts) {
				t.Errorf("segments = %v %q, want %v %q", got, texts, tt.want, tt.texts)
			}
		})
	}
}

// TestSessionTranscriptMergesSpeakers records two participants of one
// session whose recordings start at different points of the session
// clock (Bob first at 0 s, Alice at 8 s), transcribes both and merges the
// stored transcripts: segments in time order, each with its speaker.
func TestSessionTranscriptMergesSpeakers(t *testing.T) {
	en := offlineEngine(t)
	e := newEnv(t, envOptions{})
	q := e.queue(t, testQueueConfig(30*time.Second, 3))
	startWorker(t, NewWorker(q, e.transcriber(en), WorkerConfig{Workers: 2, PollWait: 500 * time.Millisecond, Log: testLog()}))
	// Alice's recording is written (and enqueued) first but starts later.
	alice := e.record(t, recSpec{session: "call-42", participant: "alice", name: "Alice", file: testdata("call01.ogg"), startOffsetMS: 8000})
	bob := e.record(t, recSpec{session: "call-42", participant: "bob", name: "", file: testdata("call02.ogg"), startOffsetMS: 0})
	for _, r := range []meta.Recording{alice, bob} {
		if _, err := q.Enqueue(context.Background(), r, SourceCompleted, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	e.waitStatus(t, alice.ID, meta.TranscriptCompleted, 2*time.Minute)
	e.waitStatus(t, bob.ID, meta.TranscriptCompleted, 2*time.Minute)

	var ts []transcribe.Transcript
	for _, r := range []meta.Recording{alice, bob} {
		tr, _ := e.storedTranscript(t, r.ID, ObjectTranscript)
		ts = append(ts, tr)
	}
	if ts[1].Speaker != "bob" {
		t.Errorf("speaker without a display name = %q, want the participant id", ts[1].Speaker)
	}
	m := render.Merge("call-42", ts)
	if len(m.Segments) < 2 {
		t.Fatalf("%d merged segments", len(m.Segments))
	}
	var order []string
	for i, s := range m.Segments {
		if i > 0 && s.StartMS < m.Segments[i-1].StartMS {
			t.Fatalf("segment %d starts at %d before the previous at %d", i, s.StartMS, m.Segments[i-1].StartMS)
		}
		want := "bob"
		if s.StartMS >= 8000 {
			want = "Alice"
		}
		if s.Speaker != want {
			t.Errorf("segment at %d ms is labelled %q, want %q", s.StartMS, s.Speaker, want)
		}
		if len(order) == 0 || order[len(order)-1] != s.Speaker {
			order = append(order, s.Speaker)
		}
	}
	if !slices.Equal(order, []string{"bob", "Alice"}) {
		t.Errorf("speaker order %v, want [bob Alice]", order)
	}
	var txt bytes.Buffer
	if err := render.Text(&txt, m.Segments, 0); err != nil {
		t.Fatal(err)
	}
	if i, j := strings.Index(txt.String(), "bob"), strings.Index(txt.String(), "Alice"); i < 0 || j < i {
		t.Errorf("text rendering does not list bob before Alice:\n%s", txt.String())
	}
	t.Logf("merged:\n%s", txt.String())
}

// TestParallelChunksKeepOrder: transcribing a recording's chunks side by
// side gives exactly the words of one chunk at a time.
func TestParallelChunksKeepOrder(t *testing.T) {
	en := offlineEngine(t) // two decoders
	e := newEnv(t, envOptions{})
	rec := e.record(t, recSpec{file: testdata("calls-long.ogg"), name: "A"})
	ctx := context.Background()
	seq := e.transcriber(en)
	par := e.transcriber(en)
	par.Parallel = 3
	a, _, err := seq.Transcribe(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	b, st, err := par.Transcribe(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	wa, wb := words(a), words(b)
	if len(wa) == 0 || !slices.Equal(wa, wb) || st.Chunks != 6 {
		t.Errorf("parallel: %d words in %d chunks, sequential %d words; want the same words", len(wb), st.Chunks, len(wa))
	}
}
