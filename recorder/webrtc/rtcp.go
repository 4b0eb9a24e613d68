package webrtc

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// RTCPReader is what ReadRTCP needs: *webrtc.RTPReceiver and
// *webrtc.TrackRemote satisfy it.
type RTCPReader interface {
	ReadRTCP() ([]rtcp.Packet, interceptor.Attributes, error)
}

// SenderReport is an RTCP sender report as the session clock needs it.
type SenderReport struct {
	SSRC uint32
	// NTPTime is the sender's wall clock at RTPTime.
	NTPTime time.Time
	RTPTime uint32
	// PacketCount and OctetCount are the sender's totals for the stream.
	PacketCount, OctetCount uint32
	// Arrival is when ReadRTCP returned the report (local clock).
	Arrival time.Time
}

// NTPToTime converts a 64-bit NTP timestamp (RFC 3550 section 4) to time.
func NTPToTime(ntp uint64) time.Time {
	const ntpEpochOffset = 2208988800 // seconds from 1900 to 1970
	secs := int64(ntp>>32) - ntpEpochOffset
	frac := ntp & 0xffffffff
	nanos := int64((frac * uint64(time.Second)) >> 32)
	return time.Unix(secs, nanos)
}

// ReadRTCP reads RTCP from r until it fails (io.EOF when the receiver
// closes, which ReadRTCP returns as nil) and calls onSR, when not nil, for
// every sender report. The recorder must run it for every RTPReceiver: pion
// passes incoming RTCP through the interceptors (receiver reports need the
// sender reports' LSR) only when the application reads it, and an unread
// RTCP buffer fills up. It runs on the caller's goroutine.
func ReadRTCP(r RTCPReader, onSR func(SenderReport)) error {
	for {
		pkts, _, err := r.ReadRTCP()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
				return nil
			}
			return fmt.Errorf("webrtc: read rtcp: %w", err)
		}
		if onSR == nil {
			continue
		}
		now := time.Now()
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				onSR(SenderReport{
					SSRC:        sr.SSRC,
					NTPTime:     NTPToTime(sr.NTPTime),
					RTPTime:     sr.RTPTime,
					PacketCount: sr.PacketCount,
					OctetCount:  sr.OctetCount,
					Arrival:     now,
				})
			}
		}
	}
}

// RTCPWriter is what KeyframeRequester needs: *webrtc.PeerConnection
// satisfies it.
type RTCPWriter interface {
	WriteRTCP(pkts []rtcp.Packet) error
}

// DefaultPLIInterval is the least time between two keyframe requests for one
// stream: a keyframe takes a round trip and some encoder time to arrive, and
// asking again sooner only makes the publisher send more large frames.
const DefaultPLIInterval = 500 * time.Millisecond

// KeyframeRequester sends RTCP Picture Loss Indications for one video stream,
// at most one per interval. It is safe for concurrent use.
type KeyframeRequester struct {
	w        RTCPWriter
	ssrc     uint32
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	last time.Time
	sent int
}

// NewKeyframeRequester returns a requester for the stream mediaSSRC. An
// interval of 0 means DefaultPLIInterval.
func NewKeyframeRequester(w RTCPWriter, mediaSSRC uint32, interval time.Duration) *KeyframeRequester {
	if interval <= 0 {
		interval = DefaultPLIInterval
	}
	return &KeyframeRequester{w: w, ssrc: mediaSSRC, interval: interval, now: time.Now}
}

// Request sends a PLI unless one was sent less than the interval ago. It
// reports whether it sent one; a write error is returned (and does not count
// as sent, so the next call may try again).
func (k *KeyframeRequester) Request() (bool, error) {
	k.mu.Lock()
	now := k.now()
	if k.sent > 0 && now.Sub(k.last) < k.interval {
		k.mu.Unlock()
		return false, nil
	}
	k.last = now
	k.sent++
	k.mu.Unlock()
	err := k.w.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: k.ssrc}})
	if err != nil {
		k.mu.Lock()
		k.sent--
		k.last = time.Time{}
		k.mu.Unlock()
		return false, fmt.Errorf("webrtc: send pli for ssrc %d: %w", k.ssrc, err)
	}
	return true, nil
}

// Sent is the number of PLIs sent, for the completeness report.
func (k *KeyframeRequester) Sent() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.sent
}
