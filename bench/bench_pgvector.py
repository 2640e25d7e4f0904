#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
bench_pgvector.py - the pgvector backend next to faiss in one run. For each size it fills a faiss
data dir with synthetic unit vectors (bench_load), copies it into Postgres with `ragd migrate --to
pgvector` (the copy rate is pgvector's write rate: rows, tsvector, HNSW maintenance), serves both
stores with the release ./ragd and sends the same POST /retrieve queries (vector mode, k = 10) to
each: p50/p95 latency at concurrency 1, and recall@10 of pgvector's HNSW (hnsw_ef_search as
configured) against faiss Flat, which is exact. It also ingests the repository's docs/ through the
text pipeline on both backends (chunks per second, local embedder).

Postgres here is PGlite (Postgres 18 compiled to WebAssembly, one backend behind a multiplexer),
started from tests/pg: much slower than a native server, so read the pgvector numbers as an upper
bound on latency and a lower bound on throughput. Nothing here asserts a timing. Writes JSON.
"""
import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BB = os.path.join(REPO, "build", "bench")
K = 10


def post(port, path, body, timeout=3600):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data)


class Daemon:
    def __init__(self, binary, data, env, log):
        self.port = free_port()
        self.p = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:%d" % self.port,
                                   "--data-dir", data, "--no-ingest"], env=env,
                                  stdout=log, stderr=log, start_new_session=True)
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                c.getresponse().read()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("daemon did not start")

    def stop(self):
        self.p.terminate()
        self.p.wait(60)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run_queries(port, queries):
    lat, answers = [], []
    for q in queries:
        t0 = time.perf_counter()
        status, ans = post(port, "/retrieve", {"query": q, "k": K, "mode": "vector",
                                               "min_score": -1})
        lat.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise RuntimeError("retrieve: %s" % ans)
        answers.append([(r["source"], r["text"]) for r in ans["results"]])
    return {"p50_ms": pct(lat, 0.5), "p95_ms": pct(lat, 0.95), "queries": len(queries)}, answers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "release", "ragd"))
    ap.add_argument("--sizes", default="10000")
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--out", default="bench/results/pgvector.json")
    opts = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ragd-bench-pg-")
    log = open(os.path.join(tmp, "log"), "wb")
    port = free_port()
    pid_file = os.path.join(tmp, "pg.pid")
    url = subprocess.run([os.path.join(REPO, "tests", "pg", "start.sh"), str(port),
                          os.path.join(tmp, "pg"), pid_file, os.path.join(tmp, "pg.log")],
                         check=True, capture_output=True, text=True).stdout.strip()
    base = dict(os.environ, RAGD_EMBED_PROVIDER="local", RAGD_EMBED_DIMS=str(opts.dims),
                RAGD_LOG_LEVEL="warn")
    out = {"machine_note": "2 cores shared with other work; PGlite is Postgres compiled to "
                           "WebAssembly, slower than a native server", "dims": opts.dims,
           "k": K, "ef_search": 64, "sizes": []}
    try:
        queries = ["benchmark question %d about topic %d" % (i, i * 7 % 101)
                   for i in range(opts.queries)]
        for n in [int(x) for x in opts.sizes.split(",")]:
            fdata = os.path.join(tmp, "faiss%d" % n)
            subprocess.run([os.path.join(BB, "bench_load"), "--data-dir", fdata, "--n", str(n),
                            "--dims", str(opts.dims), "--out", os.path.join(tmp, "v%d" % n)],
                           check=True, capture_output=True)
            schema = "bench_%d" % n
            env_pg = dict(base, VECTOR_BACKEND="pgvector", DATABASE_URL=url,
                          RAGD_STORE_PG_SCHEMA=schema)
            t0 = time.time()
            subprocess.run([opts.bin, "migrate", "--to", "pgvector", "--data-dir", fdata],
                           env=env_pg, check=True, capture_output=True)
            copy_s = time.time() - t0
            f = Daemon(opts.bin, fdata, base, log)
            fres, fans = run_queries(f.port, queries)
            f.stop()
            p = Daemon(opts.bin, os.path.join(tmp, "pgdata%d" % n), env_pg, log)
            pres, pans = run_queries(p.port, queries)
            p.stop()
            hits = sum(len(set(a) & set(b)) for a, b in zip(fans, pans))
            total = sum(len(a) for a in fans)
            row = {"chunks": n, "faiss_flat": fres, "pgvector_hnsw": pres,
                   "pgvector_recall_at_10_vs_exact": hits / total if total else None,
                   "pgvector_copy_chunks_per_s": n / copy_s}
            print(json.dumps(row), flush=True)
            out["sizes"].append(row)
        # the text pipeline on both backends: the repository's docs
        for name, env in (("faiss", base), ("pgvector", dict(base, VECTOR_BACKEND="pgvector",
                                                               DATABASE_URL=url,
                                                               RAGD_STORE_PG_SCHEMA="bench_ing"))):
            d = Daemon(opts.bin, os.path.join(tmp, "ing-" + name),
                       dict(env, RAGD_INGEST_ALLOWED_ROOTS=REPO), log)
            t0 = time.time()
            status, rep = post(d.port, "/ingest", {"path": os.path.join(REPO, "docs")})
            secs = time.time() - t0
            d.stop()
            out["ingest_" + name] = {"chunks": rep["chunks"]["added"], "seconds": secs,
                                     "chunks_per_s": rep["chunks"]["added"] / secs}
            print(name, json.dumps(out["ingest_" + name]), flush=True)
    finally:
        try:
            with open(pid_file) as fh:
                os.killpg(int(fh.read().strip()), 9)
        except (OSError, ValueError):
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.join(REPO, opts.out)), exist_ok=True)
    with open(os.path.join(REPO, opts.out), "w") as fh:
        json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
