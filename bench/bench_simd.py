#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
bench_simd.py - runs build/bench/bench_simd (ragd's SIMD index classes against FAISS's own,
interleaved in one process; CPU time per search, recall, HNSW build time) over a fixed set of
configurations and writes them, with the command of each and the load average around it, to one
JSON file for bench/report.py. Optionally adds the efConstruction x efSearch sweep on real
vectors: a Flat ragd store of real text (index.faiss, e.g. kept by `bench_real.py --keep DIR`)
and its questions (DIR/queries.txt).

Usage: bench_simd.py [--out bench/results/simd.json] [--real-dir DIR] [--efcs 40,128]
                     [--quick]
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, "build", "bench", "bench_simd")

# (label, args): the A/B runs. Sizes keep FAISS's scalar HNSW build to about a minute here.
AB = [
    ("flat-100k-384-uniform", ["--n", "100000", "--dims", "384", "--factory", "Flat",
                               "--queries", "100", "--dist", "uniform"]),
    ("flat-20k-1024-clustered", ["--n", "20000", "--dims", "1024", "--factory", "Flat",
                                 "--queries", "100", "--dist", "clustered"]),
    ("hnsw32-50k-384-clustered", ["--n", "50000", "--dims", "384", "--factory", "HNSW32",
                                  "--queries", "300", "--ef", "64", "--dist", "clustered"]),
    ("hnsw32-20k-1024-clustered", ["--n", "20000", "--dims", "1024", "--factory", "HNSW32",
                                   "--queries", "300", "--ef", "64", "--dist", "clustered"]),
]


def run(label, args):
    cmd = [BIN] + args
    before = os.getloadavg()
    t = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    r.update({"label": label, "command": " ".join(["build/bench/bench_simd"] + args),
              "load_before": [round(x, 2) for x in before],
              "load_after": [round(x, 2) for x in os.getloadavg()],
              "wall_s": round(time.time() - t, 1)})
    print("== %s: %s" % (label, json.dumps({k: r.get(k) for k in (
        "faiss_search_cpu_ms", "ragd_search_cpu_ms", "speedup_p50", "faiss_build_ms",
        "ragd_build_ms")})), file=sys.stderr)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "simd.json"))
    ap.add_argument("--real-dir", help="a bench_real.py --keep dir (data/index.faiss, queries.txt)")
    ap.add_argument("--efcs", default="40,128")
    ap.add_argument("--efs", default="64,128,256,512")
    ap.add_argument("--quick", action="store_true", help="A/B runs only")
    args = ap.parse_args()
    res = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "nproc": os.cpu_count(), "ab": [], "real": []}
    for label, a in AB:
        res["ab"].append(run(label, a))
    if args.real_dir and not args.quick:
        idx = os.path.join(args.real_dir, "data", "index.faiss")
        q = os.path.join(args.real_dir, "queries.txt")
        for efc in args.efcs.split(","):
            res["real"].append(run("real-hnsw32-efc%s" % efc, [
                "--index", idx, "--qtxt", q, "--factory", "HNSW32", "--ab", "0", "--k", "10",
                "--efc", efc, "--efs", args.efs]))
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
