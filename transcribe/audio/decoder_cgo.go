//go:build cgo && !nolibopus

package audio

// newDefaultDecoder is libopus in cgo builds.
var newDefaultDecoder newDecoderFunc = newLibopusDecoder

// defaultDecoderName names the decoder used by this build.
const defaultDecoderName = "libopus"
