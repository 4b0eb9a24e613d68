package audio

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"

	"github.com/at-wat/ebml-go"
)

// webmMaxElement bounds a single EBML leaf (a video keyframe is the largest
// legitimate one); larger elements are rejected instead of allocated.
const webmMaxElement = 16 << 20

// Only the elements the demuxer needs are mapped; ebml-go parses and drops
// the rest. Cluster, SimpleBlock and BlockGroup are single values, not
// slices, so each is overwritten by the next: memory stays at one block.
type webmDoc struct {
	EBML struct {
		DocType string `ebml:"EBMLDocType"`
	} `ebml:"EBML"`
	Segment webmSegment `ebml:"Segment"`
}

type webmSegment struct {
	Info struct {
		TimecodeScale uint64 `ebml:"TimecodeScale"`
	} `ebml:"Info"`
	Tracks struct {
		TrackEntry []webmTrack `ebml:"TrackEntry"`
	} `ebml:"Tracks"`
	Cluster webmCluster `ebml:"Cluster"`
}

type webmTrack struct {
	TrackNumber      uint64    `ebml:"TrackNumber"`
	TrackType        uint64    `ebml:"TrackType"`
	CodecID          string    `ebml:"CodecID"`
	CodecPrivate     []byte    `ebml:"CodecPrivate"`
	CodecDelay       uint64    `ebml:"CodecDelay"`
	ContentEncodings *struct{} `ebml:"ContentEncodings"`
}

type webmCluster struct {
	Timecode    uint64         `ebml:"Timecode"`
	SimpleBlock ebml.Block     `ebml:"SimpleBlock"`
	BlockGroup  webmBlockGroup `ebml:"BlockGroup"`
}

type webmBlockGroup struct {
	Block          ebml.Block `ebml:"Block"`
	DiscardPadding int64      `ebml:"DiscardPadding"`
}

const (
	webmTrackAudio   = 2
	noClusterTime    = math.MaxUint64
	defaultTimescale = 1_000_000 // ns per timestamp tick
)

// webmDemuxer streams an EBML document through ebml-go's element hooks and
// hands the Opus track's packets to the pipeline as they are read.
type webmDemuxer struct {
	ctx   context.Context
	p     *pipeline
	doc   webmDoc
	in    *countingReader
	fail  error // first error from a hook; stops the reader
	track uint64
	seen  bool // Tracks element read
}

// countingReader counts bytes handed to ebml-go and fails every read once
// the demuxer has failed or stopped, which makes ebml.Unmarshal return.
type countingReader struct {
	r    io.Reader
	n    int64
	stop *error
}

func (c *countingReader) Read(b []byte) (int, error) {
	if *c.stop != nil {
		return 0, *c.stop
	}
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

func demuxWebM(ctx context.Context, r io.Reader, p *pipeline) error {
	br := bufio.NewReaderSize(r, 64<<10)
	segStart, segSize, _ := peekSegment(br)
	d := &webmDemuxer{ctx: ctx, p: p}
	d.doc.Segment.Cluster.Timecode = noClusterTime
	d.in = &countingReader{r: br, stop: &d.fail}
	err := ebml.Unmarshal(d.in, &d.doc,
		ebml.WithElementReadHooks(d.hook),
		ebml.WithMaxLeafElementSize(webmMaxElement))
	switch {
	case d.fail != nil:
		err = d.fail
	case err != nil:
		err = classifyEBML(err)
	case d.in.n == 0:
		return nil // zero-length recording
	case segSize >= 0 && d.in.n < segStart+segSize:
		err = truncatedf("segment declares %d bytes, %d present", segSize, d.in.n-segStart)
	case !d.seen:
		err = truncatedf("no Tracks element")
	}
	if err == nil || errors.Is(err, errStop) || errors.Is(err, ctx.Err()) && ctx.Err() != nil {
		return err
	}
	var fe *FormatError
	if errors.As(err, &fe) {
		fe.Container, fe.Offset = "webm", d.in.n
		return fe
	}
	return &FormatError{Container: "webm", Offset: d.in.n, Packet: -1, Err: err}
}

func classifyEBML(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &kindError{kind: ErrTruncated, cause: err}
	case errors.Is(err, ebml.ErrTooLargeElement):
		return &kindError{kind: ErrUnsupported, cause: err}
	}
	return &kindError{kind: ErrCorrupt, cause: err}
}

