// Package job runs transcription jobs: it turns finished recordings into
// stored, redacted, encrypted transcripts exactly once each.
//
// Where it sits in the data flow:
//
//	recorder: recording row → complete, recording.completed in the outbox (one transaction)
//	  → events relay → CUSTODIAN_EVENTS
//	  → [Dispatcher: durable consumer of recording.completed / recording.recovered]
//	  → pending meta.Transcript row + job message on the work-queue stream CUSTODIAN_JOBS
//	  → [Worker: claim, decrypt in memory (storage), decode (transcribe/audio),
//	     engine per chunk, session clock, redact (transcribe/redact)]
//	  → sealed objects "transcript" (and "transcript-unredacted")
//	  → meta.Transcript completed + transcript.completed, one transaction
//
// A Sweeper backs the dispatcher up: it finds complete recordings that
// should be transcribed but have no job (the event arrived while
// transcription was disabled, the consumer did not exist yet, a job
// message was lost) and enqueues them.
//
// Delivery is at least once; the work is idempotent by recording id. The
// meta.Transcript row (primary key recording id) moves pending → running →
// completed or failed, a per-recording lease in the database (meta.Lease
// "transcribe/{recording_id}") lets one worker at a time work on a
// recording, and the result is committed only while the lease is held, so
// a redelivered or duplicated job never makes a second transcript.
// Attempts are counted in the row: a failing attempt is retried with
// exponential backoff (NakWithDelay) until Config.MaxDeliver attempts have
// failed, then the row becomes failed with the reason and transcript.failed
// is emitted. A worker that dies mid-job stops sending in-progress
// heartbeats; JetStream redelivers the job after the ack wait.
//
// Nothing decoded touches the disk: the recording is decrypted part by part
// into a pipe, demuxed and decoded as a stream, and only the chunk being
// transcribed (at most transcription.chunk_seconds of 16 kHz PCM) and the
// words so far are held in memory. See docs/transcription-jobs.md.
package job
