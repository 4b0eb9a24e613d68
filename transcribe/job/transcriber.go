package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/storage/meta"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/audio"
	"github.com/custodian/custodian/transcribe/awstranscribe"
)

// Object names of a recording's transcripts (sealed under the recording's
// data key with storage.PutObject).
const (
	// ObjectTranscript holds the transcript JSON (SPEC section 10),
	// redacted when the recording's policy says redact_pii.
	ObjectTranscript = "transcript"
	// ObjectUnredacted holds the unredacted transcript JSON, written only
	// when the policy redacts and also keeps an unredacted copy. Reading
	// it needs its own permission.
	ObjectUnredacted = "transcript-unredacted"
)

// ObjectStore is what jobs need from storage.Store.
type ObjectStore interface {
	Open(ctx context.Context, tenant, recordingID string, opts storage.ReadOptions) (*storage.Reader, error)
	PutObject(ctx context.Context, tenant, recordingID, name string, plaintext []byte, opts storage.PutOptions) (storage.ObjectInfo, error)
}

var _ ObjectStore = (*storage.Store)(nil)

// Segmentation of the words of a chunk into transcript segments: a new
// segment starts at every chunk (cut at a pause by transcribe/audio), at a
// pause between words of at least segmentGapMS, and before a word that
// would make the segment longer than maxSegmentMS.
const (
	segmentGapMS = 700
	maxSegmentMS = 15000
)

// Transcriber turns one recording into a transcript in memory: decrypt,
// demux, decode, engine, session clock. It stores nothing.
type Transcriber struct {
	DB     *gorm.DB
	Store  ObjectStore
	Engine transcribe.Engine
	// Language is written into transcripts ("en-US" for the offline
	// engine, the configured language for the others; may be empty).
	Language string
	// Audio tunes decoding and chunking (MaxChunk from
	// transcription.chunk_seconds).
	Audio audio.Options
	Log   *slog.Logger
	// Parallel is how many chunks of one recording may be with the engine
	// at once (default 1). With more than one, a long call is transcribed
	// by several of the engine's decoders (or requests) side by side;
	// memory grows by one chunk per extra slot. The gateway sets it to
	// transcription.workers, the size of the offline engine's decoder
	// pool.
	Parallel int
}

// Stats describe one transcription.
type Stats struct {
	Chunks   int
	SpeechMS int64 // audio handed to the engine
	AudioMS  int64 // the recording's timeline (its DurationMS, or the last chunk's end)
	NoAudio  bool  // the container has no audio track
}

// Transcribe transcribes rec. The result has the recording's ids, the
// speaker (the participant's display name, else its id), the engine and
// language, and segments with word times on the session clock. It is not
// redacted. Silence, zero-length audio and containers without an audio
// track give a transcript without segments and no error.
func (t *Transcriber) Transcribe(ctx context.Context, rec meta.Recording) (transcribe.Transcript, Stats, error) {
	tr := transcribe.Transcript{
		RecordingID:   rec.ID,
		SessionID:     rec.SessionID,
		ParticipantID: rec.ParticipantID,
		Speaker:       t.speaker(ctx, rec),
		Engine:        t.Engine.Name(),
		Language:      t.Language,
		Segments:      []transcribe.Segment{},
		Redactions:    []transcribe.Redaction{},
	}
	var st Stats
	r, err := t.Store.Open(ctx, rec.TenantID, rec.ID, storage.ReadOptions{AllowIncomplete: rec.Status == meta.StatusRecovered})
	if err != nil {
		return tr, st, err
	}
	defer r.Close()

	// The plaintext flows through a pipe: parts are decrypted into it one
	// at a time and the decoder reads it as a stream.
	streamCtx, stopStream := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	var streamErr error
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		_, streamErr = r.Stream(streamCtx, pw)
		pw.CloseWithError(streamErr) // nil: EOF for the reader
	}()
	stop := sync.OnceValue(func() error {
		stopStream()
		pr.Close()
		<-streamDone
		return streamErr
	})
	defer stop()

	chunks := audio.Chunks(ctx, pr, rec.ContentType, t.Audio)
	var spans []span
	counted := func(yield func(transcribe.Audio, error) bool) {
		for a, err := range chunks {
			if err == nil {
				n := int64(len(a.Samples)) * 1000 / transcribe.SampleRate
				spans = append(spans, span{a.OffsetMS, a.OffsetMS + n})
				st.Chunks++
				st.SpeechMS += n
			}
			if !yield(a, err) {
				return
			}
		}
	}
	var words []transcribe.Word
	if rt, ok := t.Engine.(awstranscribe.RecordingTranscriber); ok {
		words, err = t.wholeRecording(ctx, rt, rec, counted)
	} else {
		words, err = t.perChunk(ctx, counted)
	}
	if errors.Is(err, audio.ErrNoAudio) {
		st.NoAudio, err = true, nil
	}
	if err != nil {
		// A failure to read the recording reaches the decoder as a read
		// error; report the storage error itself.
		var ee *EngineError
		if !errors.As(err, &ee) && ctx.Err() == nil {
			if serr := stop(); serr != nil && !errors.Is(serr, context.Canceled) && !errors.Is(serr, io.ErrClosedPipe) {
				return tr, st, fmt.Errorf("job: read recording %s: %w", rec.ID, serr)
			}
		}
		return tr, st, err
	}
	st.AudioMS = rec.DurationMS
	if n := len(spans); n > 0 {
		st.AudioMS = max(st.AudioMS, spans[n-1].end)
	}
	tr.Segments = segments(words, spans, rec.StartOffsetMS)
	return tr, st, nil
}

