package ogg

import (
	"errors"
	"fmt"
	"io"
)

// OpusReader demuxes an Ogg/Opus file (a recording): it reads the
// identification and comment headers of the first logical stream and then
// returns its audio packets in order. Packets of other logical streams are
// skipped.
type OpusReader struct {
	r      *Reader
	serial uint32
	// Head is the stream's identification header; Tags its comment
	// header packet (raw).
	Head Head
	Tags []byte
	pos  int64
}

// NewOpusReader reads the headers from r. It fails with ErrNotOpusHead if
// the first packet is not an OpusHead.
func NewOpusReader(r io.Reader) (*OpusReader, error) {
	or := &OpusReader{r: NewReader(r, 0)}
	p, err := or.r.NextPacket()
	if err != nil {
		return nil, fmt.Errorf("ogg: read OpusHead: %w", err)
	}
	if or.Head, err = ParseOpusHead(p.Data); err != nil {
		return nil, err
	}
	or.serial = p.Serial
	for {
		p, err = or.r.NextPacket()
		if err != nil {
			return nil, fmt.Errorf("ogg: read OpusTags: %w", err)
		}
		if p.Serial == or.serial {
			break
		}
	}
	if len(p.Data) < 8 || string(p.Data[:8]) != "OpusTags" {
		return nil, errors.New("ogg: second packet is not OpusTags")
	}
	or.Tags = append([]byte(nil), p.Data...)
	return or, nil
}

// Next returns the next Opus packet (valid until the next call) and the
// position, in 48 kHz samples from the stream's start, of its first
// sample. It returns io.EOF at the end of the stream.
func (or *OpusReader) Next() (packet []byte, pos int64, err error) {
	for {
		p, err := or.r.NextPacket()
		if err != nil {
			return nil, 0, err
		}
		if p.Serial != or.serial {
			continue
		}
		n, err := PacketSamples(p.Data)
		if err != nil {
			return nil, 0, fmt.Errorf("ogg: packet at sample %d: %w", or.pos, err)
		}
		pos = or.pos
		or.pos += int64(n)
		return p.Data, pos, nil
	}
}
