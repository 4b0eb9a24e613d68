package audio

import (
	"context"
	"errors"
	"io"

	"github.com/custodian/custodian/recorder/ogg"
)

// oggMaxPending bounds the packets held while waiting for the granule
// position that times them (a page may end no packet; a hostile stream may
// never give one). Past it, packets are decoded untimed.
const oggMaxPending = 512

// oggDemuxer reads the first Opus logical stream of an Ogg file with the
// recorder's page reader (CRC and sequence checked) and times each page's
// packets from its granule position (RFC 7845 section 4).
type oggDemuxer struct {
	p       *pipeline
	serial  uint32
	state   int   // 0: want OpusHead, 1: want OpusTags, 2: audio
	prevG   int64 // granule of the last timed page, -1 before the first
	pending []packet
	bufs    [][]byte // reusable packet copies
	eos     bool
}

func demuxOgg(ctx context.Context, r io.Reader, p *pipeline) error {
	rd := ogg.NewReader(r, 128<<10)
	d := &oggDemuxer{p: p, prevG: -1}
	err := d.run(rd)
	if err == nil || errors.Is(err, errStop) || ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return err
	}
	var fe *FormatError
	if errors.As(err, &fe) {
		fe.Container = "ogg"
		return fe
	}
	// The page reader buffers its input, so the byte offset is unknown;
	// the packet index says how far decoding got.
	return &FormatError{Container: "ogg", Offset: -1, Packet: p.packets, Err: err}
}

func classifyOgg(err error) error {
	if errors.Is(err, ogg.ErrTruncated) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &kindError{kind: ErrTruncated, cause: err}
	}
	return &kindError{kind: ErrCorrupt, cause: err}
}

func (d *oggDemuxer) run(rd *ogg.Reader) error {
	read := false
	for !d.eos {
		pk, err := rd.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			return classifyOgg(err)
		}
		read = true
		switch d.state {
		case 0:
			if !pk.BOS {
				return corruptf("stream does not start with a BOS page")
			}
			h, err := parseOpusHead(pk.Data)
			if err != nil {
				if errors.Is(err, ErrUnsupported) {
					return err
				}
				// Another codec's stream (a multiplexed file): keep
				// looking for an Opus one among the BOS pages.
				continue
			}
			d.serial, d.state = pk.Serial, 1
			if err := d.p.start(h); err != nil {
				return err
			}
		case 1:
			if pk.Serial != d.serial {
				continue
			}
			if len(pk.Data) < 8 || string(pk.Data[:8]) != "OpusTags" {
				return corruptf("second packet is not OpusTags")
			}
			d.state = 2
		default:
			if pk.Serial != d.serial {
				continue
			}
			if err := d.audio(pk); err != nil {
				return err
			}
		}
	}
	switch {
	case !read:
		return nil // zero-length recording
	case d.state == 0:
		return ErrNoAudio
	case d.state == 1:
		return truncatedf("stream ends before OpusTags")
	}
	// A missing end-of-stream page is not reported: the page reader
	// does not surface an EOS page that carries no packet, which is how
	// the recorder may end a stream. A recording cut inside a page or
	// packet is reported as truncated by the reader.
	return d.flush(-1, false)
}

// audio queues one audio packet; the packet that ends a page carries the
// page's granule position and times the queued ones.
func (d *oggDemuxer) audio(pk ogg.Packet) error {
	n := len(d.pending)
	if n == len(d.bufs) {
		d.bufs = append(d.bufs, nil)
	}
	d.bufs[n] = append(d.bufs[n][:0], pk.Data...)
	d.pending = append(d.pending, packet{data: d.bufs[n], pts48: -1})
	if pk.EOS && pk.Granule >= 0 {
		d.eos = true
	}
	switch {
	case pk.Granule >= 0:
		return d.flush(pk.Granule, pk.EOS)
	case len(d.pending) >= oggMaxPending:
		return d.flush(-1, false)
	}
	return nil
}

// flush decodes the queued packets. With granule g ≥ 0 they are timed so
// that the last ends at g; on the end-of-stream page, a granule short of
// the packets' length trims the end instead (RFC 7845 section 4.5).
func (d *oggDemuxer) flush(g int64, eos bool) error {
	if len(d.pending) == 0 {
		return nil
	}
	if g >= 0 {
		var sum int64
		for _, pk := range d.pending {
			if len(pk.data) == 0 {
				continue
			}
			n, err := packetSamples48(pk.data)
			if err != nil {
				return &FormatError{Container: "opus", Offset: -1, Packet: d.p.packets, Err: err}
			}
			sum += int64(n)
		}
		start := g - sum
		switch {
		case eos && d.prevG >= 0 && start < d.prevG:
			start = d.prevG
			d.pending[len(d.pending)-1].discard48 = d.prevG + sum - g
		case start < 0 && eos:
			// A stream shorter than its first page's packets.
			d.pending[len(d.pending)-1].discard48 = -start
			start = 0
		case start < 0:
			return corruptf("granule position %d is before the page's %d samples", g, sum)
		}
		d.pending[0].pts48 = start
		d.prevG = g
	}
	for _, pk := range d.pending {
		if err := d.p.packet(pk); err != nil {
			return err
		}
	}
	d.pending = d.pending[:0]
	return nil
}
