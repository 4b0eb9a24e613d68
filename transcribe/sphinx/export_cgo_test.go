//go:build cgo

package sphinx

// InUse reports how many decoders are held by running Transcribe calls.
func (e *Engine) InUse() int { return len(e.slots) }