// span is a chunk's time range on the recording's timeline, ms.
type span struct{ start, end int64 }

// perChunk calls the engine once per chunk, up to Parallel chunks at a
// time, and shifts word times from each chunk's start to the
// recording's. Words come out in chunk order.
func (t *Transcriber) perChunk(ctx context.Context, chunks iter.Seq2[transcribe.Audio, error]) ([]transcribe.Word, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	slots := make(chan struct{}, max(t.Parallel, 1))
	var (
		wg      sync.WaitGroup
		results [][]transcribe.Word
		mu      sync.Mutex
	)
	fail := func(err error) {
		if ctx.Err() == nil {
			cancel(err)
		}
	}
	var audioErr error
	for a, err := range chunks {
		if err != nil {
			audioErr = err
			break
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		mu.Lock()
		i := len(results)
		results = append(results, nil)
		mu.Unlock()
		wg.Go(func() {
			defer func() { <-slots }()
			ws, err := t.Engine.Transcribe(ctx, a)
			if err != nil {
				if ctx.Err() == nil {
					fail(&EngineError{Engine: t.Engine.Name(), Err: err})
				}
				return
			}
			for k := range ws {
				ws[k].StartMS += a.OffsetMS
				ws[k].EndMS += a.OffsetMS
			}
			mu.Lock()
			results[i] = ws
			mu.Unlock()
		})
	}
	wg.Wait()
	if audioErr != nil {
		return nil, audioErr
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	var out []transcribe.Word
	for _, ws := range results {
		out = append(out, ws...)
	}
	return out, nil
}

// wholeRecording hands all chunks to an engine that transcribes a whole
// recording in one request; its word times are already from the
// recording's start.
func (t *Transcriber) wholeRecording(ctx context.Context, rt awstranscribe.RecordingTranscriber, rec meta.Recording, chunks iter.Seq2[transcribe.Audio, error]) ([]transcribe.Word, error) {
	var audioErr error
	checked := func(yield func(transcribe.Audio, error) bool) {
		for a, err := range chunks {
			if err != nil {
				audioErr = err
			}
			if !yield(a, err) {
				return
			}
		}
	}
	dur := rec.DurationMS
	if dur <= 0 {
		// Unknown duration (recovered recording): the engine needs an
		// upper bound of the timeline; audio past it is dropped.
		dur = int64(24 * time.Hour / time.Millisecond)
	}
	ws, err := rt.TranscribeRecording(ctx, dur, checked)
	if audioErr != nil {
		return nil, audioErr
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &EngineError{Engine: t.Engine.Name(), Err: err}
	}
	return ws, nil
}

// segments groups words (times on the recording's timeline, in order)
// into segments and moves every time onto the session clock by adding
// offsetMS (the recording's StartOffsetMS).
func segments(words []transcribe.Word, spans []span, offsetMS int64) []transcribe.Segment {
	out := []transcribe.Segment{}
	chunkOf := func(ms int64, from int) int {
		for i := from; i < len(spans); i++ {
			if ms < spans[i].end {
				return i
			}
		}
		return len(spans)
	}
	var cur *transcribe.Segment
	chunk := 0
	for _, w := range words {
		w.Word = strings.TrimSpace(w.Word)
		if w.Word == "" {
			continue
		}
		w.StartMS = max(w.StartMS, 0)
		w.EndMS = max(w.EndMS, w.StartMS)
		c := chunkOf(w.StartMS, chunk)
		w.StartMS += offsetMS
		w.EndMS += offsetMS
		if cur != nil && (c != chunk || w.StartMS-cur.EndMS >= segmentGapMS || w.EndMS-cur.StartMS > maxSegmentMS) {
			cur = nil
		}
		chunk = c
		if cur == nil {
			out = append(out, transcribe.Segment{StartMS: w.StartMS, EndMS: w.EndMS})
			cur = &out[len(out)-1]
		}
		cur.Words = append(cur.Words, w)
		cur.EndMS = max(cur.EndMS, w.EndMS)
	}
	for i := range out {
		s := &out[i]
		texts := make([]string, len(s.Words))
		for j, w := range s.Words {
			texts[j] = w.Word
		}
		s.Text = strings.Join(texts, " ")
	}
	return out
}

// speaker is the participant's display name, else its id.
func (t *Transcriber) speaker(ctx context.Context, rec meta.Recording) string {
	var ps []meta.Participant
	err := t.DB.WithContext(ctx).Select("name").
		Where("tenant_id = ? AND session_id = ? AND id = ?", rec.TenantID, rec.SessionID, rec.ParticipantID).
		Limit(1).Find(&ps).Error
	if err == nil && len(ps) == 1 && strings.TrimSpace(ps[0].Name) != "" {
		return strings.TrimSpace(ps[0].Name)
	}
	return rec.ParticipantID
}
