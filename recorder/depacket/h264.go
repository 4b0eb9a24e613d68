package depacket

import (
	"encoding/binary"
	"errors"
)

// h264Format: RFC 6184 (single NAL unit, STAP-A and FU-A packets). Frames
// are written as AVCC (4-byte length-prefixed NAL units), as Matroska's
// V_MPEG4/ISO/AVC expects; the latest SPS and PPS make the avcC record.
type h264Format struct {
	fuOpen  bool // an FU-A NAL unit is being assembled
	fuStart int  // offset of its length prefix in the frame
	key     bool
	sps     []byte
	pps     []byte
	private []byte
	dirty   bool // sps/pps changed since private was built
}

const (
	nalIDR   = 5
	nalSPS   = 7
	nalPPS   = 8
	nalSTAPA = 24
	nalFUA   = 28
)

func (f *h264Format) appendNAL(frame, nal []byte) []byte {
	if len(nal) == 0 {
		return frame
	}
	f.noteNAL(nal)
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(nal)))
	return append(frame, nal...)
}

func (f *h264Format) noteNAL(nal []byte) {
	switch nal[0] & 0x1f {
	case nalIDR:
		f.key = true
	case nalSPS:
		if string(f.sps) != string(nal) {
			f.sps = append(f.sps[:0], nal...)
			f.dirty = true
		}
	case nalPPS:
		if string(f.pps) != string(nal) {
			f.pps = append(f.pps[:0], nal...)
			f.dirty = true
		}
	}
}

func (f *h264Format) fragment(frame, payload []byte, first bool) ([]byte, bool, error) {
	if len(payload) < 1 {
		return frame, false, errors.New("h264: empty payload")
	}
	if payload[0]&0x80 != 0 {
		return frame, false, errors.New("h264: forbidden bit set")
	}
	typ := payload[0] & 0x1f
	switch {
	case typ >= 1 && typ <= 23:
		if f.fuOpen {
			return frame, false, errors.New("h264: NAL unit inside an open FU-A")
		}
		return f.appendNAL(frame, payload), true, nil
	case typ == nalSTAPA:
		if f.fuOpen {
			return frame, false, errors.New("h264: STAP-A inside an open FU-A")
		}
		b := payload[1:]
		for len(b) > 0 {
			if len(b) < 2 {
				return frame, false, errors.New("h264: truncated STAP-A")
			}
			n := int(binary.BigEndian.Uint16(b))
			b = b[2:]
			if n == 0 || n > len(b) {
				return frame, false, errors.New("h264: bad STAP-A size")
			}
			frame = f.appendNAL(frame, b[:n])
			b = b[n:]
		}
		return frame, true, nil
	case typ == nalFUA:
		if len(payload) < 3 {
			return frame, false, errors.New("h264: short FU-A")
		}
		s, e := payload[1]&0x80 != 0, payload[1]&0x40 != 0
		if s {
			if f.fuOpen {
				return frame, false, errors.New("h264: FU-A starts twice")
			}
			f.fuOpen = true
			f.fuStart = len(frame)
			frame = append(frame, 0, 0, 0, 0, payload[0]&0xe0|payload[1]&0x1f)
		} else if !f.fuOpen {
			return frame, false, errors.New("h264: FU-A continuation without a start")
		}
		frame = append(frame, payload[2:]...)
		if e {
			f.fuOpen = false
			nal := frame[f.fuStart+4:]
			binary.BigEndian.PutUint32(frame[f.fuStart:], uint32(len(nal)))
			f.noteNAL(nal)
		}
		return frame, s, nil
	}
	return frame, false, errors.New("h264: unsupported packetization")
}

func (f *h264Format) finish(data []byte) ([]byte, bool, int, int) {
	if f.fuOpen {
		// The marker came inside an FU-A: drop the partial NAL unit.
		data = data[:f.fuStart]
		f.fuOpen = false
	}
	key := f.key && len(f.sps) > 0 && len(f.pps) > 0
	w, h := 0, 0
	if key {
		w, h, _ = parseSPS(f.sps)
	}
	return data, key, w, h
}

