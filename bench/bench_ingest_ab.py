#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
bench_ingest_ab.py - ingest cost with the offline embedder, variants side by side: each variant
is a ragd binary plus environment (for example the old binary against the new one, or the new
one with [ingest] commit_batch_bytes = 0), run alternately round by round on the same corpora
into fresh data dirs, pinned to one core (taskset). The measure is the ingest process's CPU
seconds (user + sys, from the kernel's accounting of the child), which a shared machine disturbs
far less than wall time; the result is MB of input per CPU second, median over the rounds, and
each variant's ratio to the first. Writes a JSON result file. Not a test: nothing is asserted.

Corpora (--corpus, repeatable): md-docs (the repository's docs/ repeated --copies times with
unique paragraph suffixes, as bench_core.py), md-node (Node.js API markdown from
/usr/share/doc/nodejs/api, decompressed), html (the bench_real corpus, --html-bytes of it).
"""
import argparse
import gzip
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_core  # noqa: E402
import bench_real  # noqa: E402


def corpus_node(dst):
    src = "/usr/share/doc/nodejs/api"
    if not os.path.isdir(src):
        raise SystemExit("bench_ingest_ab: %s missing (apt-get install nodejs-doc)" % src)
    os.makedirs(dst)
    for name in sorted(os.listdir(src)):
        if name.endswith(".md.gz"):
            with gzip.open(os.path.join(src, name), "rb") as f:
                data = f.read()
            with open(os.path.join(dst, name[:-3]), "wb") as f:
                f.write(data)


def corpus_make(kind, dst, args):
    if kind == "md-docs":
        os.makedirs(dst)
        bench_core.make_corpus(dst, args.copies)
    elif kind == "md-node":
        corpus_node(dst)
    elif kind == "html":
        bench_real.corpus_copy(dst, args.html_bytes)
    else:
        raise SystemExit("bench_ingest_ab: unknown corpus %s" % kind)
    return sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(dst) for n in ns)


def ingest_once(binary, env, docs, data, cpu):
    """Runs one ingest into the fresh data dir. Returns: its record (CPU, wall, chunks)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(["taskset", "-c", str(cpu), binary, "ingest", "--path", docs,
                          "--data-dir", data, "--json", "--log-level", "warn"],
                         env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode not in (0, 3):
        raise RuntimeError("ingest failed (%d): %s" % (out.returncode, out.stderr[-1000:]))
    rep = json.loads(out.stdout)
    return {"cpu_s": round((after.ru_utime - before.ru_utime)
                           + (after.ru_stime - before.ru_stime), 3),
            "user_s": round(after.ru_utime - before.ru_utime, 3),
            "sys_s": round(after.ru_stime - before.ru_stime, 3),
            "wall_s": round(wall, 3),
            "chunks": rep["chunks"]["added"], "documents": rep["documents"]["added"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", action="append", required=True,
                    help="NAME=BINARY[,KEY=VALUE...]: a binary and extra environment (repeatable; "
                         "the first is the baseline of the ratios)")
    ap.add_argument("--corpus", action="append", default=None,
                    help="md-docs | md-node | html (repeatable; default md-docs)")
    ap.add_argument("--copies", type=int, default=60, help="md-docs: copies of docs/")
    ap.add_argument("--html-bytes", type=int, default=30_000_000, help="html: corpus bytes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=1, help="the core the ingests are pinned to")
    ap.add_argument("--factory", default="Flat",
                    help="RAGD_STORE_INDEX_FACTORY for every run (Flat: the write path alone)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "ingest-ab.json"))
    args = ap.parse_args()
    corpora = args.corpus or ["md-docs"]
    variants = []
    for spec in args.variant:
        name, _, rest = spec.partition("=")
        parts = rest.split(",")
        env = dict(os.environ)
        env.update({"RAGD_STORE_INDEX_FACTORY": args.factory, "RAGD_EMBED_PROVIDER": "local"})
        for kv in parts[1:]:
            k, _, v = kv.partition("=")
            env[k] = v
        variants.append({"name": name, "binary": os.path.abspath(parts[0]), "env": env,
                         "extra": parts[1:]})
    tmp = tempfile.mkdtemp(prefix="ragd-ingest-ab-")
    result = {"bench": "ingest_ab", "rounds": args.rounds, "cpu": args.cpu,
              "factory": args.factory, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                time.gmtime()),
              "loadavg_before": open("/proc/loadavg").read().split()[:3],
              "variants": [{"name": v["name"], "binary": v["binary"], "env": v["extra"]}
                           for v in variants],
              "corpora": {}}
    try:
        for kind in corpora:
            docs = os.path.join(tmp, "corpus-" + kind)
            nbytes = corpus_make(kind, docs, args)
            runs = {v["name"]: [] for v in variants}
            for rnd in range(args.rounds):
                # alternate the order each round: neither variant always runs first
                order = variants if rnd % 2 == 0 else list(reversed(variants))
                for v in order:
                    data = os.path.join(tmp, "data")
                    shutil.rmtree(data, ignore_errors=True)
                    rec = ingest_once(v["binary"], v["env"], docs, data, args.cpu)
                    rec["loadavg"] = open("/proc/loadavg").read().split()[0]
                    runs[v["name"]].append(rec)
                    print("%-8s round %d %-12s cpu %.2f s (user %.2f sys %.2f) wall %.2f s, "
                          "%d chunks" % (kind, rnd + 1, v["name"], rec["cpu_s"], rec["user_s"],
                                         rec["sys_s"], rec["wall_s"], rec["chunks"]), flush=True)
            summary = {}
            base = None
            for v in variants:
                cpu = statistics.median(r["cpu_s"] for r in runs[v["name"]])
                mbps = nbytes / 1e6 / cpu
                if base is None:
                    base = cpu
                summary[v["name"]] = {"cpu_s_median": round(cpu, 3),
                                      "sys_s_median": round(statistics.median(
                                          r["sys_s"] for r in runs[v["name"]]), 3),
                                      "mb_per_cpu_s": round(mbps, 2),
                                      "cpu_ratio_to_first": round(cpu / base, 3)}
                print("%-8s %-12s median cpu %.2f s, %.2f MB per CPU second, x%.3f of %s" % (
                    kind, v["name"], cpu, mbps, cpu / base, variants[0]["name"]), flush=True)
            result["corpora"][kind] = {"bytes": nbytes, "runs": runs, "summary": summary}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
