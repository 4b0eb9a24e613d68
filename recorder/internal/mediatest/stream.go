package mediatest

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/pion/rtp"
)

// Payloader is pion's codecs payloader interface.
type Payloader interface {
	Payload(mtu uint16, payload []byte) [][]byte
}

// Sent is one RTP packet with the time it arrives at the recorder.
type Sent struct {
	Packet  *rtp.Packet
	Arrival time.Duration // since the start of the simulation
	// Lost marks a packet the network dropped: it never arrives unless
	// retransmitted (Arrival is when it would have).
	Lost bool
}

// Frame is one media frame to send at a given sender time.
type Frame struct {
	Data []byte
	At   time.Duration // sender's capture time since its start
}

// Stream describes a simulated RTP stream.
type Stream struct {
	Payloader   Payloader
	ClockRate   uint32
	PayloadType uint8
	SSRC        uint32
	FirstSeq    uint16
	FirstTS     uint32
	MTU         uint16
	// Start is when the sender's time 0 arrives (network delay included).
	Start time.Duration
	// Loss drops this fraction of packets; Reorder delays this fraction
	// by up to 3 packet intervals; Jitter adds uniform random delay.
	Loss, Reorder float64
	Jitter        time.Duration
	Seed          uint64
	// NewSSRCAt switches to SSRC NewSSRC (with new random sequence and
	// timestamp bases) for frames at or after this sender time.
	NewSSRCAt time.Duration
	NewSSRC   uint32
}

// Packets packetizes frames into RTP packets and returns them in arrival
// order, with the number of packets dropped by simulated loss. Dropped
// packets are in the list too, marked Lost, so that a simulated sender
// can retransmit them.
func (s Stream) Packets(frames []Frame) (out []Sent, lost int) {
	rng := rand.New(rand.NewPCG(s.Seed, s.Seed^0x9e3779b97f4a7c15))
	mtu := s.MTU
	if mtu == 0 {
		mtu = 1200
	}
	seq, base, ssrc := s.FirstSeq, s.FirstTS, s.SSRC
	var offset time.Duration // sender time of the current SSRC's timestamp base
	switched := false
	for _, f := range frames {
		if s.NewSSRC != 0 && !switched && f.At >= s.NewSSRCAt {
			switched = true
			ssrc = s.NewSSRC
			seq = uint16(rng.Uint32())
			base = rng.Uint32()
			offset = f.At
		}
		ts := base + uint32(int64(f.At-offset)*int64(s.ClockRate)/int64(time.Second))
		payloads := s.Payloader.Payload(mtu-12, f.Data)
		for i, pl := range payloads {
			p := &rtp.Packet{
				Header: rtp.Header{
					Version:        2,
					Marker:         i == len(payloads)-1,
					PayloadType:    s.PayloadType,
					SequenceNumber: seq,
					Timestamp:      ts,
					SSRC:           ssrc,
				},
				Payload: pl,
			}
			seq++
			isLost := s.Loss > 0 && rng.Float64() < s.Loss
			if isLost {
				lost++
			}
			at := s.Start + f.At
			if s.Jitter > 0 {
				at += time.Duration(rng.Int64N(int64(s.Jitter)))
			}
			if s.Reorder > 0 && rng.Float64() < s.Reorder {
				at += time.Duration(rng.Int64N(int64(60 * time.Millisecond)))
			}
			out = append(out, Sent{Packet: p, Arrival: at, Lost: isLost})
		}
	}
	slices.SortStableFunc(out, func(a, b Sent) int {
		return int(a.Arrival - b.Arrival)
	})
	return out, lost
}

// Merge merges packet lists by arrival time.
func Merge(lists ...[]Sent) []Sent {
	var out []Sent
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.SortStableFunc(out, func(a, b Sent) int { return int(a.Arrival - b.Arrival) })
	return out
}

// Timed spaces frames evenly: frame i at i*interval, looping over frames
// until duration is covered.
func Timed(frames [][]byte, interval, duration time.Duration) []Frame {
	var out []Frame
	for i := 0; time.Duration(i)*interval < duration; i++ {
		out = append(out, Frame{Data: frames[i%len(frames)], At: time.Duration(i) * interval})
	}
	return out
}

// DropSpan removes frames in [from, to) of sender time, as a sender in DTX
// or a muted track would.
func DropSpan(frames []Frame, from, to time.Duration) []Frame {
	return slices.DeleteFunc(slices.Clone(frames), func(f Frame) bool { return f.At >= from && f.At < to })
}
