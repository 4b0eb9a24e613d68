package webm

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
)

// HeaderSize is the fixed size of the header part.
const HeaderSize = 4096

// Codec ids (Matroska codec specifications).
const (
	CodecOpus = "A_OPUS"
	CodecVP8  = "V_VP8"
	CodecVP9  = "V_VP9"
	CodecAV1  = "V_AV1"
	CodecH264 = "V_MPEG4/ISO/AVC"
)

// Track numbers used by the recorder.
const (
	AudioTrack = 1
	VideoTrack = 2
)

// ErrHeaderTooLarge is returned when the header does not fit HeaderSize.
var ErrHeaderTooLarge = errors.New("webm: header does not fit its reserved size")

// Track describes one track.
type Track struct {
	Number       uint64
	CodecID      string
	CodecPrivate []byte
	// Audio
	SampleRate float64
	Channels   uint64
	// Video
	Width, Height uint64
}

// Header is what the header part says.
type Header struct {
	// DocType is "webm" or "matroska".
	DocType string
	Tracks  []Track
	Start   time.Time // DateUTC
	// Duration, when set, is written as the Segment duration.
	Duration time.Duration
}

type info struct {
	TimecodeScale uint64    `ebml:"TimecodeScale"`
	MuxingApp     string    `ebml:"MuxingApp"`
	WritingApp    string    `ebml:"WritingApp"`
	Duration      float64   `ebml:"Duration,omitempty"`
	DateUTC       time.Time `ebml:"DateUTC,omitempty"`
}

type trackEntry struct {
	TrackNumber  uint64      `ebml:"TrackNumber"`
	TrackUID     uint64      `ebml:"TrackUID"`
	FlagLacing   uint64      `ebml:"FlagLacing"`
	CodecID      string      `ebml:"CodecID"`
	CodecPrivate []byte      `ebml:"CodecPrivate,omitempty"`
	CodecDelay   uint64      `ebml:"CodecDelay,omitempty"`
	TrackType    uint64      `ebml:"TrackType"`
	SeekPreRoll  uint64      `ebml:"SeekPreRoll,omitempty"`
	Audio        *webm.Audio `ebml:"Audio,omitempty"`
	Video        *webm.Video `ebml:"Video,omitempty"`
}

type segmentHead struct {
	SeekHead *webm.SeekHead `ebml:"SeekHead,omitempty"`
	Info     info           `ebml:"Info"`
	Tracks   struct {
		TrackEntry []trackEntry `ebml:"TrackEntry"`
	} `ebml:"Tracks"`
	Void []byte `ebml:"Void"`
}

type fileHead struct {
	EBML    webm.EBMLHeader `ebml:"EBML"`
	Segment segmentHead     `ebml:"Segment,size=unknown"`
}

// Element ids used for SeekHead entries and by hand-written clusters.
var (
	idInfo    = []byte{0x15, 0x49, 0xA9, 0x66}
	idTracks  = []byte{0x16, 0x54, 0xAE, 0x6B}
	idCues    = []byte{0x1C, 0x53, 0xBB, 0x6B}
	idCluster = []byte{0x1F, 0x43, 0xB6, 0x75}
)

const (
	idTimecode    = 0xE7
	idSimpleBlock = 0xA3
)

type block struct {
	track uint64
	tc    int64
	key   bool
	off   int
	n     int
}

type cue struct {
	tc  int64
	pos int64
}

// Writer writes one Matroska/WebM file. It is not safe for concurrent use.
type Writer struct {
	hdr  Header
	uids []uint64

	// segData is the file offset of the Segment's data (SeekHead,
	// Cues positions are relative to it); written the bytes emitted.
	segData int64
	written int64

	arena   []byte
	blocks  []block
	cues    []cue
	cuesPos int64
	lastTC  int64
}

// NewWriter returns a Writer for a file with the given header.
func NewWriter(h Header) *Writer {
	w := &Writer{hdr: h}
	for range h.Tracks {
		var b [8]byte
		_, _ = rand.Read(b[:])
		w.uids = append(w.uids, binary.LittleEndian.Uint64(b[:])>>1|1)
	}
	return w
}

// SetHeader replaces what the header part will say on the next call to
// AppendHeader (codec parameters learned from the first keyframe, the
// duration at close). Track order and numbers must not change.
func (w *Writer) SetHeader(h Header) { w.hdr = h }

// HeaderInfo returns the header as last set.
func (w *Writer) HeaderInfo() Header { return w.hdr }

