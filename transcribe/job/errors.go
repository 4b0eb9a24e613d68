package job

import (
	"errors"

	"github.com/custodian/custodian/storage"
	"github.com/custodian/custodian/transcribe"
	"github.com/custodian/custodian/transcribe/audio"
	"github.com/custodian/custodian/transcribe/awstranscribe"
	"github.com/custodian/custodian/transcribe/openai"
)

// Failure reasons: the fixed tokens in transcript.failed events
// (TranscriptData.Reason) and the failed-jobs metric. The transcript row's
// FailureReason holds the full error text.
const (
	ReasonEngineUnavailable   = "engine_unavailable"    // the engine cannot run here (no cgo, no model)
	ReasonEngineError         = "engine_error"          // the engine failed (unreachable, 5xx, timeouts) on every attempt
	ReasonEngineRejected      = "engine_rejected"       // the engine refused the request (4xx, failed job)
	ReasonEngineBadAnswer     = "engine_bad_answer"     // the engine's answer does not parse
	ReasonRecordingCorrupt    = "recording_corrupt"     // the container or an Opus packet is malformed or truncated
	ReasonRecordingFormat     = "recording_unsupported" // a codec or layout the decoder does not handle
	ReasonRecordingIntegrity  = "recording_integrity"   // the stored recording fails verification
	ReasonRecordingMissing    = "recording_missing"     // objects not found on every attempt
	ReasonRecordingDeleted    = "recording_deleted"     // deleted (key shredded) before it was transcribed
	ReasonRecordingIncomplete = "recording_incomplete"  // not complete or recovered
	ReasonStorage             = "storage_error"         // the transcript could not be stored
	ReasonWorkerLost          = "worker_lost"           // attempts did not finish (worker died or ack wait exceeded)
	ReasonInternal            = "internal"              // anything else
)

// EngineError is an error returned by the engine, with the engine's name.
type EngineError struct {
	Engine string
	Err    error
}

func (e *EngineError) Error() string { return "engine " + e.Engine + ": " + e.Err.Error() }

func (e *EngineError) Unwrap() error { return e.Err }

// errInterrupted marks an attempt stopped because the worker is stopping;
// the job goes back to the queue without counting the attempt.
var errInterrupted = errors.New("job: interrupted by shutdown")

// errLeaseLost: another worker took the recording over (this one stalled).
var errLeaseLost = errors.New("job: lost the recording's lease to another worker")

// Classify returns the failure reason token of an attempt's error and
// whether another attempt may succeed.
func Classify(err error) (reason string, retryable bool) {
	var ee *EngineError
	isEngine := errors.As(err, &ee)
	switch {
	case err == nil:
		return "", false
	case errors.Is(err, storage.ErrKeyDestroyed):
		return ReasonRecordingDeleted, false
	case errors.As(err, new(*storeError)):
		return ReasonStorage, true
	case storage.IsIntegrity(err):
		return ReasonRecordingIntegrity, false
	case errors.Is(err, storage.ErrIncomplete):
		return ReasonRecordingIncomplete, false
	case !isEngine && storage.IsNotFound(err):
		// Parts may still be in the writing instance's spool.
		return ReasonRecordingMissing, true
	case errors.Is(err, audio.ErrCorrupt), errors.Is(err, audio.ErrTruncated):
		return ReasonRecordingCorrupt, false
	case errors.Is(err, audio.ErrUnsupported):
		return ReasonRecordingFormat, false
	case errors.Is(err, transcribe.ErrEngineUnavailable):
		// Another worker may have the engine.
		return ReasonEngineUnavailable, true
	case errors.Is(err, openai.ErrBadResponse), errors.Is(err, awstranscribe.ErrBadOutput):
		return ReasonEngineBadAnswer, false
	case isEngine:
		switch ee.Engine {
		case openai.Name:
			return engineReason(openai.IsRetryable(err))
		case awstranscribe.Name:
			return engineReason(awstranscribe.IsRetryable(err))
		}
		return ReasonEngineError, true
	}
	return ReasonInternal, true
}

func engineReason(retry bool) (string, bool) {
	if retry {
		return ReasonEngineError, true
	}
	return ReasonEngineRejected, false
}
