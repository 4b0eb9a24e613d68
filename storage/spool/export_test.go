package spool

import "os"

// SetWriteHook replaces how Put writes an object's bytes to its temp file,
// to inject write errors.
func SetWriteHook(s *Spool, fn func(f *os.File, p []byte) (int, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fn == nil {
		fn = (*os.File).Write
	}
	s.writeData = fn
}