// AppendHeader appends the header part, exactly HeaderSize bytes, to dst.
// It is written first, and again at close to rewrite part 0.
func (w *Writer) AppendHeader(dst []byte) ([]byte, error) {
	fh := fileHead{
		EBML: webm.EBMLHeader{
			EBMLVersion: 1, EBMLReadVersion: 1, EBMLMaxIDLength: 4, EBMLMaxSizeLength: 8,
			DocType: w.hdr.DocType, DocTypeVersion: 4, DocTypeReadVersion: 2,
		},
	}
	fh.Segment.Info = info{
		TimecodeScale: uint64(time.Millisecond),
		MuxingApp:     "custodian",
		WritingApp:    "custodian",
		Duration:      float64(w.hdr.Duration) / float64(time.Millisecond),
		DateUTC:       w.hdr.Start,
	}
	for i, t := range w.hdr.Tracks {
		e := trackEntry{
			TrackNumber: t.Number, TrackUID: w.uids[i], CodecID: t.CodecID,
			CodecPrivate: t.CodecPrivate,
		}
		if t.CodecID == CodecOpus {
			e.TrackType = 2
			e.SeekPreRoll = uint64(80 * time.Millisecond)
			e.Audio = &webm.Audio{SamplingFrequency: t.SampleRate, Channels: t.Channels}
		} else {
			e.TrackType = 1
			wd, ht := t.Width, t.Height
			if wd == 0 || ht == 0 {
				wd, ht = 640, 480 // unknown until the first keyframe
			}
			e.Video = &webm.Video{PixelWidth: wd, PixelHeight: ht}
		}
		fh.Segment.Tracks.TrackEntry = append(fh.Segment.Tracks.TrackEntry, e)
	}

	// First pass: element positions, to fill the SeekHead.
	positions := map[string]uint64{}
	var segData uint64
	hook := func(e *ebml.Element) {
		switch e.Name {
		case "Segment":
			segData = e.Position + 12 // 4-byte id, 8-byte unknown size
		case "Info", "Tracks":
			positions[e.Name] = e.Position
		}
	}
	seek := &webm.SeekHead{Seek: []webm.Seek{
		{SeekID: idInfo, SeekPosition: 0},
		{SeekID: idTracks, SeekPosition: 0},
		{SeekID: idCues, SeekPosition: 0},
	}}
	fh.Segment.SeekHead = seek
	fh.Segment.Void = []byte{}
	var buf bytes.Buffer
	if err := ebml.Marshal(&fh, &buf, ebml.WithElementWriteHooks(hook)); err != nil {
		return dst, fmt.Errorf("webm: marshal header: %w", err)
	}
	// SeekPositions are written as fixed 8-byte integers would change
	// sizes; use the measured ones (the SeekHead's own size does not
	// depend on the values as long as they keep their byte length, so
	// iterate until stable).
	for range 4 {
		seek.Seek[0].SeekPosition = positions["Info"] - segData
		seek.Seek[1].SeekPosition = positions["Tracks"] - segData
		if len(w.cues) > 0 || w.cuesPos > 0 {
			seek.Seek[2].SeekPosition = uint64(w.cuesPos)
		} else {
			seek.Seek = seek.Seek[:2]
		}
		buf.Reset()
		if err := ebml.Marshal(&fh, &buf, ebml.WithElementWriteHooks(hook)); err != nil {
			return dst, fmt.Errorf("webm: marshal header: %w", err)
		}
		if seek.Seek[0].SeekPosition == positions["Info"]-segData && seek.Seek[1].SeekPosition == positions["Tracks"]-segData {
			break
		}
	}
	// Pad with the Void so the whole header is HeaderSize bytes.
	base := buf.Len() - 2 // the empty Void is 2 bytes (id, size 0)
	for n := HeaderSize - base - 9; n <= HeaderSize-base; n++ {
		if n < 0 {
			continue
		}
		fh.Segment.Void = make([]byte, n)
		buf.Reset()
		if err := ebml.Marshal(&fh, &buf); err != nil {
			return dst, fmt.Errorf("webm: marshal header: %w", err)
		}
		if buf.Len() == HeaderSize {
			w.segData = int64(segData)
			if w.written == 0 {
				w.written = HeaderSize
			}
			return append(dst, buf.Bytes()...), nil
		}
	}
	return dst, ErrHeaderTooLarge
}

