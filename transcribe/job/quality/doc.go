// Package quality measures the transcription pipeline end to end and
// holds no production code: WAV → Opus → WHIP publisher (recorder/whip) →
// the recorder of a real in-process gateway → sealed Ogg recording →
// recording.completed → transcription job → offline engine → stored
// transcript, compared with the engine run on the original WAV.
//
// Where it sits in the data flow: around all of it, from the publisher's
// microphone to the transcript object; the tests run inside a network
// namespace whose only interface is loopback (internal/netns), as every
// WebRTC test does.
package quality
