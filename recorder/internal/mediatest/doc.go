// Package mediatest loads the recorder's test media (real Opus packets and
// VP8, VP9, AV1 and H.264 frames made by testdata/make.sh) and packetizes
// them with pion's payloaders into RTP streams with simulated arrival
// times, loss, reordering, jitter, DTX, wrap-around and SSRC changes. It
// is used by the recorder's tests and benchmarks only.
package mediatest
