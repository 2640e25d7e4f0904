#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
bench_real.py - ragd on real text nobody here wrote: the HTML documentation of Python 3.11,
PostgreSQL 15, Node.js 18, Git and Erlang/OTP from Debian's packages (bench/corpus.sh installs
them), at several store sizes (--sizes, in chunks: each size takes the packages' files in turn up
to a byte budget), ingested through ragd's CLI with the offline embedder, then served and driven
over loopback with bench_http per mode (vector, keyword, hybrid = the default) at concurrency 1,
2 and 8. Records, per size: the ingest (MB/s of input, CPU seconds), start-up (index load or
build), /health latency, peak RSS, a first (cold) pass over every question, p50/p95/p99 and
requests/s per mode and concurrency with the server's own time split (timings_ms: embed,
vector_search, keyword_search, fetch, fusion, confidence, context, total); optionally HNSW
recall@10 against Flat per ef_search (--efs, with Flat among --factories), an interleaved A/B
of two binaries on the same store (--ab-bin), and each keyword bound ([retrieve]
keyword_max_matches, --bounds) against the unbounded keyword search: time and the share of its
top-10 kept. The c8/c1 ratio of requests/s (vector) is measured apart, in --scaling-rounds
interleaved c1/c8 pairs (benchlib.scaling_rounds; "scaling" in the JSON), the median of their
ratios being the figure. Nothing here asserts a timing. Writes one JSON file.

Usage: bench_real.py [--bin build/release/ragd] [--out bench/results/real-hybrid.json]
                     [--sizes 10000,100000] [--factories HNSW32] [--concurrency 1,2,8]
                     [--requests 80] [--chunk-tokens 128] [--efs 16,64] [--bounds 4000,1000]
                     [--ab-bin OLD_RAGD --ab-rounds 3] [--keep DIR (reuses its stores)]
