#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every test under AddressSanitizer + UndefinedBehaviorSanitizer: the cmocka unit tests in
# BUILD/tests/, then the integration suite against the real BUILD/ragd binary, then the Django
# example's tests (examples/django) against the same binary. Closes with one line "N passed,
# N failed" summing cmocka's counts, the integration suite's and Django's ("Ran N tests",
# "FAILED (failures=F, errors=E)"), and exits non-zero when anything failed (or when a test binary
# crashed without reporting).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/asan}

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export RAGD_TEST_DATA="$PWD/tests/data"

passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.o|*.d) continue ;; esac
    echo "== unit: $(basename "$t")"
    "$t" >"$log" 2>&1
    rc=$?
    cat "$log"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9][0-9]*\) test(s)\./\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9][0-9]*\) test(s), listed below:/\1/p' "$log" | tail -n 1)
    p=${p:-0}
    f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "!! $(basename "$t") exited with status $rc without a cmocka failure (crash or sanitizer report)"
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
done

# Runs the integration suite (extra environment in "$@") and adds its counts.
integration_run() {
    env "$@" python3 tests/integration/run.py --bin "$BUILD/ragd" 2>&1 | tee "$log"
    local irc=${PIPESTATUS[0]}
    local ip if_
    ip=$(sed -n 's/^integration: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1/p' "$log" | tail -n 1)
    if_=$(sed -n 's/^integration: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\2/p' "$log" | tail -n 1)
    ip=${ip:-0}
    if_=${if_:-0}
    if [ "$irc" -ne 0 ] && [ "$if_" -eq 0 ]; then
        echo "!! integration suite exited with status $irc without reporting failures"
        if_=1
    fi
    passed=$((passed + ip))
    failed=$((failed + if_))
}

echo "== integration (faiss)"
integration_run RAGD_IT_BACKEND=faiss

# The same suites against Postgres + pgvector: PGlite (Postgres in WASM, pinned npm packages in
# tests/pg/) on a free loopback port with its database in a temp dir, stopped on exit.
echo "== integration (pgvector, PGlite)"
pg_tmp=$(mktemp -d)
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
trap 'rm -f "$log"; [ -f "$pg_tmp/pid" ] && kill -9 -- -"$(cat "$pg_tmp/pid")" 2>/dev/null; rm -rf "$pg_tmp"' EXIT
pg_t0=$(date +%s)
if pg_url=$(tests/pg/start.sh "$pg_port" "$pg_tmp/db" "$pg_tmp/pid" "$pg_tmp/log"); then
    integration_run RAGD_IT_BACKEND=pgvector RAGD_IT_DATABASE_URL="$pg_url"
    echo "(the pgvector pass took $(( $(date +%s) - pg_t0 )) s)"
else
    echo "!! PGlite did not start; see above"
    failed=$((failed + 1))
fi

# The Django example's tests (Django's own runner) against the same binary. Debian's
# python3-django belongs to the system python3, which may not be the first python3 on PATH.
echo "== django example (examples/django)"
django_py=""
for py in python3 /usr/bin/python3; do
    if "$py" -c "import django" >/dev/null 2>&1; then django_py=$py; break; fi
done
if [ -z "$django_py" ]; then
    echo "!! no python3 with Django found; run scripts/install-deps.sh (python3-django)"
    failed=$((failed + 1))
else
    ragd_bin="$(cd "$BUILD" && pwd)/ragd"
    (cd examples/django && RAGD_BIN="$ragd_bin" "$django_py" manage.py test orchestration -v 2) \
        >"$log" 2>&1
    drc=$?
    cat "$log"
    dn=$(sed -n 's/^Ran \([0-9][0-9]*\) tests\{0,1\} in .*/\1/p' "$log" | tail -n 1)
    dn=${dn:-0}
    dsum=0
    for n in $(sed -n 's/^FAILED (\(.*\))$/\1/p' "$log" | tail -n 1 | tr ',' '\n' |
               sed -n 's/^ *\(failures\|errors\|unexpected_successes\)=\([0-9][0-9]*\)$/\2/p'); do
        dsum=$((dsum + n))
    done
    if [ "$drc" -ne 0 ] && [ "$dsum" -eq 0 ]; then
        echo "!! the Django tests exited with status $drc without reporting failures"
        dsum=1
    fi
    if [ "$dsum" -gt "$dn" ]; then dn=$dsum; fi
    passed=$((passed + dn - dsum))
    failed=$((failed + dsum))
fi

# A short, fixed-seed pass of each libFuzzer target (tests/fuzz/, built by `make fuzz-build` in
# build/fuzz next to BUILD) under ASan + UBSan; each target counts as one test.
echo "== fuzz (short fixed-seed pass)"
fuzz_dir="$(dirname "$BUILD")/fuzz"
bash tests/fuzz/run.sh "$fuzz_dir" short 2>&1 | tee "$log"
frc=${PIPESTATUS[0]}
fp=$(sed -n 's/^fuzz: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1/p' "$log" | tail -n 1)
ff=$(sed -n 's/^fuzz: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\2/p' "$log" | tail -n 1)
fp=${fp:-0}
ff=${ff:-0}
if [ "$frc" -ne 0 ] && [ "$ff" -eq 0 ]; then
    echo "!! the fuzz pass exited with status $frc without reporting failures (targets built?)"
    ff=1
fi
passed=$((passed + fp))
failed=$((failed + ff))

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
