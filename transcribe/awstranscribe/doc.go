// Package awstranscribe is the Amazon Transcribe engine (batch API,
// github.com/aws/aws-sdk-go-v2/service/transcribe).
//
// In the transcription data flow it sits where transcribe/sphinx does:
// after the audio path (decode, 16 kHz resample) and before redaction. A
// batch job reads its media from S3, so for every job the engine
//
//  1. writes the audio as a 16 kHz mono WAV, built in memory part by part,
//     to the staging bucket with SSE-KMS (transcription.aws.staging_bucket,
//     staging_kms_key);
//  2. starts a transcription job whose output goes to the same bucket,
//     encrypted with the same key;
//  3. polls GetTranscriptionJob every poll_interval until the job
//     completes, fails or transcription.aws.timeout passes;
//  4. reads and parses the output JSON (items with start_time, end_time
//     and alternatives; punctuation items attach to the preceding word);
//  5. deletes the job, the staged audio and the output, whatever happened.
//
// A job costs tens of seconds of fixed overhead, so besides the per-chunk
// transcribe.Engine method the Engine offers TranscribeRecording (the
// RecordingTranscriber capability): a whole recording in one job, streamed
// to S3 in parts so memory stays bounded for hour-long calls.
package awstranscribe
