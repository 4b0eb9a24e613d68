package whip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	pion "github.com/pion/webrtc/v4"

	"github.com/custodian/custodian/recorder/ogg"
)

// Frame is one encoded frame: an Opus packet or a VP8 frame.
type Frame struct {
	Data []byte
	// Duration is the frame's length in media time.
	Duration time.Duration
	// RTPDuration is Duration in RTP clock ticks.
	RTPDuration uint32
	// Keyframe marks VP8 keyframes (always false for audio).
	Keyframe bool
	// Packets is how many RTP packets the frame becomes.
	Packets int
}

// Media is a file's frames, loaded into memory, ready to be sent in a loop
// by any number of publishers. It is read-only after loading.
type Media struct {
	Kind      string // "audio" or "video"
	MimeType  string // pion.MimeTypeOpus or pion.MimeTypeVP8
	ClockRate uint32
	Channels  uint16
	Frames    []Frame
	// Length is the sum of the frame durations: one pass of the loop.
	Length time.Duration
	// Path is the file the media came from.
	Path string
}

// ErrEmptyMedia is returned for a file that holds no frames.
var ErrEmptyMedia = errors.New("whip: media file has no frames")

// maxRTPPayload is the largest RTP payload the publisher sends: 1,200 bytes
// keeps packets under common path MTUs after SRTP and IP headers.
const maxRTPPayload = 1200

// maxMediaBytes bounds the size of a media file loaded into memory.
const maxMediaBytes = 256 << 20

// OpenOpus loads an Ogg Opus file (one logical stream). Every Opus packet
// becomes one RTP packet; durations come from the packets' TOC bytes.
func OpenOpus(path string) (*Media, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("whip: open opus: %w", err)
	}
	defer f.Close()
	m, err := ReadOpus(io.LimitReader(f, maxMediaBytes))
	if err != nil {
		return nil, fmt.Errorf("whip: %s: %w", path, err)
	}
	m.Path = path
	return m, nil
}

// ReadOpus reads Ogg Opus from r; see OpenOpus.
func ReadOpus(r io.Reader) (*Media, error) {
	rd := ogg.NewReader(r, 0)
	m := &Media{Kind: "audio", MimeType: pion.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	var serial uint32
	n := 0
	for {
		p, err := rd.NextPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read ogg: %w", err)
		}
		switch {
		case n == 0:
			if _, err := ogg.ParseOpusHead(p.Data); err != nil {
				return nil, fmt.Errorf("first packet: %w", err)
			}
			serial = p.Serial
		case p.Serial != serial:
			// A second logical stream (chained or multiplexed): ignore it.
		case n == 1:
			// OpusTags.
		default:
			samples, err := ogg.PacketSamples(p.Data)
			if err != nil {
				return nil, fmt.Errorf("packet %d: %w", n, err)
			}
			d := time.Duration(samples) * time.Second / 48000
			m.Frames = append(m.Frames, Frame{
				Data: append([]byte(nil), p.Data...), Duration: d,
				RTPDuration: uint32(samples), Packets: 1,
			})
			m.Length += d
		}
		if p.Serial == serial {
			n++
		}
	}
	if len(m.Frames) == 0 {
		return nil, ErrEmptyMedia
	}
	return m, nil
}

// ErrNotVP8 is returned by OpenIVF for an IVF file of another codec.
var ErrNotVP8 = errors.New("whip: IVF file is not VP8")

// OpenIVF loads a VP8 IVF file. Frame durations come from the IVF
// timestamps and time base (the last frame gets the average duration), so
// the video is sent at its own frame rate.
func OpenIVF(path string) (*Media, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("whip: open ivf: %w", err)
	}
	defer f.Close()
	m, err := ReadIVF(io.LimitReader(f, maxMediaBytes))
	if err != nil {
		return nil, fmt.Errorf("whip: %s: %w", path, err)
	}
	m.Path = path
	return m, nil
}