func (f *h264Format) reset() {
	f.fuOpen = false
	f.key = false
}

// codecPrivate returns the AVCDecoderConfigurationRecord (ISO/IEC 14496-15
// 5.3.3.1) for the latest SPS and PPS.
func (f *h264Format) codecPrivate() []byte {
	if len(f.sps) < 4 || len(f.pps) == 0 {
		return nil
	}
	if f.dirty || f.private == nil {
		p := []byte{1, f.sps[1], f.sps[2], f.sps[3], 0xff, 0xe1}
		p = binary.BigEndian.AppendUint16(p, uint16(len(f.sps)))
		p = append(p, f.sps...)
		p = append(p, 1)
		p = binary.BigEndian.AppendUint16(p, uint16(len(f.pps)))
		p = append(p, f.pps...)
		f.private = p
		f.dirty = false
	}
	return f.private
}

// unescapeRBSP removes emulation prevention bytes (00 00 03).
func unescapeRBSP(nal []byte) []byte {
	out := make([]byte, 0, len(nal))
	zeros := 0
	for _, b := range nal {
		if zeros >= 2 && b == 3 {
			zeros = 0
			continue
		}
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
		out = append(out, b)
	}
	return out
}

// parseSPS returns the picture size an H.264 sequence parameter set
// declares (ITU-T H.264 7.3.2.1.1).
func parseSPS(nal []byte) (w, h int, err error) {
	if len(nal) < 4 {
		return 0, 0, errShort
	}
	r := &bitReader{b: unescapeRBSP(nal[1:])}
	profile := r.u(8)
	r.u(16) // constraint flags, level
	r.ue()  // seq_parameter_set_id
	chroma := uint64(1)
	separate := false
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chroma = r.ue()
		if chroma == 3 {
			separate = r.flag()
		}
		r.ue() // bit_depth_luma_minus8
		r.ue() // bit_depth_chroma_minus8
		r.u(1) // qpprime_y_zero_transform_bypass_flag
		if r.flag() {
			n := 8
			if chroma == 3 {
				n = 12
			}
			for i := range n {
				if !r.flag() {
					continue
				}
				size := 16
				if i >= 6 {
					size = 64
				}
				last, next := int64(8), int64(8)
				for range size {
					if next != 0 {
						next = (last + r.se() + 256) % 256
					}
					if next != 0 {
						last = next
					}
				}
			}
		}
	}
	r.ue() // log2_max_frame_num_minus4
	switch r.ue() {
	case 0:
		r.ue()
	case 1:
		r.u(1)
		r.se()
		r.se()
		n := r.ue()
		if n > 255 {
			return 0, 0, errors.New("h264: bad SPS")
		}
		for range n {
			r.se()
		}
	}
	r.ue() // max_num_ref_frames
	r.u(1) // gaps_in_frame_num_value_allowed_flag
	wmb := r.ue() + 1
	hmu := r.ue() + 1
	frameMBsOnly := r.u(1)
	if frameMBsOnly == 0 {
		r.u(1)
	}
	r.u(1) // direct_8x8_inference_flag
	var cl, cr, ct, cb uint64
	if r.flag() {
		cl, cr, ct, cb = r.ue(), r.ue(), r.ue(), r.ue()
	}
	if r.err != nil {
		return 0, 0, r.err
	}
	cropX, cropY := uint64(1), 2-frameMBsOnly
	if chroma != 0 && !separate {
		subW, subH := uint64(2), uint64(2)
		if chroma == 2 {
			subH = 1
		} else if chroma == 3 {
			subW, subH = 1, 1
		}
		cropX = subW
		cropY *= subH
	}
	width := wmb*16 - (cl+cr)*cropX
	height := (2-frameMBsOnly)*hmu*16 - (ct+cb)*cropY
	if width == 0 || height == 0 || width > 16384 || height > 16384 {
		return 0, 0, errors.New("h264: bad SPS size")
	}
	return int(width), int(height), nil
}
