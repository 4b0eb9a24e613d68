package depacket

import (
	"errors"
)

// av1Format: the AV1 RTP payload format (AOMedia, 2021). OBU elements are
// reassembled into OBUs with obu_has_size_field set (the "low overhead
// bitstream format" Matroska's V_AV1 expects), temporal delimiters are
// dropped, and the sequence header makes the av1C record.
type av1Format struct {
	obu     []byte // the OBU element being reassembled across packets
	obuOpen bool
	key     bool
	seqHdr  []byte // latest sequence header OBU (with size field)
	private []byte
	dirty   bool
	w, h    int
}

const (
	obuSequenceHeader    = 1
	obuTemporalDelimiter = 2
	obuTileList          = 8
)

func (f *av1Format) fragment(frame, payload []byte, first bool) ([]byte, bool, error) {
	if len(payload) < 2 {
		return frame, false, errors.New("av1: short payload")
	}
	agg := payload[0]
	z, y := agg&0x80 != 0, agg&0x40 != 0
	w := int(agg>>4) & 3
	if agg&0x08 != 0 {
		f.key = true // N: first packet of a coded video sequence
	}
	if z != f.obuOpen {
		if z {
			return frame, false, errors.New("av1: continuation without a beginning")
		}
		return frame, false, errors.New("av1: OBU not continued")
	}
	b := payload[1:]
	for i := 1; len(b) > 0; i++ {
		var elem []byte
		if w == 0 || i < w {
			n, l, err := leb128(b)
			if err != nil || n > uint64(len(b)-l) {
				return frame, false, errors.New("av1: bad OBU element length")
			}
			elem, b = b[l:l+int(n)], b[l+int(n):]
		} else {
			elem, b = b, nil
		}
		last := len(b) == 0
		f.obu = append(f.obu, elem...)
		f.obuOpen = true
		if last && y {
			break // continued in the next packet
		}
		var err error
		frame, err = f.appendOBU(frame, f.obu)
		f.obu = f.obu[:0]
		f.obuOpen = false
		if err != nil {
			return frame, false, err
		}
		if w != 0 && i >= w {
			break
		}
	}
	if len(f.obu) > maxFrame {
		return frame, false, errors.New("av1: OBU too large")
	}
	return frame, first && !z, nil
}

// appendOBU writes one complete OBU with its size field.
func (f *av1Format) appendOBU(frame, obu []byte) ([]byte, error) {
	if len(obu) == 0 {
		return frame, nil
	}
	h := obu[0]
	if h&0x80 != 0 {
		return frame, errors.New("av1: forbidden bit set")
	}
	typ := h >> 3 & 0x0f
	hdrLen := 1
	if h&0x04 != 0 {
		hdrLen = 2
	}
	if len(obu) < hdrLen {
		return frame, errors.New("av1: short OBU header")
	}
	body := obu[hdrLen:]
	if h&0x02 != 0 {
		n, l, err := leb128(body)
		if err != nil || n > uint64(len(body)-l) {
			return frame, errors.New("av1: bad OBU size")
		}
		body = body[l : l+int(n)]
	}
	if typ == obuTemporalDelimiter || typ == obuTileList {
		return frame, nil
	}
	start := len(frame)
	frame = append(frame, h|0x02)
	if hdrLen == 2 {
		frame = append(frame, obu[1])
	}
	frame = appendLEB128(frame, uint64(len(body)))
	frame = append(frame, body...)
	if typ == obuSequenceHeader {
		f.key = true
		whole := frame[start:]
		if string(whole) != string(f.seqHdr) {
			f.seqHdr = append(f.seqHdr[:0], whole...)
			f.dirty = true
			if sh, err := parseAV1SequenceHeader(body); err == nil {
				f.w, f.h = sh.width, sh.height
			}
		}
	}
	return frame, nil
}

func (f *av1Format) finish(data []byte) ([]byte, bool, int, int) {
	key := f.key && len(f.seqHdr) > 0
	if key {
		return data, true, f.w, f.h
	}
	return data, false, 0, 0
}

func (f *av1Format) reset() {
	f.obu = f.obu[:0]
	f.obuOpen = false
	f.key = false
}

