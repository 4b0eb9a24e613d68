// Package depacket turns ordered RTP packets of one track into media
// frames: one Opus packet per RTP packet, or one video frame (VP8, VP9,
// AV1 temporal unit, H.264 access unit) per RTP timestamp, ended by the
// marker bit.
//
// In the recorder's data flow it sits between the jitter buffer (which
// hands it packets in sequence order and says how many were lost before
// each) and the session clock and muxer. A video frame with a missing
// packet is discarded, and after any loss the depacketizer waits for the
// next keyframe (NeedKeyframe reports it, so the pipeline can send a
// throttled PLI): a recording never contains a frame decoded from a broken
// reference. Payload headers are parsed with github.com/pion/rtp/codecs
// where it does so without allocating; frame assembly, keyframe detection
// and the codec configuration records (avcC, av1C) are done here.
package depacket
