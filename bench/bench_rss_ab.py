#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
bench_rss_ab.py - the daemon's peak RSS while an ingest runs, A/B of several binaries interleaved
in one run. Each round serves a fresh copy of one store (e.g. bench_load's HNSW32 100k x 384) with
every variant in turn, in the order bench_scale.py uses (the "ingest while serving" row of issue
16): vector requests at concurrency 1, 8 and 64, with and without a tag filter, hybrid at 1 and 8,
then POST /ingest of the project's docs/ repeated --copies times while vector requests run at
concurrency 1, 8 and 8 with a filter. It samples /proc/PID/status every 50 ms and, at each new
high of VmRSS, /proc/PID/smaps_rollup and the thread count; after the ingest it records VmHWM
(the row's figure) and where the anonymous memory of the biggest mappings is (/proc/PID/smaps).
The budget is issue 16's: 1.3 x the raw vectors held after the ingest + 64 MiB. Also records the
c1 p50 and c8 requests/s of the warm-up runs, so a memory cut that slows retrieval shows. Writes one
JSON file with every round and the per-variant medians. With --ingest-only, no requests: the
daemon's CPU seconds for the ingest alone (and VmHWM), the variants' ratio to the first. Nothing
here asserts anything.

Usage: bench_rss_ab.py --store DIR --queries QTXT --dims D --variant NAME=BINARY[,ENV=VAL...]
                       [--variant ...] [--rounds 3] [--copies 20] [--requests 1000]
                       [--ingest-only] [--tmp DIR] [--malloc-info DIR] [--heaptrack DIR] [--out bench/results/rss-ab.json]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import make_corpus  # noqa: E402
from bench_scale import Daemon, http_run, ingest_while_serving  # noqa: E402
import bench_rss_ingest  # noqa: E402
from bench_rss_ingest import chunks  # noqa: E402

MIB = 1024 * 1024
KEYS = ("VmHWM", "VmRSS", "RssAnon", "RssFile", "Threads")


def status(pid):
    """Returns: the KEYS of /proc/pid/status (bytes; Threads a count)."""
    return bench_rss_ingest.status(pid, KEYS)


def cpu_seconds(pid):
    """Returns: the user + system CPU seconds process pid has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rollup(pid):
    """Returns: /proc/pid/smaps_rollup's kB fields, in bytes."""
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return out


def anon_maps(pid, top=12):
    """Returns: the top mappings by anonymous RSS (/proc/pid/smaps), and how much anonymous
    memory sits in mappings of each size class (a malloc arena heap is 64 MiB reserved, a thread
    stack 8 MiB by default, the main heap is [heap])."""
    maps = []
    cur = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                cur = {"size": hi - lo, "name": parts[5] if len(parts) > 5 else "",
                       "perms": parts[1], "anon": 0, "rss": 0}
                maps.append(cur)
            elif parts[0] == "Anonymous:":
                cur["anon"] = int(parts[1]) * 1024
            elif parts[0] == "Rss:":
                cur["rss"] = int(parts[1]) * 1024
    classes = {}
    for m in maps:
        if m["anon"] == 0:
            continue
        if m["name"]:
            c = m["name"] if m["name"].startswith("[") else "file:" + os.path.basename(m["name"])
        else:
            c = "anon %.1f MiB mapping" % (m["size"] / MIB) if m["size"] < 256 * MIB \
                else "anon >= 256 MiB mapping"
        e = classes.setdefault(c, {"mappings": 0, "anon": 0})
        e["mappings"] += 1
        e["anon"] += m["anon"]
    big = sorted(classes.items(), key=lambda kv: -kv[1]["anon"])[:top]
    return [{"class": k, "mappings": v["mappings"], "anon_mib": round(v["anon"] / MIB, 2)}
            for k, v in big]


def malloc_info(pid, path):
    """Writes malloc_info(3) of the running process pid to path (gdb attaches and calls it).
    and SQLite's memory figures (sqlite3_status64: all its heap memory, its page caches).
    Returns: {"path": path or why it could not be written, "sqlite_...": {current, highwater}}."""
    cmd = ["gdb", "-p", str(pid), "-batch", "-nx",
           "-ex", "set $f = (void *)fopen(\"%s\", \"w\")" % path,
           "-ex", "call (int)malloc_info(0, $f)", "-ex", "call (int)fclose($f)",
           # SQLite's own accounting: all its heap memory (0) and its page caches' (2).
           "-ex", "set $c = (long long *)malloc(16)",
           "-ex", "call (int)sqlite3_status64(0, $c, $c + 1, 0)",
           "-ex", "printf \"sqlite_memory_used %lld %lld\\n\", $c[0], $c[1]",
           "-ex", "call (int)sqlite3_status64(2, $c, $c + 1, 0)",
           "-ex", "printf \"sqlite_pagecache %lld %lld\\n\", $c[0], $c[1]",
           "-ex", "call (void)free($c)"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = r.stdout.decode(errors="replace")
    res = {"path": path if os.path.exists(path) else "gdb: " + out[-300:]}
    for line in out.splitlines():
        if line.startswith("sqlite_"):
            key, cur, high = line.split()
            res[key] = {"current": int(cur), "highwater": int(high)}
    return res


def one_run(name, binary, env, args, tmp, corpus):
    """Returns: the figures of one variant on a fresh copy of the store."""
    data = os.path.join(tmp, "data-" + name)
    shutil.rmtree(data, ignore_errors=True)
    subprocess.run(["cp", "-a", args.store, data], check=True)
    d = Daemon(data, args.dims, "HNSW32", 64, os.path.join(tmp, "ragd-%s.log" % name),
               binary=binary, extra_env=env)
    res = {"variant": name, "binary": binary, "env": env}
    tracker = []
    peak = {"VmRSS": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                st = status(d.proc.pid)
                if st["VmRSS"] > peak["VmRSS"]:
                    peak.update(st)
                    peak["rollup"] = rollup(d.proc.pid)
            except OSError:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        if args.ingest_only:
            # The ingest alone: the daemon's CPU seconds for it (nothing else runs in it).
            c0 = cpu_seconds(d.proc.pid)
            t = time.perf_counter()
            status_code, _ = d.post("/ingest", {"path": corpus})
            res["ingest"] = {"status": status_code, "seconds": round(time.perf_counter() - t, 3),
                             "cpu_seconds": round(cpu_seconds(d.proc.pid) - c0, 3)}
            res["VmHWM"] = status(d.proc.pid)["VmHWM"]
            return res
        warm = {}
        for filt in (False, True):
            for c in (1, 8, 64):
                key = "vector_c%d%s" % (c, "_filter" if filt else "")
                warm[key] = http_run(d.port, args.queries, c, args.requests, filt=filt,
                                     mode="vector")
        for c in (1, 8):
            warm["hybrid_c%d" % c] = http_run(d.port, args.queries, c, args.requests,
                                              mode="hybrid")
        res["warm"] = {k: {x: v[x] for x in ("p50_ms", "p95_ms", "rps")} for k, v in warm.items()}
        res["before_ingest"] = status(d.proc.pid)
        before_chunks = chunks(d)

        def attach():
            # heaptrack attached from here: what the ingest allocates, and holds at its peak.
            tracker.append(subprocess.Popen(["heaptrack", "-o", os.path.join(
                args.heaptrack, "heaptrack-%s-%d" % (name, d.proc.pid)), "-p", str(d.proc.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(5)

        box, runs = ingest_while_serving(d, corpus, args.queries, max(100, args.requests // 3),
                                         before=attach if args.heaptrack else None)
        during = {k: {x: h[x] for x in ("p50_ms", "p95_ms", "rps", "ingest_still_running")}
                  for k, h in runs.items()}
        res["during_ingest"] = during
        res["ingest"] = {"status": box.get("status"), "seconds": round(box.get("seconds", 0), 3)}
        after_chunks = chunks(d)
        st = status(d.proc.pid)
        res["after"] = st
        res["after_maps"] = anon_maps(d.proc.pid)
        if args.malloc_info:
            res["malloc_info"] = malloc_info(d.proc.pid, os.path.join(
                args.malloc_info, "malloc-info-%s-%d.xml" % (name, d.proc.pid)))
        res["VmHWM"] = st["VmHWM"]
        res["chunks_before"] = before_chunks
        res["chunks_after"] = after_chunks
        raw = after_chunks * args.dims * 4
        res["budget_bytes"] = int(1.3 * raw + 64 * MIB)
    finally:
        stop.set()
        sampler.join()
        res["sampled_peak"] = dict(peak)
        d.stop()
        for t in tracker:
            t.wait(timeout=600)
        shutil.rmtree(data, ignore_errors=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", required=True, help="data dir to copy for every run (read only)")
    ap.add_argument("--queries", required=True, help="query texts, one a line (bench_http)")
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--variant", action="append", required=True,
                    help="NAME=BINARY[,ENV=VALUE...]")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--copies", type=int, default=20)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--tmp", default="/tmp")
    ap.add_argument("--out", default="bench/results/rss-ab.json")
    ap.add_argument("--ingest-only", action="store_true",
                    help="no requests: the ingest alone, its CPU seconds in the daemon")
    ap.add_argument("--heaptrack", default=None,
                    help="dir: attach heaptrack(1) to the daemon before each ingest, write there")
    ap.add_argument("--malloc-info", default=None,
                    help="dir: after each ingest, write the daemon's malloc_info(3) there (gdb)")
    args = ap.parse_args()
    args.store = os.path.abspath(args.store)
    args.queries = os.path.abspath(args.queries)
    variants = []
    for v in args.variant:
        name, rest = v.split("=", 1)
        parts = rest.split(",")
        env = dict(p.split("=", 1) for p in parts[1:] if p)
        variants.append((name, os.path.abspath(parts[0]), env))
    tmp = os.path.join(os.path.abspath(args.tmp), "rss-ab")
    os.makedirs(tmp, exist_ok=True)
    corpus = os.path.join(tmp, "corpus")
    shutil.rmtree(corpus, ignore_errors=True)
    nbytes = make_corpus(corpus, args.copies)
    result = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": " ".join(sys.argv), "corpus_bytes": nbytes, "runs": []}
    try:
        for r in range(args.rounds):
            # Alternate the order each round: what runs first may meet a different load.
            order = variants if r % 2 == 0 else list(reversed(variants))
            for name, binary, env in order:
                res = one_run(name, binary, env, args, tmp, corpus)
                res["round"] = r
                res["loadavg"] = open("/proc/loadavg").read().split()[:3]
                result["runs"].append(res)
                if args.ingest_only:
                    print("round %d %-10s VmHWM %.1f MiB, ingest %s s, %s CPU s, load %s" % (
                        r, name, res["VmHWM"] / MIB, res["ingest"]["seconds"],
                        res["ingest"]["cpu_seconds"], " ".join(res["loadavg"])), flush=True)
                    with open(args.out, "w") as f:
                        json.dump(result, f, indent=1)
                    continue
                print("round %d %-10s VmHWM %.1f MiB budget %.1f (margin %+.1f) threads %s "
                      "c1 p50 %.3f ms c8 %.0f req/s, ingest %s s, load %s" % (
                          r, name, res["VmHWM"] / MIB, res["budget_bytes"] / MIB,
                          (res["budget_bytes"] - res["VmHWM"]) / MIB,
                          res["sampled_peak"].get("Threads"),
                          res["warm"]["vector_c1"]["p50_ms"], res["warm"]["vector_c8"]["rps"],
                          res["ingest"]["seconds"], " ".join(res["loadavg"])), flush=True)
                with open(args.out, "w") as f:
                    json.dump(result, f, indent=1)
    finally:
        shutil.rmtree(corpus, ignore_errors=True)
    med = {}
    for name, _, _ in variants:
        rs = [x for x in result["runs"] if x["variant"] == name]
        if args.ingest_only:
            med[name] = {"VmHWM_mib": round(statistics.median(x["VmHWM"] for x in rs) / MIB, 2),
                         "ingest_cpu_s": round(statistics.median(x["ingest"]["cpu_seconds"]
                                                                 for x in rs), 3)}
            first = med[variants[0][0]]["ingest_cpu_s"]
            med[name]["cpu_ratio"] = round(med[name]["ingest_cpu_s"] / first, 3)
            print("%-10s median ingest CPU %.3f s (x%.3f of %s), VmHWM %.1f MiB" % (
                name, med[name]["ingest_cpu_s"], med[name]["cpu_ratio"], variants[0][0],
                med[name]["VmHWM_mib"]))
            continue
        med[name] = {
            "VmHWM_mib": round(statistics.median(x["VmHWM"] for x in rs) / MIB, 2),
            "budget_mib": round(statistics.median(x["budget_bytes"] for x in rs) / MIB, 2),
            "vector_c1_p50_ms": round(statistics.median(x["warm"]["vector_c1"]["p50_ms"]
                                                        for x in rs), 3),
            "vector_c8_rps": round(statistics.median(x["warm"]["vector_c8"]["rps"] for x in rs), 1),
            "hybrid_c1_p50_ms": round(statistics.median(x["warm"]["hybrid_c1"]["p50_ms"]
                                                        for x in rs), 3),
            "ingest_s": round(statistics.median(x["ingest"]["seconds"] for x in rs), 3)}
        print("%-10s median VmHWM %.1f MiB (budget %.1f) vector c1 p50 %.3f ms, c8 %.0f req/s, "
              "hybrid c1 p50 %.3f ms, ingest %.1f s" % (
                  name, med[name]["VmHWM_mib"], med[name]["budget_mib"],
                  med[name]["vector_c1_p50_ms"], med[name]["vector_c8_rps"],
                  med[name]["hybrid_c1_p50_ms"], med[name]["ingest_s"]))
    result["medians"] = med
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
