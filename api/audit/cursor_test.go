package audit

import (
	"errors"
	"testing"
)

func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(1))
	f.Add(encodeCursor(1 << 62))
	f.Add("")
	f.Add("YTE6LTE")
	f.Fuzz(func(t *testing.T, c string) {
		seq, err := decodeCursor(c)
		if err != nil {
			if !errors.Is(err, ErrInvalidCursor) {
				t.Fatalf("error %v is not ErrInvalidCursor", err)
			}
			return
		}
		if seq < 1 {
			t.Fatalf("accepted seq %d", seq)
		}
		back, err := decodeCursor(encodeCursor(seq))
		if err != nil || back != seq {
			t.Fatalf("round trip %d: %d, %v", seq, back, err)
		}
	})
}