// peekSegment reads, without consuming, the EBML header and the Segment
// element header, and returns where the Segment's data starts and its size
// (-1 when unknown or not found). ebml-go treats a stream that ends between
// elements as complete; the declared size is how truncation is caught.
func peekSegment(br *bufio.Reader) (start, size int64, ok bool) {
	b, _ := br.Peek(4096)
	pos := 0
	readVint := func(mask bool) (uint64, int, bool) {
		if pos >= len(b) {
			return 0, 0, false
		}
		first := b[pos]
		l := 1
		for l <= 8 && first&(0x80>>(l-1)) == 0 {
			l++
		}
		if l > 8 || pos+l > len(b) {
			return 0, 0, false
		}
		v := uint64(first)
		if mask {
			v &= 0xff >> l
		}
		allOnes := v == uint64(0xff>>l)
		for i := 1; i < l; i++ {
			v = v<<8 | uint64(b[pos+i])
			allOnes = allOnes && b[pos+i] == 0xff
		}
		pos += l
		if mask && allOnes {
			return math.MaxUint64, l, true
		}
		return v, l, true
	}
	id, _, ok := readVint(false)
	if !ok || id != 0x1A45DFA3 {
		return 0, -1, false
	}
	hsize, _, ok := readVint(true)
	if !ok || hsize == math.MaxUint64 || hsize > uint64(len(b)) {
		return 0, -1, false
	}
	pos += int(hsize)
	id, _, ok = readVint(false)
	if !ok || id != 0x18538067 {
		return 0, -1, false
	}
	ssize, _, ok := readVint(true)
	if !ok || ssize == math.MaxUint64 || ssize > math.MaxInt64/2 {
		return int64(pos), -1, ok
	}
	return int64(pos), int64(ssize), true
}

func (d *webmDemuxer) hook(e *ebml.Element) {
	if d.fail != nil {
		return
	}
	var err error
	switch e.Type {
	case ebml.ElementEBMLDocType:
		if dt := d.doc.EBML.DocType; dt != "webm" && dt != "matroska" {
			err = unsupportedf("EBML doc type %q", dt)
		}
	case ebml.ElementTracks:
		err = d.tracks()
	case ebml.ElementSimpleBlock:
		if b, ok := e.Value.(ebml.Block); ok {
			err = d.block(b, 0)
		}
	case ebml.ElementBlockGroup:
		g := &d.doc.Segment.Cluster.BlockGroup
		err = d.block(g.Block, g.DiscardPadding)
		*g = webmBlockGroup{}
	case ebml.ElementCluster:
		d.doc.Segment.Cluster.Timecode = noClusterTime
	}
	if err != nil {
		d.fail = err
	}
}

// tracks picks the first Opus audio track.
func (d *webmDemuxer) tracks() error {
	if d.seen {
		return corruptf("second Tracks element")
	}
	d.seen = true
	other := ""
	for _, t := range d.doc.Segment.Tracks.TrackEntry {
		if t.TrackType != webmTrackAudio {
			continue
		}
		if t.CodecID != "A_OPUS" {
			other = t.CodecID
			continue
		}
		if t.ContentEncodings != nil {
			return unsupportedf("opus track %d uses content encoding", t.TrackNumber)
		}
		h, err := parseOpusHead(t.CodecPrivate)
		if err != nil {
			if len(t.CodecPrivate) != 0 {
				return err
			}
			// CodecPrivate is mandatory for A_OPUS, but a live muxer
			// that left it out still has a usable stream: mono or
			// stereo decode to mono alike; CodecDelay gives pre-skip.
			h = opusHead{Channels: 2}
		}
		if t.CodecDelay > 0 && len(t.CodecPrivate) == 0 {
			h.PreSkip = int(t.CodecDelay * opusRate / 1e9)
		}
		d.track = t.TrackNumber
		return d.p.start(h)
	}
	if other != "" {
		return unsupportedf("audio codec %s", other)
	}
	return ErrNoAudio
}

func (d *webmDemuxer) block(b ebml.Block, discardNS int64) error {
	if !d.seen {
		return corruptf("block before Tracks")
	}
	if b.TrackNumber != d.track {
		return nil
	}
	ct := d.doc.Segment.Cluster.Timecode
	if ct == noClusterTime {
		return corruptf("cluster without timestamp")
	}
	scale := d.doc.Segment.Info.TimecodeScale
	if scale == 0 {
		scale = defaultTimescale
	}
	ticks := int64(ct) + int64(b.Timecode)
	if ticks < 0 || ct > math.MaxInt64/2 {
		return corruptf("block timestamp out of range")
	}
	// ns → 48 kHz samples, without overflowing for any sane scale.
	ns := float64(ticks) * float64(scale)
	if ns > 1e18 {
		return corruptf("block timestamp out of range")
	}
	pts48 := int64(math.Round(ns * opusRate / 1e9))
	for i, data := range b.Data {
		pk := packet{data: data, pts48: pts48}
		if i > 0 {
			pk.pts48 = -1 // laced frames follow one another
		}
		if i == len(b.Data)-1 && discardNS > 0 {
			pk.discard48 = int64(math.Round(float64(discardNS) * opusRate / 1e9))
		}
		if err := d.p.packet(pk); err != nil {
			return err
		}
	}
	return nil
}
