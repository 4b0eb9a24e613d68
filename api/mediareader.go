package api

import (
	"context"
	"errors"
	"io"
	"sort"
	"sync"

	"github.com/custodian/custodian/storage"
)

// rangeReader reads plaintext bytes of a recording at an offset
// (storage.Reader implements it). Each call with a part's exact offset
// and size fetches, verifies and decrypts only that part.
type rangeReader interface {
	ReadRange(ctx context.Context, p []byte, off int64) (int, error)
}

// Read-ahead of the media reader: parts fetched and decrypted ahead of the
// one being sent, bounded in count and bytes.
const (
	mediaAheadParts = 8
	mediaAheadBytes = 4 << 20
)

// mediaReader is the io.ReadSeeker given to http.ServeContent for a
// recording. Seeking is free; a read fetches only the part covering the
// offset and, for the sequential reads that follow, a few parts ahead
// concurrently, so a Range request near the end of a long recording
// touches only the parts it needs and a full download overlaps fetching
// and decryption with sending.
type mediaReader struct {
	ctx    context.Context
	cancel context.CancelFunc
	src    rangeReader
	parts  []storage.PartInfo
	size   int64
	off    int64

	pending map[int]*partFetch
	wg      sync.WaitGroup
}

type partFetch struct {
	done chan struct{}
	data []byte
	err  error
}

func newMediaReader(ctx context.Context, src rangeReader, m storage.Manifest) *mediaReader {
	ctx, cancel := context.WithCancel(ctx)
	return &mediaReader{ctx: ctx, cancel: cancel, src: src, parts: m.Parts, size: m.PlainSize, pending: map[int]*partFetch{}}
}

// Close stops read-ahead and waits for fetches in flight (so the
// recording's Reader can be closed safely afterwards).
func (m *mediaReader) Close() error {
	m.cancel()
	m.wg.Wait()
	for n, f := range m.pending {
		clear(f.data)
		delete(m.pending, n)
	}
	return nil
}

// Seek implements io.Seeker.
func (m *mediaReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += m.off
	case io.SeekEnd:
		offset += m.size
	default:
		return 0, errors.New("api: media seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("api: media seek: negative position")
	}
	m.off = offset
	return offset, nil
}

// partAt returns the index of the part holding byte off (< size).
func (m *mediaReader) partAt(off int64) int {
	return sort.Search(len(m.parts), func(i int) bool { return m.parts[i].PlainOffset > off }) - 1
}

func (m *mediaReader) fetch(n int) *partFetch {
	if f, ok := m.pending[n]; ok {
		return f
	}
	f := &partFetch{done: make(chan struct{})}
	m.pending[n] = f
	p := m.parts[n]
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(f.done)
		buf := make([]byte, p.PlainSize)
		k, err := m.src.ReadRange(m.ctx, buf, p.PlainOffset)
		if err != nil && !(errors.Is(err, io.EOF) && int64(k) == p.PlainSize) {
			clear(buf)
			f.err = err
			return
		}
		f.data = buf
	}()
	return f
}

// Read implements io.Reader.
func (m *mediaReader) Read(b []byte) (int, error) {
	if m.off >= m.size {
		return 0, io.EOF
	}
	if len(b) == 0 {
		return 0, nil
	}
	i := m.partAt(m.off)
	if i < 0 {
		return 0, errors.New("api: media read: offset before the first part")
	}
	// Drop fetches outside the window [i, i+ahead] (left behind by a seek).
	for n, f := range m.pending {
		if n < i || n > i+mediaAheadParts {
			select {
			case <-f.done:
				clear(f.data)
			default: // still running: let it finish, unreferenced
			}
			delete(m.pending, n)
		}
	}
	cur := m.fetch(i)
	var ahead int64
	for n := i + 1; n < len(m.parts) && n <= i+mediaAheadParts && ahead < mediaAheadBytes; n++ {
		if m.parts[n].PlainSize == 0 {
			continue
		}
		ahead += m.parts[n].PlainSize
		m.fetch(n)
	}
	select {
	case <-cur.done:
	case <-m.ctx.Done():
		return 0, m.ctx.Err()
	}
	if cur.err != nil {
		return 0, cur.err
	}
	p := m.parts[i]
	rel := m.off - p.PlainOffset
	n := copy(b, cur.data[rel:])
	m.off += int64(n)
	if m.off >= p.PlainOffset+p.PlainSize {
		clear(cur.data)
		delete(m.pending, i)
	}
	return n, nil
}