"""
import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

from benchlib import free_port, proc_cpu_s, proc_status, scaling_rounds, wait_ready

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BB = os.path.join(REPO, "build", "bench")
K = 10
CORPUS = [("python", "/usr/share/doc/python3.11/html", ("_sources", "_static", "_images",
                                                         "_downloads")),
          ("postgresql", "/usr/share/doc/postgresql-doc-15/html", ()),
          ("nodejs", "/usr/share/doc/nodejs/api", ()),
          ("git", "/usr/share/doc/git-doc", ()),
          ("erlang", "/usr/share/doc/erlang-doc", ())]
PACKAGES = ["python3.11-doc", "postgresql-doc-15", "nodejs-doc", "git-doc", "erlang-doc"]
# HTML bytes per chunk at 128-token chunks, measured on the first three packages (79.6 MB gave
# 70,697 chunks): turns a target size in chunks into a byte budget. The chunk count each size
# really got is recorded next to it.
BYTES_PER_CHUNK = 1126


def corpus_files():
    """Returns: per package, its .html files (sorted), as (name, src, rel) tuples."""
    lists = []
    for name, src, skip in CORPUS:
        if not os.path.isdir(src):
            raise SystemExit("bench_real: %s missing: run bash bench/corpus.sh" % src)
        found = []
        for root, dirs, names in os.walk(src):
            dirs[:] = sorted(d for d in dirs if d not in skip)
            for n in sorted(names):
                if n.endswith(".html"):
                    found.append((name, src, os.path.relpath(os.path.join(root, n), src)))
        lists.append(found)
    return lists


def corpus_copy(dst, budget=None):
    """Copies .html files under dst/<name>: every package's files in turn (one of each, round
    robin, so a smaller size keeps the mix of packages), up to budget bytes (None: all).
    Returns: (files, bytes)."""
    files = size = 0
    lists = corpus_files()
    pos = [0] * len(lists)
    while any(pos[i] < len(lists[i]) for i in range(len(lists))):
        for i, found in enumerate(lists):
            if pos[i] >= len(found):
                continue
            name, src, rel = found[pos[i]]
            pos[i] += 1
            n = os.path.getsize(os.path.join(src, rel))
            if budget is not None and size + n > budget:
                continue
            out = os.path.join(dst, name, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            shutil.copyfile(os.path.join(src, rel), out)
            files += 1
            size += n
    return files, size


def env_for(factory, cfg_path, extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGD_")}
    env.update({"RAGD_STORE_INDEX_FACTORY": factory, "RAGD_EMBED_PROVIDER": "local",
                "RAGD_CONFIG": cfg_path})
    env.update(extra or {})
    return env


class Daemon:
    def __init__(self, binary, data, env, log):
        self.port = free_port()
        self.log = open(log, "ab")
        t = time.perf_counter()
        self.proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:%d" % self.port,
                                      "--data-dir", data, "--no-ingest", "--log-level", "info"],
                                     env=env, stdout=self.log, stderr=self.log)
        wait_ready(self.proc, self.port, 3600, log)
        self.start_s = round(time.perf_counter() - t, 3)

    def health_ms(self, n=50):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            c.request("GET", "/health")
            c.getresponse().read()
            lat.append((time.perf_counter() - t) * 1e3)
        lat.sort()
        return {"p50_ms": round(lat[len(lat) // 2], 3), "p95_ms": round(lat[int(len(lat) * .95)], 3)}

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def bench_http(port, qtxt, conc, requests, mode=None, ef=None, ids=None):
    cmd = [os.path.join(BB, "bench_http"), "--port", str(port), "--queries", qtxt, "--k", str(K),
           "--concurrency", str(conc), "--requests", str(requests)]
    if mode:
        cmd += ["--mode", mode]
    if ef:
        cmd += ["--ef-search", str(ef)]
    if ids:
        cmd += ["--ids", ids]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("bench_http failed: %s" % out.stderr[-500:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def ids_read(path, nq):
    data = open(path, "rb").read()
    n = min(len(data) // 8, nq * K)
    v = struct.unpack("%dq" % n, data[:n * 8])
    return [set(x for x in v[i:i + K] if x >= 0) for i in range(0, n, K)]


def recall(got, truth):
    hits = total = 0
    for g, t in zip(got, truth):
        hits += len(g & t)
        total += len(t)
    return round(hits / total, 4) if total else None


def queries_file(tmp):
    """The questions of bench/qa/*.jsonl and tests/eval/docs_qa.jsonl, one a line."""
    qs = []
    for p in ("bench/qa/nodejs_api.jsonl", "bench/qa/docs.jsonl", "tests/eval/docs_qa.jsonl"):
        path = os.path.join(REPO, p)
        if os.path.exists(path):
            for line in open(path):
                q = json.loads(line).get("question", "").replace('"', "").replace("\\", "")
                if q.strip():
                    qs.append(q.strip())
    out = os.path.join(tmp, "queries.txt")
    with open(out, "w") as f:
        f.write("\n".join(qs) + "\n")
    return out, len(qs)


def ingest(binary, docs, data, cfg):
    """Ingests docs into data through the CLI, pinned to one core. Returns: the ingest record."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(["taskset", "-c", "0", binary, "ingest", "--path", docs,
                          "--data-dir", data, "--json", "--log-level", "warn"],
                         env=env_for("Flat", cfg), capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode not in (0, 3):
        raise RuntimeError("ingest failed: %s" % out.stderr[-1000:])
    rep = json.loads(out.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    nbytes = sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(docs) for n in ns)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "user_s": round(after.ru_utime - before.ru_utime, 3),
            "sys_s": round(after.ru_stime - before.ru_stime, 3),
            "mb_per_s_wall": round(nbytes / 1e6 / wall, 3),
            "mb_per_s_cpu": round(nbytes / 1e6 / cpu, 3),
            "chunks": rep["chunks"]["added"], "documents": rep["documents"]}


def size_store(args, binary, tmp, size, cfg):
    """The store of one size: corpus copy and ingest, or the one kept from an earlier run under
    --keep (its record in store.json). Returns: (data dir, record)."""
    base = os.path.join(tmp, "size-%d" % size)
    data = os.path.join(base, "data")
    meta = os.path.join(base, "store.json")
    if os.path.exists(meta):
        return data, json.load(open(meta))
    docs = os.path.join(base, "docs")
    shutil.rmtree(base, ignore_errors=True)
    files, nbytes = corpus_copy(docs, size * BYTES_PER_CHUNK)
    print("== size %d: ingest %d files, %.1f MB" % (size, files, nbytes / 1e6), file=sys.stderr)
    rec = {"corpus": {"files": files, "bytes": nbytes, "packages": PACKAGES},
           "ingest": ingest(binary, docs, data, cfg)}
    shutil.rmtree(docs, ignore_errors=True)
    with open(meta, "w") as f:
        json.dump(rec, f)
    return data, rec


def metric_value(port, name):
    """A counter's value from the daemon's /metrics, or None."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
        c.close()
    except OSError:
        return None
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def modes_run(port, qtxt, requests, concs, label="", pid=None):
    """Each mode at each concurrency; with pid, also the daemon's CPU time per request (load
    from other processes moves wall-clock numbers far more than CPU time).
    Returns: {"mode/conc": bench_http record}."""
    runs = {}
    for mode in ("vector", "keyword", "hybrid"):
        for conc in concs:
            cpu0 = proc_cpu_s(pid) if pid else None
            par0 = metric_value(port, "ragd_retrieval_parallel_sides_total")
            r = bench_http(port, qtxt, conc, requests, mode=mode)
            cpu1 = proc_cpu_s(pid) if pid else None
            par1 = metric_value(port, "ragd_retrieval_parallel_sides_total")
            if par0 is not None and par1 is not None:
                r["parallel_sides"] = int(par1 - par0)  # of `requests` retrievals
            if cpu0 is not None and cpu1 is not None:
                r["daemon_cpu_ms_per_req"] = round((cpu1 - cpu0) * 1e3 / requests, 3)
            r["load"] = os.getloadavg()[0]
            runs["%s/%d" % (mode, conc)] = r
            print("   %s%-8s c%d p50 %.2f p95 %.2f p99 %.2f rps %.1f cpu/req %s load %.1f "
                  "server %s" % (label, mode, conc, r["p50_ms"], r["p95_ms"], r["p99_ms"],
                                 r["rps"], r.get("daemon_cpu_ms_per_req"), r["load"],
                                 r.get("server_ms")), file=sys.stderr)
    return runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "release", "ragd"))
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "real.json"))
    ap.add_argument("--chunk-tokens", type=int, default=128)
    ap.add_argument("--requests", type=int, default=80)
    ap.add_argument("--sizes", default="10000,100000",
                    help="store sizes in chunks (approximate: a byte budget of the corpus)")
    ap.add_argument("--factories", default="HNSW32",
                    help="index types; the vector side at scale is HNSW, set explicitly")
    ap.add_argument("--concurrency", default="1,2,8")
    ap.add_argument("--efs", default="", help="ef_search values to sweep (recall needs Flat too)")
    ap.add_argument("--bounds", default="", help="keyword_max_matches values to compare")
    ap.add_argument("--ab-bin", help="a second binary: both served in turn on each store, "
                    "--ab-rounds times, for an interleaved A/B of the modes at concurrency 1")
    ap.add_argument("--ab-rounds", type=int, default=3)
    ap.add_argument("--ab-concurrency", default="1",
                    help="concurrency levels of the A/B runs (default 1), e.g. 1,8")
    ap.add_argument("--keep", help="keep the work dir (and the ingested stores) here")
    ap.add_argument("--scaling-rounds", type=int, default=5,
                    help="interleaved c1/c8 pairs (vector) for the c8/c1 ratio (0: none)")
    ap.add_argument("--scaling-seconds", type=float, default=3.0,
                    help="about this long per run of those pairs")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    tmp = args.keep or tempfile.mkdtemp(prefix="ragd-bench-real-")
    os.makedirs(tmp, exist_ok=True)
    log = os.path.join(tmp, "ragd.log")
    concs = [int(c) for c in args.concurrency.split(",")]
    ab_concs = [int(c) for c in args.ab_concurrency.split(",")]
    res = {"chunk_target_tokens": args.chunk_tokens, "k": K, "requests": args.requests,
           "load_before": os.getloadavg(), "nproc": os.cpu_count(), "sizes": {}}
    try:
        cfg = os.path.join(tmp, "ragd.ini")
        with open(cfg, "w") as f:
            f.write("[chunk]\ntarget_tokens = %d\nmax_tokens = %d\n[ingest]\non_start = false\n"
                    % (args.chunk_tokens, args.chunk_tokens * 3 // 2))
        qtxt, nq = queries_file(tmp)
        res["queries"] = nq
        for size in [int(x) for x in args.sizes.split(",")]:
            data, rec = size_store(args, binary, tmp, size, cfg)
            sres = dict(rec)
            sres["configs"] = {}
            truth = None
            for factory in args.factories.split(","):
                print("== %d %s" % (size, factory), file=sys.stderr)
                c = {}
                # A first start of another type rebuilds the index from SQLite (HNSW: the
                # build); the second start loads the saved file.
                d = Daemon(binary, data, env_for(factory, cfg), log)
                c["first_start_s"] = d.start_s
                d.stop()
                d = Daemon(binary, data, env_for(factory, cfg), log)
                c["start_s"] = d.start_s
                c["health"] = d.health_ms()
                c["rss_after_start"] = proc_status(d.proc.pid)
                c["load"] = os.getloadavg()
                # The first pass over every question (hybrid) meets a cold term-statistics
                # cache (src/store_terms.c); it is recorded apart, and the runs after it are
                # the steady state of a daemon whose users' words have been seen.
                c["cold_pass"] = bench_http(d.port, qtxt, 1, nq, mode="hybrid")
                c["runs"] = modes_run(d.port, qtxt, args.requests, concs, pid=d.proc.pid)
                v1 = c["runs"].get("vector/1")
                if args.scaling_rounds > 0 and v1:
                    # c8/c1 (vector) in interleaved rounds: the verdict's figure.
                    sc = c["scaling"] = scaling_rounds(
                        lambda cc, n: bench_http(d.port, qtxt, cc, n, mode="vector"), v1["rps"],
                        args.scaling_rounds, args.scaling_seconds, args.requests)
                    print("   vector c8/c1 in %d interleaved rounds: %s; median %.2fx" % (
                        len(sc["rounds"]), ", ".join("%.2f" % r["c8_over_c1"]
                                                     for r in sc["rounds"]),
                        sc["median_c8_over_c1"]), file=sys.stderr)
                ids = os.path.join(tmp, "ids-%s.bin" % factory)
                if factory == "Flat":
                    bench_http(d.port, qtxt, 1, nq, mode="vector", ids=ids)
                    truth = ids_read(ids, nq)
                elif truth is not None and args.efs:
                    sweep = {}
                    for ef in [int(x) for x in args.efs.split(",")]:
                        bench_http(d.port, qtxt, 1, nq, mode="vector", ef=ef, ids=ids)
                        rr = recall(ids_read(ids, nq), truth)
                        v1 = bench_http(d.port, qtxt, 1, args.requests, mode="vector", ef=ef)
                        h1 = bench_http(d.port, qtxt, 1, args.requests, mode="hybrid", ef=ef)
                        sweep[str(ef)] = {"recall_at_10": rr, "vector": v1, "hybrid": h1}
                    c["ef_sweep"] = sweep
                c["rss"] = proc_status(d.proc.pid)
                d.stop()
                sres["configs"][factory] = c
            factory = args.factories.split(",")[-1]
            if args.ab_bin:
                # Old and new binary served in turn on the same store, rounds interleaved, so
                # both see the same minutes of machine load.
                ab = {"a": binary, "b": os.path.abspath(args.ab_bin), "factory": factory,
                      "concurrency": ab_concs, "rounds": []}
                for rnd in range(args.ab_rounds):
                    one = {}
                    for tag, b in (("a", binary), ("b", os.path.abspath(args.ab_bin))):
                        d = Daemon(b, data, env_for(factory, cfg), log)
                        bench_http(d.port, qtxt, 1, nq, mode="hybrid")  # warm, as above
                        one[tag] = modes_run(d.port, qtxt, args.requests, ab_concs,
                                             "%s%d " % (tag, rnd), pid=d.proc.pid)
                        one[tag + "_load"] = os.getloadavg()
                        d.stop()
                    ab["rounds"].append(one)
                sres["ab"] = ab
            if args.bounds:
                # Each keyword bound against the unbounded search (0, always run first): time,
                # and how much of the unbounded top-10 the bounded one keeps (keyword and hybrid).
                kb = {}
                exact = {}
                bounds = ["0"] + [b for b in args.bounds.split(",") if b != "0"]
                for bound in bounds:
                    d = Daemon(binary, data, env_for(factory, cfg, {
                        "RAGD_RETRIEVE_KEYWORD_MAX_MATCHES": bound}), log)
                    kb[bound] = {}
                    for mode in ("keyword", "hybrid"):
                        ids = os.path.join(tmp, "ids-bound-%s-%s.bin" % (bound, mode))
                        bench_http(d.port, qtxt, 1, nq, mode=mode, ids=ids)
                        got = ids_read(ids, nq)
                        if bound == "0":
                            exact[mode] = got
                        r = bench_http(d.port, qtxt, 1, args.requests, mode=mode)
                        r["overlap_at_10_vs_unbounded"] = recall(got, exact[mode])
                        kb[bound][mode] = r
                        print("   bound %s %s p50 %.2f p95 %.2f overlap %.3f" % (
                            bound, mode, r["p50_ms"], r["p95_ms"],
                            r["overlap_at_10_vs_unbounded"]), file=sys.stderr)
                    d.stop()
                sres["keyword_bound"] = kb
            res["sizes"][str(size)] = sres
        res["load_after"] = os.getloadavg()
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print("wrote %s" % args.out, file=sys.stderr)


if __name__ == "__main__":
    main()
