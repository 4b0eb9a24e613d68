package kmsfake_test

import (
	"bytes"
	"io"
)

func ioNopCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
