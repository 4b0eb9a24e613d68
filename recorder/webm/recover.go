package webm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/at-wat/ebml-go"
)

// ErrNotOurs is returned by FinishHeader for bytes this package did not
// write.
var ErrNotOurs = errors.New("webm: not a file written by this package")

// FinishHeader is for recordings whose writer never closed (a crash): given
// the plaintext of all their parts in order (header part first), it
// returns a replacement header part, HeaderSize bytes, that states the
// duration up to the end of the last block, so that players show the
// right length. Cues are not added.
func FinishHeader(file []byte) ([]byte, error) {
	if len(file) < HeaderSize || !bytes.HasPrefix(file, []byte{0x1A, 0x45, 0xDF, 0xA3}) {
		return nil, ErrNotOurs
	}
	var fh fileHead
	if err := ebml.Unmarshal(bytes.NewReader(file[:HeaderSize]), &fh, ebml.WithIgnoreUnknown(true)); err != nil && !errors.Is(err, ebml.ErrReadStopped) {
		return nil, fmt.Errorf("webm: parse header: %w", err)
	}
	end, err := lastBlockEnd(file[HeaderSize:])
	if err != nil {
		return nil, err
	}
	h := Header{DocType: fh.EBML.DocType, Start: fh.Segment.Info.DateUTC, Duration: end}
	w := &Writer{}
	for _, e := range fh.Segment.Tracks.TrackEntry {
		t := Track{Number: e.TrackNumber, CodecID: e.CodecID, CodecPrivate: e.CodecPrivate}
		if e.Audio != nil {
			t.SampleRate, t.Channels = e.Audio.SamplingFrequency, e.Audio.Channels
		}
		if e.Video != nil {
			t.Width, t.Height = e.Video.PixelWidth, e.Video.PixelHeight
		}
		h.Tracks = append(h.Tracks, t)
		w.uids = append(w.uids, e.TrackUID)
	}
	w.hdr = h
	return w.AppendHeader(nil)
}

// readVint reads an EBML variable-length size, returning it and its length
// (0 when malformed).
func readVint(b []byte) (uint64, int) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0
	}
	l := 1
	for b[0]&(0x80>>(l-1)) == 0 {
		l++
	}
	if len(b) < l {
		return 0, 0
	}
	v := uint64(b[0] & (0xff >> l))
	for _, x := range b[1:l] {
		v = v<<8 | uint64(x)
	}
	return v, l
}

// Duration returns the timeline length of clusters written by this
// package (the time of the last block), given the bytes after the header
// part: all of them, or any run of whole clusters ending with the last.
func Duration(clusters []byte) (time.Duration, error) { return lastBlockEnd(clusters) }

func lastBlockEnd(b []byte) (time.Duration, error) {
	last := int64(-1)
	for len(b) > 0 {
		if len(b) < 12 || !bytes.Equal(b[:4], idCluster) || b[4] != 0x01 {
			break // not a cluster we wrote (e.g. Cues): stop
		}
		size := int(binary.BigEndian.Uint64(b[4:12]) & (1<<56 - 1))
		if size > len(b)-12 {
			break // truncated
		}
		c := b[12 : 12+size]
		b = b[12+size:]
		if len(c) < 2 || c[0] != idTimecode {
			return 0, ErrNotOurs
		}
		n, l := readVint(c[1:])
		if l == 0 || int(n) > len(c)-1-l {
			return 0, ErrNotOurs
		}
		var ctc uint64
		for _, x := range c[1+l : 1+l+int(n)] {
			ctc = ctc<<8 | uint64(x)
		}
		c = c[1+l+int(n):]
		for len(c) > 0 {
			if c[0] != idSimpleBlock {
				return 0, ErrNotOurs
			}
			n, l := readVint(c[1:])
			if l == 0 || int(n) > len(c)-1-l || n < 4 {
				return 0, ErrNotOurs
			}
			blk := c[1+l : 1+l+int(n)]
			rel := int16(binary.BigEndian.Uint16(blk[1:3]))
			last = max(last, int64(ctc)+int64(rel))
			c = c[1+l+int(n):]
		}
	}
	if last < 0 {
		last = 0
	}
	return time.Duration(last) * time.Millisecond, nil
}
