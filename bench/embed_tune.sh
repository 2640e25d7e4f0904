#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The local embedder's tuning study (docs/EMBEDDER.md): builds bench/embed_tune, prepares the
# general corpus (the Markdown API docs of Debian 12's nodejs-doc package, fetched with
# `apt-get download`, never installed) and runs the grid over both QA sets:
#   docs/                  with bench/qa/docs.jsonl  (ragd's own documentation)
#   nodejs-doc api/*.md    with bench/qa/nodejs_api.jsonl (general technical documentation)
# Usage: bench/embed_tune.sh [embed_tune options...]   default options: --grid full --salts 3 --speed
# The tables are printed and kept in bench/results/embed_tune.md.
# Environment: NODE_DOCS=/dir/with/api/md to use an already extracted copy.
set -euo pipefail
cd "$(dirname "$0")/.."

make -s -C bench embed_tune >/dev/null
work=build/bench
node_docs=${NODE_DOCS:-$work/nodejs-doc/api}
if [ ! -d "$node_docs" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && apt-get download nodejs-doc >/dev/null)
    dpkg-deb -x "$tmp"/nodejs-doc_*.deb "$tmp/root"
    mkdir -p "$node_docs"
    for f in "$tmp"/root/usr/share/doc/nodejs/api/*.md.gz; do
        gzip -dc "$f" >"$node_docs/$(basename "$f" .gz)"
    done
    cp "$tmp"/root/usr/share/doc/nodejs/api/*.md "$node_docs/" 2>/dev/null || true
    basename "$tmp"/nodejs-doc_*.deb >"$node_docs/../VERSION"
fi
[ -f "$node_docs/../VERSION" ] && echo "general corpus: $(cat "$node_docs/../VERSION")" >&2

if [ $# -eq 0 ]; then set -- --grid full --salts 3 --speed; fi
mkdir -p bench/results
"$work/embed_tune" "$@" docs bench/qa/docs.jsonl "$node_docs" bench/qa/nodejs_api.jsonl \
    | tee bench/results/embed_tune.md
