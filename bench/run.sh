#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make bench`: ragd's benchmarks. Never part of the tests; numbers go to bench/results/*.json and
# are printed. Run on an otherwise idle machine and compare numbers from one run only.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
echo "== core: ingest throughput and /retrieve latency (release build ./ragd)"
python3 bench/bench_core.py --bin ./ragd --out bench/results/core.json "$@"
echo "== remote embeddings: cache hit vs miss, N requests in flight vs 1 (fake upstream, 100 ms)"
python3 bench/bench_embed_remote.py --bin ./ragd --out bench/results/embed_remote.json
if [ -f bench/Makefile ] && [ -f bench/qa/docs.jsonl ]; then
    echo "== embedder quality: local embedder vs BM25 on the project's docs (bench/embed_tune)"
    make -s -C bench all
    ./build/bench/embed_tune --corpus docs --qa bench/qa/docs.jsonl || true
fi