// codecPrivate returns the AV1CodecConfigurationRecord (av1C) with the
// sequence header as its configOBUs.
func (f *av1Format) codecPrivate() []byte {
	if len(f.seqHdr) == 0 {
		return nil
	}
	if f.dirty || f.private == nil {
		hdrLen := 1
		if f.seqHdr[0]&0x04 != 0 {
			hdrLen = 2
		}
		_, l, _ := leb128(f.seqHdr[hdrLen:])
		sh, _ := parseAV1SequenceHeader(f.seqHdr[hdrLen+l:])
		p := []byte{
			0x81, // marker, version 1
			sh.profile<<5 | sh.level&0x1f,
			sh.tier<<7 | b2u(sh.highBitdepth)<<6 | b2u(sh.twelveBit)<<5 | b2u(sh.mono)<<4 |
				sh.subX<<3 | sh.subY<<2 | sh.chromaPos&3,
			0,
		}
		f.private = append(p, f.seqHdr...)
		f.dirty = false
	}
	return f.private
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

type av1SequenceHeader struct {
	profile, level, tier    byte
	highBitdepth, twelveBit bool
	mono                    bool
	subX, subY, chromaPos   byte
	width, height           int
}

// parseAV1SequenceHeader parses a sequence_header_obu body (AV1 spec
// 5.5). On error the fields read so far are returned, with 4:2:0 8-bit
// defaults for the colour configuration.
func parseAV1SequenceHeader(b []byte) (av1SequenceHeader, error) {
	sh := av1SequenceHeader{subX: 1, subY: 1}
	r := &bitReader{b: b}
	sh.profile = byte(r.u(3))
	r.u(1) // still_picture
	reduced := r.flag()
	decoderModel := false
	bufferDelayLen := 0
	if reduced {
		sh.level = byte(r.u(5))
	} else {
		if r.flag() { // timing_info_present_flag
			r.u(32)
			r.u(32)
			if r.flag() {
				r.uvlc()
			}
			decoderModel = r.flag()
			if decoderModel {
				bufferDelayLen = int(r.u(5)) + 1
				r.u(32)
				r.u(5)
				r.u(5)
			}
		}
		initialDisplayDelay := r.flag()
		n := int(r.u(5)) + 1
		for i := range n {
			r.u(12)
			lvl := byte(r.u(5))
			tier := byte(0)
			if lvl > 7 {
				tier = byte(r.u(1))
			}
			if i == 0 {
				sh.level, sh.tier = lvl, tier
			}
			if decoderModel && r.flag() {
				r.u(bufferDelayLen)
				r.u(bufferDelayLen)
				r.u(1)
			}
			if initialDisplayDelay && r.flag() {
				r.u(4)
			}
			if r.err != nil {
				return sh, r.err
			}
		}
	}
	wb, hb := int(r.u(4))+1, int(r.u(4))+1
	sh.width, sh.height = int(r.u(wb))+1, int(r.u(hb))+1
	if !reduced && r.flag() { // frame_id_numbers_present_flag
		r.u(4)
		r.u(3)
	}
	r.u(3) // use_128x128_superblock, enable_filter_intra, enable_intra_edge
	if !reduced {
		r.u(4) // interintra, masked compound, warped motion, dual filter
		orderHint := r.flag()
		if orderHint {
			r.u(2) // jnt_comp, ref_frame_mvs
		}
		force := uint64(2)
		if !r.flag() { // seq_choose_screen_content_tools
			force = r.u(1)
		}
		if force > 0 && !r.flag() { // seq_choose_integer_mv
			r.u(1)
		}
		if orderHint {
			r.u(3)
		}
	}
	r.u(3) // superres, cdef, restoration
	sh.highBitdepth = r.flag()
	if sh.profile == 2 && sh.highBitdepth {
		sh.twelveBit = r.flag()
	}
	if sh.profile != 1 {
		sh.mono = r.flag()
	}
	cp, tc, mc := uint64(2), uint64(2), uint64(2)
	if r.flag() {
		cp, tc, mc = r.u(8), r.u(8), r.u(8)
	}
	switch {
	case sh.mono:
		r.u(1)
	case cp == 1 && tc == 13 && mc == 0:
		sh.subX, sh.subY = 0, 0
	default:
		r.u(1) // color_range
		switch sh.profile {
		case 0:
			sh.subX, sh.subY = 1, 1
		case 1:
			sh.subX, sh.subY = 0, 0
		default:
			if sh.twelveBit {
				sh.subX = byte(r.u(1))
				sh.subY = 0
				if sh.subX == 1 {
					sh.subY = byte(r.u(1))
				}
			} else {
				sh.subX, sh.subY = 1, 0
			}
		}
		if sh.subX == 1 && sh.subY == 1 {
			sh.chromaPos = byte(r.u(2))
		}
	}
	if r.err != nil {
		return av1SequenceHeader{profile: sh.profile, level: sh.level, tier: sh.tier, subX: 1, subY: 1, width: sh.width, height: sh.height}, r.err
	}
	return sh, nil
}
