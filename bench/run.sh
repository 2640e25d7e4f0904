#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make bench`: ragd's benchmarks. Never part of the tests; numbers go to bench/results/*.json,
# docs/BENCHMARKS.md and docs/bench_latency.png are generated from them (bench/report.py).
# Installs what only the benchmarks need: gnuplot (Debian) and the peers, USearch and LanceDB
# (npm, into bench/peer/node_modules, from package-lock.json). Extra arguments go to
# bench_scale.py, e.g.
#   bash bench/run.sh --sizes 10000,100000 --dims 384
# Run on an otherwise idle machine and compare numbers from one run only.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results

if ! command -v gnuplot >/dev/null; then
    echo "== installing gnuplot-nox (plots for docs/BENCHMARKS.md)"
    apt-get install -y --no-install-recommends gnuplot-nox >/dev/null
fi
if command -v npm >/dev/null && { [ ! -d bench/peer/node_modules/usearch ] ||
                                 [ ! -d bench/peer/node_modules/@lancedb/lancedb ]; }; then
    # --omit=optional: LanceDB's optional extras (transformers, openai) are not needed; its
    # linux-x64 native module is a direct, pinned dependency in package.json.
    echo "== installing the peers (npm ci in bench/peer: USearch, LanceDB)"
    (cd bench/peer && npm ci --omit=optional --no-audit --no-fund >/dev/null)
fi
make -s -C bench all
python3 bench/machine.py > bench/results/machine.json

echo "== core: ingest throughput (one core) and /retrieve latency (release build build/release/ragd: a running ./ragd cannot be replaced)"
python3 bench/bench_core.py --bin build/release/ragd --out bench/results/core.json --mb 12
echo "== scale: retrieve over HTTP vs raw FAISS vs USearch and LanceDB, 10k..1M chunks"
python3 bench/bench_scale.py --out bench/results/scale.json "$@"
echo "== ingest with the fake OpenAI server (50 ms per request)"
python3 bench/bench_openai.py --bin build/release/ragd --out bench/results/openai.json
echo "== remote embeddings: cache hit vs miss, N requests in flight vs 1 (fake upstream, 100 ms)"
python3 bench/bench_embed_remote.py --bin build/release/ragd --out bench/results/embed_remote.json
echo "== real text: the modes, concurrency, ef_search, the keyword bound (Debian doc packages)"
bash bench/corpus.sh
python3 bench/bench_real.py --bin build/release/ragd --out bench/results/real-hybrid.json --bounds 4000,1000
echo "== RSS while an ingest runs (a 10k x 384 store from bench_load)"
rm -f bench/results/rss-ingest.json
rss_tmp=$(mktemp -d)
./build/bench/bench_load --data-dir "$rss_tmp/data" --n 10000 --dims 384 --out "$rss_tmp/v" >/dev/null
python3 bench/bench_rss_ingest.py --data-dir "$rss_tmp/data" --dims 384 --factory auto
rm -rf "$rss_tmp"
echo "== report"
python3 bench/report.py
if [ -f bench/qa/docs.jsonl ]; then
    echo "== embedder quality: local embedder vs BM25 on the project's docs (bench/embed_tune)"
    ./build/bench/embed_tune --corpus docs --qa bench/qa/docs.jsonl || true
fi
