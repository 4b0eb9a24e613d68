package audio

import (
	"bytes"
	"errors"
	"testing"
)

func TestTruncated(t *testing.T) {
	for _, name := range []string{"call04.ogg", "call04.webm", "call04.mkv", "av.webm"} {
		data := readTestdata(t, name)
		for _, cut := range []int{10, 60, len(data) / 3, len(data) * 3 / 4, len(data) - 1} {
			pcm, err := decodeBytes(t, data[:cut], contentTypeOf(name), Options{})
			var fe *FormatError
			if !errors.Is(err, ErrTruncated) || !errors.As(err, &fe) {
				t.Errorf("%s cut at %d of %d: err = %v, want a *FormatError wrapping ErrTruncated", name, cut, len(data), err)
				continue
			}
			if cut > len(data)/2 && len(pcm) < outRate {
				t.Errorf("%s cut at %d: only %d samples decoded before the error", name, cut, len(pcm))
			}
		}
	}
	// A live-style WebM (unknown sizes) cut inside a block.
	s := readOpusStream(t, "call04.ogg")
	live := buildWebM(t, s, "A_OPUS", nil)
	if _, err := decodeBytes(t, live[:len(live)-5], ContentTypeWebM, Options{}); !errors.Is(err, ErrTruncated) {
		t.Errorf("live WebM cut in a block: %v, want ErrTruncated", err)
	}
	// Chunks yields what it decoded, then the error.
	var chunks int
	var last error
	for a, err := range Chunks(t.Context(), bytes.NewReader(readTestdata(t, "conversation.ogg")[:100000]), ContentTypeOgg, Options{}) {
		if err != nil {
			last = err
			break
		}
		if len(a.Samples) > 0 {
			chunks++
		}
	}
	if chunks == 0 || !errors.Is(last, ErrTruncated) {
		t.Errorf("truncated conversation: %d chunks then %v; want some chunks then ErrTruncated", chunks, last)
	}
}

func TestCorrupt(t *testing.T) {
	s := readOpusStream(t, "call04.ogg")
	ogg := readTestdata(t, "call04.ogg")
	webmData := readTestdata(t, "call04.webm")
	flip := func(b []byte, at int) []byte {
		c := bytes.Clone(b)
		c[at] ^= 0x5a
		return c
	}
	badPacket := opusStream{head: s.head, packets: append([][]byte{{0xfb, 0x00}}, s.packets...)}
	sixChannels := bytes.Clone(s.head)
	sixChannels[9] = 6
	tests := []struct {
		name string
		data []byte
		ct   string
		want error
	}{
		{"ogg page checksum", flip(ogg, len(ogg)/2), ContentTypeOgg, ErrCorrupt},
		{"ogg capture pattern", flip(ogg, 0), ContentTypeOgg, ErrCorrupt},
		{"ogg as webm", ogg, ContentTypeWebM, ErrCorrupt},
		{"webm as ogg", webmData, ContentTypeOgg, ErrCorrupt},
		{"garbage webm", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 100), ContentTypeWebM, ErrCorrupt},
		{"garbage ogg", bytes.Repeat([]byte("not an ogg page "), 10), ContentTypeOgg, ErrCorrupt},
		{"webm EBML header", flip(webmData, 5), ContentTypeWebM, ErrCorrupt},
		{"opus packet with zero frames (ogg)", buildOgg(t, badPacket, nil), ContentTypeOgg, ErrCorrupt},
		{"opus packet with zero frames (webm)", buildWebM(t, badPacket, "A_OPUS", nil), ContentTypeWebM, ErrCorrupt},
		{"vorbis in webm", buildWebM(t, s, "A_VORBIS", nil), ContentTypeWebM, ErrUnsupported},
		{"six channel opus", buildOgg(t, opusStream{head: sixChannels, packets: s.packets}, nil), ContentTypeOgg, ErrUnsupported},
		{"video only", readTestdata(t, "video-only.webm"), ContentTypeWebM, ErrNoAudio},
		{"mp3 content type", ogg, "audio/mpeg", ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for a, err := range Chunks(t.Context(), bytes.NewReader(tt.data), tt.ct, Options{}) {
				if err == nil {
					if len(a.Samples) == 0 {
						t.Error("empty chunk")
					}
					continue
				}
				if !errors.Is(err, tt.want) {
					t.Errorf("err = %v, want %v", err, tt.want)
				}
				t.Logf("%v", err)
				return
			}
			t.Errorf("no error, want %v", tt.want)
		})
	}
}

func TestDecodeCallbackError(t *testing.T) {
	stop := errors.New("enough")
	n := 0
	err := Decode(t.Context(), bytes.NewReader(readTestdata(t, "call04.webm")), ContentTypeWebM, Options{}, func(p []int16) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Errorf("Decode returned %v after %d calls, want the callback's error after 3", err, n)
	}
}
