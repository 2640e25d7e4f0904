#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Side-by-side comparison of the retrieval modes with `ragd eval` (docs/RETRIEVAL.md): vector,
# keyword, hybrid with each fusion, each with and without diversity, on the labeled set over
# docs/ (tests/eval/docs_qa.jsonl) and on the embedder study's sets (bench/qa/*.jsonl; the
# Node.js one needs NODE_DOCS=/dir/with/nodejs/api/md, see bench/embed_tune.sh), and on the
# PostgreSQL administration manual (bench/qa/postgres_admin.jsonl, corpus by bench/pgdocs.sh;
# PG_DOCS=off skips it).
# Usage: scripts/eval-modes.sh [BIN]   (default ./ragd; prints a markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-./ragd}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$BIN" ingest --path docs --data-dir "$work/docs" --log-level error >/dev/null
sets=("tests/eval/docs_qa.jsonl:$work/docs" "bench/qa/docs.jsonl:$work/docs")
if [ -n "${NODE_DOCS:-}" ] && [ -d "$NODE_DOCS" ]; then
    "$BIN" ingest --path "$NODE_DOCS" --data-dir "$work/node" --log-level error >/dev/null
    sets+=("bench/qa/nodejs_api.jsonl:$work/node")
fi
if [ "${PG_DOCS:-}" != off ]; then
    if [ -z "${PG_DOCS:-}" ]; then
        PG_DOCS="$work/pgdocs"
        bash bench/pgdocs.sh "$PG_DOCS" 2>/dev/null
    fi
    "$BIN" ingest --path "$PG_DOCS" --data-dir "$work/pg" --log-level error >/dev/null
    sets+=("bench/qa/postgres_admin.jsonl:$work/pg")
fi
echo "| set | mode | diversity | R@1 | R@5 | R@10 | MRR | nDCG@10 | low conf. answerable | low conf. unanswerable | p50 ms |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for s in "${sets[@]}"; do
    qa=${s%%:*}
    dir=${s#*:}
    for mode in "vector" "keyword" "hybrid rrf" "hybrid relative"; do
        for div in off on; do
            set -- $mode
            args=(--mode "$1" --diversity "$div")
            [ $# -gt 1 ] && args+=(--fusion "$2")
            "$BIN" eval --qa "$qa" --data-dir "$dir" --log-level error --json "${args[@]}" |
                python3 -c '
import json, sys
r = json.load(sys.stdin)
print("| %s | %s | %s | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %s | %.2f |" % (
    sys.argv[1].split("/")[-1], sys.argv[2], sys.argv[3], r["recall@1"], r["recall@5"],
    r["recall@10"], r["mrr"], r["ndcg@10"], r["low_confidence_answerable"],
    "%.3f" % r["low_confidence_unanswerable"] if r["unanswerable"] else "-",
    r["latency_ms"]["p50"]))' "$qa" "$mode" "$div"
        done
    done
done
