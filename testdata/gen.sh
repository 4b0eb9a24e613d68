#!/usr/bin/env bash
# Regenerates the committed test media in this folder from the speech
# recordings in testdata/speech (or $SPEECH_DIR).
#
# Needs: opusenc (opus-tools), ffmpeg with libvpx. With the same tool versions
# (Debian's opus-tools 0.2 / libopus 1.3.1 and its ffmpeg) the output is
# byte-for-byte identical: fixed Ogg serial numbers, bit-exact flags, a single
# encoder thread, and no timestamps or host names in any header.
#
# Files:
#   callNN.ogg          Opus, 20 ms frames, 32 kbit/s, from callNN.wav (5-7.4 s each)
#   calls-long.ogg      Opus, all six calls back to back (about 40 s)
#   testsrc-360p30.ivf  VP8 640x360, 30 fps, 4 s, ~500 kbit/s, keyframe every 30 frames
#   testsrc-360p30-1500k.ivf  the same at ~1.5 Mbit/s
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
speech=${SPEECH_DIR:-$here/speech}
if [ ! -d "$speech" ]; then
	echo "gen.sh: speech folder $speech not found (set SPEECH_DIR)" >&2
	exit 1
fi
for tool in opusenc ffmpeg; do
	command -v "$tool" >/dev/null || { echo "gen.sh: $tool not installed (apt-get install opus-tools ffmpeg)" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

opus() { # in.wav out.ogg serial
	opusenc --quiet --serial "$3" --bitrate 32 --framesize 20 --comp 10 \
		--title "$(basename "$2" .ogg)" "$1" "$2"
}

serial=1
for i in 01 02 03 04 05 06; do
	opus "$speech/call$i.wav" "$here/call$i.ogg" "$serial"
	serial=$((serial + 1))
done

# One longer file: the six calls concatenated into one WAV, then encoded.
list=$tmp/list.txt
for i in 01 02 03 04 05 06; do
	echo "file '$speech/call$i.wav'" >>"$list"
done
ffmpeg -nostdin -loglevel error -f concat -safe 0 -i "$list" -map_metadata -1 \
	-fflags +bitexact -flags:a +bitexact -c:a pcm_s16le "$tmp/long.wav"
opus "$tmp/long.wav" "$here/calls-long.ogg" 100

vp8() { # bitrate out.ivf
	ffmpeg -nostdin -loglevel error -y -f lavfi -i "testsrc2=size=640x360:rate=30:duration=4" \
		-map_metadata -1 -fflags +bitexact -flags:v +bitexact \
		-c:v libvpx -threads 1 -deadline good -cpu-used 4 -b:v "$1" -minrate "$1" -maxrate "$1" \
		-g 30 -keyint_min 30 -auto-alt-ref 0 -lag-in-frames 0 -f ivf "$2"
}
vp8 500k "$here/testsrc-360p30.ivf"
vp8 1500k "$here/testsrc-360p30-1500k.ivf"

echo "gen.sh: wrote $(cd "$here" && ls *.ogg *.ivf | tr '\n' ' ')"
