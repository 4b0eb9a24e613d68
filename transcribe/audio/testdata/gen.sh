#!/usr/bin/env bash
# Regenerates the small Opus recordings the audio tests decode. Needs sox,
# opus-tools (opusenc) and ffmpeg (libopus, libvpx, libx264). The speech comes
# from the shared espeak-ng clips (48 kHz mono): SPEECH points at them.
# Outputs are committed; rerunning gives equivalent (not byte-identical) files.
set -euo pipefail
cd "$(dirname "$0")"
SPEECH=${SPEECH:-../../../testdata/speech}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }

# One utterance in each container (32 kbit/s, 20 ms frames as WebRTC sends).
opusenc --quiet --bitrate 32 --framesize 20 "$SPEECH/call04.wav" call04.ogg
ff -i "$SPEECH/call04.wav" -c:a libopus -b:a 32k -frame_duration 20 call04.webm
ff -i "$SPEECH/call04.wav" -c:a libopus -b:a 32k -frame_duration 20 -f matroska call04.mkv

# Stereo: a different utterance on each side.
ff -i "$SPEECH/call01.wav" -i "$SPEECH/call02.wav" \
  -filter_complex '[0:a][1:a]amerge=inputs=2,pan=stereo|c0=c0|c1=c1[a]' -map '[a]' \
  -c:a libopus -b:a 48k stereo.webm

# Video (tiny VP8) plus Opus audio, video track first.
ff -f lavfi -i testsrc=size=64x48:rate=5 -i "$SPEECH/call03.wav" -map 0:v -map 1:a \
  -c:v libvpx -b:v 20k -c:a libopus -b:a 24k -shortest av.webm

# Video only: no audio track.
ff -f lavfi -i testsrc=size=64x48:rate=5 -t 1 -c:v libvpx -b:v 20k video-only.webm

# H.264 + Opus in Matroska, as the recorder writes for H.264 publishers.
ff -f lavfi -i testsrc=size=64x48:rate=5 -i "$SPEECH/call05.wav" -map 0:v -map 1:a \
  -c:v libx264 -preset ultrafast -c:a libopus -b:a 24k -shortest h264.mkv

# A 1 kHz tone for the decode round trip: 2 s at -12 dBFS, fullband 64 kbit/s.
sox -n -r 48000 -c 1 -b 16 "$tmp/tone.wav" synth 2 sine 1000 vol 0.25
opusenc --quiet --bitrate 64 "$tmp/tone.wav" tone.ogg

# Aliasing probe: 1 kHz plus a strong 13 kHz tone. Decoding to 16 kHz must
# not fold 13 kHz down to 3 kHz.
sox -n -r 48000 -c 1 -b 16 "$tmp/alias.wav" synth 2 sine 1000 sine 13000 remix 1v0.4,2v0.4
opusenc --quiet --bitrate 96 "$tmp/alias.wav" alias.ogg

# A conversation with pauses: the six clips separated by 1.2 s of silence,
# then clips 1-3 run together with 0.25 s gaps (a long turn), 16 kbit/s.
sox -n -r 48000 -c 1 -b 16 "$tmp/gap.wav" trim 0 1.2
sox -n -r 48000 -c 1 -b 16 "$tmp/short.wav" trim 0 0.25
sox "$SPEECH/call01.wav" "$tmp/gap.wav" "$SPEECH/call02.wav" "$tmp/gap.wav" \
  "$SPEECH/call03.wav" "$tmp/gap.wav" "$SPEECH/call04.wav" "$tmp/gap.wav" \
  "$SPEECH/call05.wav" "$tmp/gap.wav" "$SPEECH/call06.wav" "$tmp/gap.wav" \
  "$SPEECH/call01.wav" "$tmp/short.wav" "$SPEECH/call02.wav" "$tmp/short.wav" \
  "$SPEECH/call03.wav" "$tmp/conv.wav"
opusenc --quiet --bitrate 16 --framesize 20 "$tmp/conv.wav" conversation.ogg
ff -i "$tmp/conv.wav" -c:a libopus -b:a 16k -frame_duration 20 conversation.webm

# Silence only, 3 s (digital silence, as DTX and mute are recorded).
sox -n -r 48000 -c 1 -b 16 "$tmp/silence.wav" trim 0 3
opusenc --quiet --bitrate 16 "$tmp/silence.wav" silence.ogg
ff -i "$tmp/silence.wav" -c:a libopus -b:a 16k silence.webm
