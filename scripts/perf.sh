#!/usr/bin/env bash
# Capacity report (make perf): for each load, a fresh gateway on embedded
# defaults (built binary, temporary data directory) and the load generator
# in a separate process, both inside a loopback-only network namespace.
# The load generator samples the gateway's CPU and RSS from /proc, its
# /metrics and the namespace's UDP drop counters (--gateway-pid), and the
# results become the table between the perf markers of docs/performance.md.
#
# Knobs (environment):
#   PERF_AUDIO="50 100 200 400 500 600 800"   audio-only session counts
#   PERF_VIDEO="10 25 50 100"         audio + VP8 session counts
#   PERF_MEASURE=45                   seconds of steady state per run
#   PERF_RAMP=40                      sessions started per second
#   PERF_UDP_MUX_PORT=0               webrtc.udp_mux_port of the gateway
#   PERF_OUT=DIR                      keep the JSON results there
#   PERF_DOC=docs/performance.md      document to update ("-": print only)
#   BIN=bin/custodian
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin/custodian}
AUDIO_SESSIONS=${PERF_AUDIO-50 100 200 400 500 600 800}
VIDEO_SESSIONS=${PERF_VIDEO-10 25 50 100}
MEASURE=${PERF_MEASURE:-45}
RAMP=${PERF_RAMP:-40}
MUX=${PERF_UDP_MUX_PORT:-0}
DOC=${PERF_DOC:-docs/performance.md}
AUDIO=testdata/calls-long.ogg
VIDEO=testdata/testsrc-360p30.ivf
PORT=18080

[ -x "$BIN" ] || { echo "perf: $BIN not built (make build)" >&2; exit 1; }

# Re-run inside a new network namespace whose only interface is loopback.
if [ "${PERF_IN_NETNS:-}" != 1 ]; then
  command -v unshare >/dev/null || { echo "perf: unshare (util-linux) is required" >&2; exit 1; }
  exec unshare --net env PERF_IN_NETNS=1 sh -c 'ip link set lo up && exec "$0"' "$0"
fi
ifaces=$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
if [ "$ifaces" != "lo " ]; then
  echo "perf: not in a loopback-only network namespace: $ifaces" >&2
  exit 1
fi

OUT=${PERF_OUT:-$(mktemp -d /tmp/custodian-perf.XXXXXX)}
mkdir -p "$OUT"
echo "perf: results in $OUT"

gw_pid=""
data=""
cleanup() {
  if [ -n "$gw_pid" ]; then kill -TERM "$gw_pid" 2>/dev/null || true; wait "$gw_pid" 2>/dev/null || true; fi
  if [ -n "$data" ]; then rm -rf "$data"; fi
}
trap cleanup EXIT

# run NAME SESSIONS [loadgen flags...]
run() {
  local name=$1 sessions=$2; shift 2
  data=$(mktemp -d /tmp/custodian-perf-data.XXXXXX)
  CUSTODIAN_WEBRTC_INCLUDE_LOOPBACK=true CUSTODIAN_WEBRTC_IPS=127.0.0.1 CUSTODIAN_WEBRTC_UDP_MUX_PORT=$MUX \
    CUSTODIAN_LOG_LEVEL=warn CUSTODIAN_TRANSCRIPTION_WORKERS=0 \
    "$BIN" serve --data "$data" --http 127.0.0.1:$PORT 2>"$OUT/$name.gateway.log" &
  gw_pid=$!
  for _ in $(seq 300); do
    if [ -s "$data/admin.token" ] && (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then break; fi
    kill -0 "$gw_pid" 2>/dev/null || { echo "perf: the gateway did not start:" >&2; cat "$OUT/$name.gateway.log" >&2; exit 1; }
    sleep 0.1
  done
  local ramp_s=$(( (sessions + RAMP - 1) / RAMP ))
  local duration=$(( ramp_s + 3 + MEASURE + 2 ))
  echo "perf: $name: $sessions sessions for ${duration}s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  "$BIN" loadgen --url "http://127.0.0.1:$PORT" --token "$(cat "$data/admin.token")" \
    --sessions "$sessions" --duration "${duration}s" --ramp "$RAMP" --gateway-pid "$gw_pid" \
    --session-prefix "perf-$name" --json "$OUT/$name.json" "$@" | tee "$OUT/$name.txt"
  kill -TERM "$gw_pid"
  wait "$gw_pid" || echo "perf: $name: gateway exited with status $?" >&2
  gw_pid=""
  rm -rf "$data"
  data=""
}

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for n in $AUDIO_SESSIONS; do run "audio-$(printf %04d "$n")" "$n" --audio "$AUDIO"; done
for n in $VIDEO_SESSIONS; do run "video-$(printf %04d "$n")" "$n" --audio "$AUDIO" --video "$VIDEO"; done

table="$OUT/table.md"
{
  echo "Measured $started by \`make perf\` ($(git describe --always --dirty 2>/dev/null || echo unknown)):"
  echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(($(grep MemTotal /proc/meminfo | awk '{print $2}') / 1024)) MiB,"
  echo "Linux $(uname -r), $(go version 2>/dev/null | cut -d' ' -f3 || echo go), webrtc.udp_mux_port=$MUX,"
  echo "${MEASURE} s of steady state per run, sessions started at ${RAMP}/s; load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  "$BIN" loadgen report "$OUT"/*.json
} >"$table"

if [ "$DOC" = "-" ]; then
  cat "$table"
  exit 0
fi
begin='<!-- perf:begin (scripts/perf.sh writes between these markers) -->'
end='<!-- perf:end -->'
if [ ! -f "$DOC" ] || ! grep -qF "$begin" "$DOC"; then
  printf '# Performance\n\n%s\n%s\n' "$begin" "$end" >>"$DOC"
fi
awk -v begin="$begin" -v end="$end" -v table="$table" '
  $0 == begin { print; while ((getline line < table) > 0) print line; skip = 1; next }
  $0 == end { skip = 0 }
  !skip { print }
' "$DOC" >"$DOC.tmp" && mv "$DOC.tmp" "$DOC"
echo "perf: wrote $DOC"
