#!/bin/sh
# Regenerates the test media in this directory (committed; run by hand).
# Needs opusenc, sox and ffmpeg with libvpx, libaom and libx264.
set -eu
cd "$(dirname "$0")"
S=../../../../testdata/speech
# 12 s of speech, 20 ms Opus frames, 32 kbit/s.
sox "$S/call01.wav" "$S/call02.wav" -r 48000 -c 1 /tmp/speech12.wav trim 0 12
opusenc --quiet --bitrate 32 --framesize 20 /tmp/speech12.wav speech.opus
rm -f /tmp/speech12.wav
# 4 s of VP8 at 1.5 Mbit/s, 640x360, 30 fps, a keyframe every second.
ffmpeg -v error -y -f lavfi -i testsrc=size=640x360:rate=30 -t 4 -vf noise=alls=12:allf=t -c:v libvpx \
  -b:v 1500k -minrate 1500k -maxrate 1500k -g 30 -keyint_min 30 -deadline realtime -cpu-used 8 vp8.ivf
# 1 s each of VP9, AV1 and H.264 at 320x240 for the depacketizer tests.
ffmpeg -v error -y -f lavfi -i testsrc=size=320x240:rate=30 -t 1 -pix_fmt yuv420p -c:v libvpx-vp9 -b:v 300k -g 15 \
  -deadline realtime -cpu-used 8 vp9.ivf
ffmpeg -v error -y -f lavfi -i testsrc=size=320x240:rate=30 -t 1 -pix_fmt yuv420p -c:v libaom-av1 -b:v 300k -g 15 \
  -cpu-used 8 -usage realtime av1.ivf
ffmpeg -v error -y -f lavfi -i testsrc=size=320x240:rate=30 -t 1 -pix_fmt yuv420p -c:v libx264 -profile:v baseline \
  -b:v 300k -g 15 -bsf:v h264_mp4toannexb -f h264 h264.h264
