package ogg

import (
	"encoding/binary"
	"errors"
)

// Page header flags (RFC 3533 section 6).
const (
	FlagContinued = 0x01 // first packet on the page continues one from the previous page
	FlagBOS       = 0x02 // beginning of stream
	FlagEOS       = 0x04 // end of stream
)

const (
	headerLen   = 27
	maxSegments = 255
	// noGranule is the granule position of a page on which no packet ends.
	noGranule = -1
)

// ErrPacketTooLarge is returned for a packet the writer will not buffer.
var ErrPacketTooLarge = errors.New("ogg: packet too large")

// MaxPacket is the largest packet the Writer accepts (Opus packets are at
// most 61,440 bytes; this leaves room for other codecs' headers).
const MaxPacket = 1 << 20

// Writer builds the pages of one logical Ogg stream. Packets are buffered
// with WritePacket and turned into pages, appended to a caller's slice, by
// AppendPages (complete pages only) or Flush (everything, ending the page).
// A Writer is not safe for concurrent use.
type Writer struct {
	serial uint32
	seq    uint32
	bos    bool // next page is the first of the stream
	eos    bool // the stream has ended

	// Pending packets: their bytes in data, their lacing values in lacing,
	// and for each lacing value the granule of the packet it ends (or
	// noGranule when the packet continues).
	data    []byte
	lacing  []byte
	granule []int64
	// cont is true when the first pending lacing value continues a packet
	// begun on an earlier page.
	cont bool
}

// NewWriter returns a Writer for the logical stream with the given serial
// number.
func NewWriter(serial uint32) *Writer {
	return &Writer{serial: serial, bos: true}
}

// PageSequence reports the sequence number the next page will get.
func (w *Writer) PageSequence() uint32 { return w.seq }

// Pending reports how many packet bytes are buffered but not yet paged.
func (w *Writer) Pending() int { return len(w.data) }

// WritePacket buffers one packet ending at granule position granule.
func (w *Writer) WritePacket(p []byte, granule int64) error {
	if w.eos {
		return errors.New("ogg: write after end of stream")
	}
	if len(p) > MaxPacket {
		return ErrPacketTooLarge
	}
	w.data = append(w.data, p...)
	n := len(p)
	for {
		if n < 255 {
			w.lacing = append(w.lacing, byte(n))
			w.granule = append(w.granule, granule)
			return nil
		}
		w.lacing = append(w.lacing, 255)
		w.granule = append(w.granule, noGranule)
		n -= 255
	}
}

// AppendPages appends to dst every full page (255 lacing values) that the
// buffered packets make, leaving the rest buffered.
func (w *Writer) AppendPages(dst []byte) []byte {
	for len(w.lacing) >= maxSegments {
		dst = w.appendPage(dst, maxSegments, false)
	}
	return dst
}

// Flush appends pages holding every buffered packet to dst. With eos the
// last page is marked end of stream (a page is written even if nothing is
// buffered) and the Writer accepts no more packets.
func (w *Writer) Flush(dst []byte, eos bool) []byte {
	for len(w.lacing) > maxSegments {
		dst = w.appendPage(dst, maxSegments, false)
	}
	if len(w.lacing) > 0 || eos {
		dst = w.appendPage(dst, len(w.lacing), eos)
	}
	return dst
}

// appendPage makes one page from the first nseg lacing values.
func (w *Writer) appendPage(dst []byte, nseg int, eos bool) []byte {
	size := 0
	for _, l := range w.lacing[:nseg] {
		size += int(l)
	}
	granule := int64(noGranule)
	for i := nseg - 1; i >= 0; i-- {
		if w.granule[i] != noGranule {
			granule = w.granule[i]
			break
		}
	}
	var flags byte
	if w.cont {
		flags |= FlagContinued
	}
	if w.bos {
		flags |= FlagBOS
	}
	if eos {
		flags |= FlagEOS
		w.eos = true
	}
	start := len(dst)
	var hdr [headerLen]byte
	copy(hdr[:], "OggS")
	hdr[4] = 0
	hdr[5] = flags
	binary.LittleEndian.PutUint64(hdr[6:], uint64(granule))
	binary.LittleEndian.PutUint32(hdr[14:], w.serial)
	binary.LittleEndian.PutUint32(hdr[18:], w.seq)
	hdr[26] = byte(nseg)
	dst = append(dst, hdr[:]...)
	dst = append(dst, w.lacing[:nseg]...)
	dst = append(dst, w.data[:size]...)
	crc := crcUpdate(0, dst[start:])
	binary.LittleEndian.PutUint32(dst[start+22:], crc)

	// The next page continues a packet when this one ends on a 255 value.
	w.cont = nseg > 0 && w.lacing[nseg-1] == 255
	w.bos = false
	w.seq++
	w.data = w.data[:copy(w.data, w.data[size:])]
	w.lacing = w.lacing[:copy(w.lacing, w.lacing[nseg:])]
	w.granule = w.granule[:copy(w.granule, w.granule[nseg:])]
	return dst
}
