#!/usr/bin/env bash
# Installs what Custodian needs to build, run and test, idempotently:
# Debian packages, Go modules, Go tools and npm packages. Safe to run often:
# it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all} # run | test | all

apt_run=(pkg-config libopus-dev libpocketsphinx-dev pocketsphinx-en-us)
apt_test=(chromium ffmpeg pocketsphinx-testdata flite sox opus-tools janus iproute2 util-linux)

want=("${apt_run[@]}")
if [ "$what" != run ]; then
  want+=("${apt_test[@]}")
  # Node.js and npm: any installation will do (NodeSource's nodejs ships
  # its own npm and conflicts with Debian's npm package), so Debian's are
  # installed only when the commands are missing.
  command -v node >/dev/null || want+=(nodejs)
  command -v npm >/dev/null || want+=(npm)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v go >/dev/null || { echo "deps: Go 1.26 is required (https://go.dev/dl/)"; exit 1; }
go mod download

gobin=$(go env GOPATH)/bin
install_tool() { # name module@version
  if [ ! -x "$gobin/$1" ]; then
    echo "deps: go install $2"
    GOFLAGS= go install "$2"
  fi
}
if [ "$what" != run ]; then
  install_tool versitygw github.com/versity/versitygw/cmd/versitygw@v1.8.0
  install_tool benchstat golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
  if [ -f e2e/package.json ] && [ ! -d e2e/node_modules/playwright-core ]; then
    echo "deps: npm ci (e2e)"
    (cd e2e && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