// WriteBlock buffers one frame for the current cluster. tc is the frame's
// time in milliseconds on the recording timeline.
func (w *Writer) WriteBlock(track uint64, tc int64, key bool, data []byte) {
	off := len(w.arena)
	w.arena = append(w.arena, data...)
	w.blocks = append(w.blocks, block{track: track, tc: tc, key: key, off: off, n: len(data)})
}

// Buffered reports the number of frames and bytes waiting for the next
// cluster.
func (w *Writer) Buffered() (frames, bytes int) { return len(w.blocks), len(w.arena) }

// AppendCluster appends the buffered frames, sorted by time, as one or
// more clusters to dst. It appends nothing when no frame is buffered.
func (w *Writer) AppendCluster(dst []byte) []byte {
	if len(w.blocks) == 0 {
		return dst
	}
	slices.SortStableFunc(w.blocks, func(a, b block) int {
		switch {
		case a.tc < b.tc:
			return -1
		case a.tc > b.tc:
			return 1
		}
		return 0
	})
	i := 0
	for i < len(w.blocks) {
		start := len(dst)
		ctc := max(w.blocks[i].tc, 0)
		clusterPos := w.written + int64(len(dst)-start) - w.segData
		dst = append(dst, idCluster...)
		sizeAt := len(dst)
		dst = append(dst, 0x01, 0, 0, 0, 0, 0, 0, 0)
		dst = append(dst, idTimecode)
		dst = appendUintElementData(dst, uint64(ctc))
		cued := false
		for ; i < len(w.blocks); i++ {
			b := w.blocks[i]
			rel := b.tc - ctc
			if rel > 32000 {
				break
			}
			if rel < -32768 {
				rel = -32768
			}
			if b.key && !cued && (b.track == VideoTrack || !w.hasVideo()) {
				w.cues = append(w.cues, cue{tc: max(b.tc, 0), pos: clusterPos})
				cued = true
			}
			data := w.arena[b.off : b.off+b.n]
			dst = append(dst, idSimpleBlock)
			dst = appendVint(dst, uint64(1+2+1+len(data)))
			dst = append(dst, 0x80|byte(b.track))
			dst = binary.BigEndian.AppendUint16(dst, uint16(int16(rel)))
			flags := byte(0)
			if b.key {
				flags |= 0x80
			}
			dst = append(dst, flags)
			dst = append(dst, data...)
			w.lastTC = max(w.lastTC, b.tc)
		}
		size := uint64(len(dst) - sizeAt - 8)
		for k := 7; k >= 1; k-- {
			dst[sizeAt+k] = byte(size)
			size >>= 8
		}
		w.written += int64(len(dst) - start)
	}
	w.blocks = w.blocks[:0]
	w.arena = w.arena[:0]
	return dst
}

func (w *Writer) hasVideo() bool {
	for _, t := range w.hdr.Tracks {
		if t.Number == VideoTrack {
			return true
		}
	}
	return false
}

// AppendCues appends the Cues element (one cue point per cluster that
// starts with a keyframe) to dst and remembers its position for the
// header's SeekHead.
func (w *Writer) AppendCues(dst []byte) ([]byte, error) {
	if len(w.cues) == 0 {
		return dst, nil
	}
	track := uint64(AudioTrack)
	if w.hasVideo() {
		track = VideoTrack
	}
	var c struct {
		Cues webm.Cues `ebml:"Cues"`
	}
	for _, q := range w.cues {
		c.Cues.CuePoint = append(c.Cues.CuePoint, webm.CuePoint{
			CueTime:           uint64(q.tc),
			CueTrackPositions: []webm.CueTrackPosition{{CueTrack: track, CueClusterPosition: uint64(q.pos)}},
		})
	}
	var buf bytes.Buffer
	if err := ebml.Marshal(&c, &buf); err != nil {
		return dst, fmt.Errorf("webm: marshal cues: %w", err)
	}
	w.cuesPos = w.written - w.segData
	w.written += int64(buf.Len())
	return append(dst, buf.Bytes()...), nil
}

// Written reports the bytes of the file so far (header included).
func (w *Writer) Written() int64 { return w.written }

func appendVint(dst []byte, v uint64) []byte {
	n := 1
	for n < 8 && v >= 1<<(7*n)-1 {
		n++
	}
	v |= 1 << (7 * n)
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}

func appendUintElementData(dst []byte, v uint64) []byte {
	n := 1
	for n < 8 && v >= 1<<(8*n) {
		n++
	}
	dst = appendVint(dst, uint64(n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}
