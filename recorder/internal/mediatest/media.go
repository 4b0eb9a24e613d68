package mediatest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/custodian/custodian/recorder/ogg"
)

// Path returns the path of a file in this package's testdata directory.
func Path(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", name)
}

// OpusPackets returns the Opus packets of testdata/speech.opus (12 s of
// speech, 20 ms frames), read with recorder/ogg's Reader.
func OpusPackets(tb testing.TB) [][]byte {
	tb.Helper()
	f, err := os.Open(Path("speech.opus"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r := ogg.NewReader(f, 0)
	var out [][]byte
	for i := 0; ; i++ {
		p, err := r.NextPacket()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		if i < 2 { // OpusHead, OpusTags
			continue
		}
		out = append(out, bytes.Clone(p.Data))
	}
	return out
}

// IVF returns the frames of an IVF file in testdata.
func IVF(tb testing.TB, name string) [][]byte {
	tb.Helper()
	b, err := os.ReadFile(Path(name))
	if err != nil {
		tb.Fatal(err)
	}
	frames, err := parseIVF(b)
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return frames
}

func parseIVF(b []byte) ([][]byte, error) {
	if len(b) < 32 || string(b[:4]) != "DKIF" {
		return nil, errors.New("not an IVF file")
	}
	hl := int(binary.LittleEndian.Uint16(b[6:]))
	b = b[hl:]
	var out [][]byte
	for len(b) >= 12 {
		n := int(binary.LittleEndian.Uint32(b))
		if len(b) < 12+n {
			return nil, errors.New("truncated IVF frame")
		}
		out = append(out, b[12:12+n])
		b = b[12+n:]
	}
	return out, nil
}

// H264AccessUnits returns the access units (Annex B, with start codes) of
// testdata/h264.h264.
func H264AccessUnits(tb testing.TB) [][]byte {
	tb.Helper()
	b, err := os.ReadFile(Path("h264.h264"))
	if err != nil {
		tb.Fatal(err)
	}
	var aus [][]byte
	var cur []byte
	for _, nal := range SplitAnnexB(b) {
		typ := nal[0] & 0x1f
		newAU := typ == 9 || typ == 7 || ((typ == 1 || typ == 5) && len(nal) > 1 && nal[1]&0x80 != 0 && sliceSeen(cur))
		if newAU && sliceSeen(cur) {
			aus = append(aus, cur)
			cur = nil
		}
		cur = append(cur, 0, 0, 0, 1)
		cur = append(cur, nal...)
	}
	if len(cur) > 0 {
		aus = append(aus, cur)
	}
	return aus
}

func sliceSeen(au []byte) bool {
	for _, nal := range SplitAnnexB(au) {
		if t := nal[0] & 0x1f; t == 1 || t == 5 {
			return true
		}
	}
	return false
}

// SplitAnnexB splits an Annex B byte stream into NAL units.
func SplitAnnexB(b []byte) [][]byte {
	var nals [][]byte
	start := -1
	for i := 0; i+2 < len(b); i++ {
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			if start >= 0 {
				end := i
				if end > start && b[end-1] == 0 {
					end--
				}
				nals = append(nals, b[start:end])
			}
			start = i + 3
			i += 2
		}
	}
	if start >= 0 && start < len(b) {
		nals = append(nals, b[start:])
	}
	return nals
}
