#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Starts PGlite (Postgres 18 in WASM, with pgvector 0.8) behind the Postgres wire protocol for
# the pgvector tests: installs the pinned npm packages of tests/pg/package-lock.json when missing
# (npm ci; the npm registry is the only network it needs), then runs pglite-server on PORT with its
# database in DIR, and waits until it accepts connections.
# Usage: tests/pg/start.sh PORT DIR PIDFILE LOGFILE   (prints the DATABASE_URL on success)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port=$1 dir=$2 pidfile=$3 log=$4
if [ ! -x "$here/node_modules/.bin/pglite-server" ]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
mkdir -p "$dir"
# Node 18 has CustomEvent only behind a flag; pglite-socket needs it.
flags=""
if node --experimental-global-customevent -e 0 >/dev/null 2>&1; then
    flags="--experimental-global-customevent"
fi
# -m 8: up to 8 connections, multiplexed onto PGlite's one backend
setsid node $flags "$here/node_modules/@electric-sql/pglite-socket/dist/scripts/server.js" \
    -p "$port" -d "$dir" -e @electric-sql/pglite-pgvector:vector -m 8 >"$log" 2>&1 &
echo $! >"$pidfile"
url="postgresql://postgres@127.0.0.1:$port/postgres?sslmode=disable"
for _ in $(seq 1 600); do
    if grep -q "listening" "$log" 2>/dev/null; then echo "$url"; exit 0; fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "pglite-server exited:" >&2; cat "$log" >&2; exit 1
    fi
    sleep 0.2
done
echo "pglite-server did not listen within 120 s:" >&2; cat "$log" >&2
exit 1
