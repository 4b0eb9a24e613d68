#!/usr/bin/env bash
# Runs every Fuzz* target in the module for a short time each (make fuzz).
#
# A target fails when go test fails AND the fuzzer wrote a new failing input
# under testdata/fuzz/<target>/. A nonzero exit with no new input is Go's
# fuzz-coordinator race at the -fuzztime boundary (golang/go#75804, fixed in
# Go 1.27: "context deadline exceeded" with no crasher); it is reported as a
# flake and does not fail the run.
set -uo pipefail
cd "$(dirname "$0")/.."
t=${1:-20s}
pass=0 flaky=0 failed=()
corpus() { ls "$1" 2>/dev/null | sort; }
while read -r f; do
  dir=$(dirname "$f")
  for name in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$f" | sed 's/func //'); do
    echo "fuzz: $dir $name ($t)"
    before=$(corpus "$dir/testdata/fuzz/$name")
    log=$(mktemp)
    if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$t" "./$dir" >"$log" 2>&1; then
      pass=$((pass + 1))
    elif [ "$(corpus "$dir/testdata/fuzz/$name")" != "$before" ]; then
      cat "$log"
      failed+=("$dir $name")
    elif grep -q 'context deadline exceeded' "$log"; then
      echo "fuzz: $name: coordinator stopped with 'context deadline exceeded' and wrote no input (golang/go#75804); counted as a flake"
      flaky=$((flaky + 1))
    else
      cat "$log"
      failed+=("$dir $name (no input written)")
    fi
    rm -f "$log"
  done
done < <(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' . | sort)
echo "fuzz: ${pass} passed, ${flaky} coordinator flakes, ${#failed[@]} failed"
for x in "${failed[@]}"; do echo "fuzz: FAILED $x"; done
[ ${#failed[@]} -eq 0 ]