// ReadIVF reads VP8 IVF from r; see OpenIVF.
func ReadIVF(r io.Reader) (*Media, error) {
	var hdr [32]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read ivf header: %w", err)
	}
	if string(hdr[0:4]) != "DKIF" {
		return nil, fmt.Errorf("read ivf header: signature %q, want DKIF", hdr[0:4])
	}
	if fourcc := string(hdr[8:12]); fourcc != "VP80" {
		return nil, fmt.Errorf("%w: fourcc %q", ErrNotVP8, fourcc)
	}
	// Time base: a timestamp unit is scale/rate seconds.
	rate, scale := binary.LittleEndian.Uint32(hdr[16:20]), binary.LittleEndian.Uint32(hdr[20:24])
	if rate == 0 || scale == 0 {
		return nil, fmt.Errorf("read ivf header: time base %d/%d", scale, rate)
	}
	if hl := binary.LittleEndian.Uint16(hdr[6:8]); hl > 32 {
		if _, err := io.CopyN(io.Discard, r, int64(hl)-32); err != nil {
			return nil, fmt.Errorf("read ivf header: %w", err)
		}
	}
	m := &Media{Kind: "video", MimeType: pion.MimeTypeVP8, ClockRate: 90000}
	var stamps []uint64
	for {
		var fh [12]byte
		if _, err := io.ReadFull(r, fh[:]); err != nil {
			if errors.Is(err, io.EOF) || (errors.Is(err, io.ErrUnexpectedEOF) && len(m.Frames) > 0) {
				break // clean end, or a truncated last frame header
			}
			return nil, fmt.Errorf("read ivf frame %d: %w", len(m.Frames), err)
		}
		size := binary.LittleEndian.Uint32(fh[0:4])
		if size > maxIVFFrame {
			return nil, fmt.Errorf("read ivf frame %d: %d bytes, limit %d", len(m.Frames), size, maxIVFFrame)
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			if len(m.Frames) > 0 && errors.Is(err, io.ErrUnexpectedEOF) {
				break // a truncated last frame: keep what is whole
			}
			return nil, fmt.Errorf("read ivf frame %d: %w", len(m.Frames), err)
		}
		if size == 0 {
			continue
		}
		m.Frames = append(m.Frames, Frame{
			Data:     data,
			Keyframe: data[0]&0x01 == 0, // VP8 frame tag: P bit 0 = keyframe
			Packets:  vp8Packets(len(data)),
		})
		stamps = append(stamps, binary.LittleEndian.Uint64(fh[4:12]))
	}
	if len(m.Frames) == 0 {
		return nil, ErrEmptyMedia
	}
	// Durations in 90 kHz ticks, exact for common frame rates.
	ticks := func(units uint64) uint64 { return units * 90000 * uint64(scale) / uint64(rate) }
	avg := uint64(3000) // 30 fps when the file does not tell
	if n := len(stamps); n > 1 && stamps[n-1] > stamps[0] {
		avg = ticks(stamps[n-1]-stamps[0]) / uint64(n-1)
	}
	var total uint64
	for i := range m.Frames {
		d := avg
		if i+1 < len(stamps) && stamps[i+1] > stamps[i] && ticks(stamps[i+1]-stamps[i]) < 10*90000 {
			d = ticks(stamps[i+1] - stamps[i])
		}
		m.Frames[i].RTPDuration = uint32(d)
		m.Frames[i].Duration = time.Duration(d) * time.Second / 90000
		total += d
	}
	m.Length = time.Duration(total) * time.Second / 90000
	return m, nil
}

// maxIVFFrame bounds one IVF frame.
const maxIVFFrame = 16 << 20

// vp8Packets is the number of RTP packets the VP8 payloader makes of a
// frame of n bytes.
func vp8Packets(n int) int {
	// Payload descriptor: 1 byte + X byte + 2-byte picture ID.
	const room = maxRTPPayload - 4
	return (n + room - 1) / room
}
