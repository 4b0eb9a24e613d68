//go:build !cgo || nolibopus

package audio

// newDefaultDecoder is pure-Go pion/opus in CGO_ENABLED=0 builds and with
// the nolibopus tag.
var newDefaultDecoder newDecoderFunc = newPionDecoder

// defaultDecoderName names the decoder used by this build.
const defaultDecoderName = "pion"
