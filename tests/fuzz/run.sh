#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the libFuzzer targets built in DIR (make fuzz-build) over their seed corpora in
# tests/fuzz/corpus/<target>/ (read only: new inputs go to a temp dir).
#   run.sh DIR short       a fixed-seed pass of each (-seed=1, a fixed number of runs): make test
#   run.sh DIR long SECS   SECS seconds of each: make fuzz (FUZZ_SECONDS)
# A crash or sanitizer report leaves its input in tests/fuzz/crashes/ for a regression seed.
# Ends with "fuzz: N passed, N failed" (one per target); exit status 1 when a target failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:?usage: run.sh DIR short|long [SECONDS]}
MODE=${2:-short}
SECS=${3:-60}
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
passed=0
failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p tests/fuzz/crashes
for bin in "$DIR"/fuzz_*; do
    [ -x "$bin" ] || continue
    case "$bin" in *.o|*.d) continue ;; esac
    name=$(basename "$bin")
    seeds="tests/fuzz/corpus/${name#fuzz_}"
    mkdir -p "$work/$name"
    if [ "$MODE" = long ]; then
        limits=(-max_total_time="$SECS")
    else
        limits=(-seed=1 -runs=15000 -max_total_time=60)
    fi
    echo "== fuzz: $name (${limits[*]})"
    "$bin" "${limits[@]}" -rss_limit_mb=2048 -artifact_prefix="tests/fuzz/crashes/$name-" \
        "$work/$name" "$seeds" >"$work/$name.log" 2>&1
    rc=$?
    grep -E '^(Done|INFO: seed|#[0-9]+ *DONE)' "$work/$name.log" | tail -n 2
    if [ "$rc" -ne 0 ]; then
        tail -n 40 "$work/$name.log"
        echo "!! $name failed (status $rc); the input is in tests/fuzz/crashes/"
        failed=$((failed + 1))
    else
        passed=$((passed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
