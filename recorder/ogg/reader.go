package ogg

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Reader errors. Every error from Reader wraps one of these or an I/O error.
var (
	// ErrBadCapture means the bytes at the reader's position are not an
	// Ogg page (no "OggS" capture pattern, or an unknown version).
	ErrBadCapture = errors.New("ogg: no page capture pattern")
	// ErrBadCRC means a page's checksum does not match its contents.
	ErrBadCRC = errors.New("ogg: page checksum mismatch")
	// ErrTruncated means the stream ended inside a page or packet.
	ErrTruncated = errors.New("ogg: truncated stream")
	// ErrBadStream means pages of a stream are inconsistent (a missing
	// page, a continuation without a packet to continue).
	ErrBadStream = errors.New("ogg: inconsistent stream")
)

// Page is one parsed Ogg page. Its slices are valid until the next call to
// the Reader.
type Page struct {
	Flags    byte
	Granule  int64
	Serial   uint32
	Sequence uint32
	Lacing   []byte
	Body     []byte
}

// Packet is one packet of a logical stream. Data is valid until the next
// call to the Reader.
type Packet struct {
	Data   []byte
	Serial uint32
	// Granule is the page's granule position when this packet is the last
	// one ending on its page, and -1 otherwise.
	Granule int64
	// BOS and EOS mark packets on the first and last page of their stream.
	BOS, EOS bool
}

// Reader reads the pages and packets of an Ogg stream. It verifies every
// page's CRC and page sequence. Packets are returned for every logical
// stream in page order; a packet larger than the limit is an error, so a
// hostile file cannot make the Reader hold more than limit bytes.
type Reader struct {
	r     *bufio.Reader
	limit int

	hdr  [headerLen + maxSegments]byte
	body []byte
	page Page

	// Packet assembly state.
	pkt      []byte
	pktOpen  bool   // pkt holds the beginning of a packet continued on the next page
	pktSer   uint32 // serial of the open packet
	segIdx   int    // next lacing value of page to consume
	havePage bool
	lastSeq  map[uint32]uint32
}

// NewReader returns a Reader over r. limit bounds a single packet's size;
// 0 means MaxPacket.
func NewReader(r io.Reader, limit int) *Reader {
	if limit <= 0 {
		limit = MaxPacket
	}
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), limit: limit, lastSeq: map[uint32]uint32{}}
}

// NextPage reads and verifies the next page. It returns io.EOF at a clean
// end of input.
func (r *Reader) NextPage() (*Page, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:headerLen]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("ogg: read page header: %w", ErrTruncated)
	}
	h := r.hdr[:headerLen]
	if string(h[:4]) != "OggS" || h[4] != 0 {
		return nil, ErrBadCapture
	}
	nseg := int(h[26])
	if _, err := io.ReadFull(r.r, r.hdr[headerLen:headerLen+nseg]); err != nil {
		return nil, fmt.Errorf("ogg: read lacing: %w", ErrTruncated)
	}
	lacing := r.hdr[headerLen : headerLen+nseg]
	size := 0
	for _, l := range lacing {
		size += int(l)
	}
	if cap(r.body) < size {
		r.body = make([]byte, size)
	}
	body := r.body[:size]
	if _, err := io.ReadFull(r.r, body); err != nil {
		return nil, fmt.Errorf("ogg: read page body: %w", ErrTruncated)
	}
	want := binary.LittleEndian.Uint32(h[22:])
	var zero [4]byte
	crc := crcUpdate(0, h[:22])
	crc = crcUpdate(crc, zero[:])
	crc = crcUpdate(crc, h[26:27])
	crc = crcUpdate(crc, lacing)
	crc = crcUpdate(crc, body)
	if crc != want {
		return nil, ErrBadCRC
	}
	r.page = Page{
		Flags:    h[5],
		Granule:  int64(binary.LittleEndian.Uint64(h[6:])),
		Serial:   binary.LittleEndian.Uint32(h[14:]),
		Sequence: binary.LittleEndian.Uint32(h[18:]),
		Lacing:   lacing,
		Body:     body,
	}
	return &r.page, nil
}

// NextPacket returns the next complete packet, or io.EOF at a clean end of
// input. A packet continued across pages must continue on the very next
// page of its stream.
func (r *Reader) NextPacket() (Packet, error) {
	for {
		if !r.havePage {
			p, err := r.NextPage()
			if err == io.EOF {
				if r.pktOpen {
					return Packet{}, fmt.Errorf("ogg: stream ends inside a packet: %w", ErrTruncated)
				}
				return Packet{}, io.EOF
			}
			if err != nil {
				return Packet{}, err
			}
			if last, ok := r.lastSeq[p.Serial]; ok && p.Sequence != last+1 {
				return Packet{}, fmt.Errorf("ogg: page %d follows %d in stream %08x: %w", p.Sequence, last, p.Serial, ErrBadStream)
			}
			if len(r.lastSeq) > 64 {
				return Packet{}, fmt.Errorf("ogg: more than 64 logical streams: %w", ErrBadStream)
			}
			r.lastSeq[p.Serial] = p.Sequence
			cont := p.Flags&FlagContinued != 0
			switch {
			case r.pktOpen && (!cont || p.Serial != r.pktSer):
				return Packet{}, fmt.Errorf("ogg: packet not continued on page %d: %w", p.Sequence, ErrBadStream)
			case !r.pktOpen && cont:
				// A continuation of a packet we never saw the start of
				// (reading from the middle of a stream): skip its rest.
				i := 0
				for i < len(p.Lacing) && p.Lacing[i] == 255 {
					i++
				}
				if i < len(p.Lacing) {
					i++
				}
				r.segIdx = i
			default:
				r.segIdx = 0
			}
			r.havePage = true
		}
		p := &r.page
		off := 0
		for _, l := range p.Lacing[:r.segIdx] {
			off += int(l)
		}
		for r.segIdx < len(p.Lacing) {
			l := int(p.Lacing[r.segIdx])
			r.segIdx++
			if !r.pktOpen {
				r.pkt = r.pkt[:0]
				r.pktOpen = true
				r.pktSer = p.Serial
			}
			if len(r.pkt)+l > r.limit {
				return Packet{}, fmt.Errorf("ogg: packet over %d bytes: %w", r.limit, ErrPacketTooLarge)
			}
			r.pkt = append(r.pkt, p.Body[off:off+l]...)
			off += l
			if l < 255 {
				r.pktOpen = false
				last := true
				for _, v := range p.Lacing[r.segIdx:] {
					if v < 255 {
						last = false
						break
					}
				}
				g := int64(-1)
				if last {
					g = p.Granule
				}
				return Packet{
					Data:    r.pkt,
					Serial:  p.Serial,
					Granule: g,
					BOS:     p.Flags&FlagBOS != 0,
					EOS:     p.Flags&FlagEOS != 0,
				}, nil
			}
		}
		r.havePage = false
	}
}
