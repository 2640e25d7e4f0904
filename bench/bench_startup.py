#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
bench_startup.py - start-up and /health of `ragd serve` on a large store, side by side: several
arms (a ragd binary + the index file pair it should find), run interleaved for --rounds rounds on
the same data dir (bench_load's), so that the machine's load hits every arm alike. For each start
it records the wall time until /health answers 200, the daemon's CPU seconds at that moment
(/proc/PID/stat: user + system, what the start itself cost whatever else runs), its RSS then and
its peak RSS (VmHWM), then times --health-requests GET /health over one keep-alive connection
(p50/p95/p99) and stops the daemon with SIGTERM. An arm is NAME=BINARY[:INDEX_PREFIX]: before its
start, INDEX_PREFIX and INDEX_PREFIX.meta are hard-linked to the data dir's index.faiss(.meta),
so each binary finds the index format it writes (older ragd: meta format 1 with SHA-256). Without
INDEX_PREFIX the data dir is used as it is (for instance to time an index build at start: a
factory with no matching index file makes ragd rebuild it from SQLite before serving).
Nothing here asserts a timing. Writes one JSON file.

Usage: bench_startup.py --data DIR --dims D [--factory F] --arm NAME=BIN[:PREFIX] ...
                        [--rounds N] [--health-requests N] --out FILE
"""
import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import time

from benchlib import free_port, proc_cpu_s, proc_status, wait_ready


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def link_index(data, prefix):
    for suffix in ("", ".meta"):
        dst = os.path.join(data, "index.faiss" + suffix)
        if os.path.lexists(dst):
            os.unlink(dst)
        os.link(prefix + suffix, dst)


def one_start(binary, data, dims, factory, health_requests, log):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGD_")}
    env.update({"RAGD_EMBED_DIMS": str(dims), "RAGD_STORE_INDEX_FACTORY": factory,
                "RAGD_EMBED_PROVIDER": "local"})
    logf = open(log, "ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:%d" % port, "--data-dir",
                             data, "--no-ingest", "--log-level", "info"], env=env, stdout=logf,
                            stderr=logf)
    try:
        wait_ready(proc, port, float("inf"), log, poll_s=0.02)
        ready_s = time.perf_counter() - t0
        cpu_s = proc_cpu_s(proc.pid)
        mem = proc_status(proc.pid)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        lat = []
        health = None
        for _ in range(health_requests):
            t = time.perf_counter()
            c.request("GET", "/health")
            r = c.getresponse()
            body = r.read()
            lat.append((time.perf_counter() - t) * 1000)
            health = json.loads(body)
        mem_after = proc_status(proc.pid)
        return {"ready_s": round(ready_s, 3), "cpu_s_at_ready": round(cpu_s, 2),
                "rss_at_ready_bytes": mem.get("VmRSS"),
                "rss_peak_bytes": max(mem.get("VmHWM", 0), mem_after.get("VmHWM", 0)),
                "health_ms": {"requests": len(lat), "p50": round(pct(lat, 50), 3),
                              "p95": round(pct(lat, 95), 3), "p99": round(pct(lat, 99), 3)},
                "store": (health or {}).get("store")}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logf.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--dims", type=int, required=True)
    ap.add_argument("--factory", default="Flat")
    ap.add_argument("--arm", action="append", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--health-requests", type=int, default=500)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    arms = []
    for a in args.arm:
        name, rest = a.split("=", 1)
        binary, _, prefix = rest.partition(":")
        arms.append((name, binary, prefix or None))
    result = {"command": " ".join(sys.argv), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                      time.gmtime()),
              "git_commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"],
                                           capture_output=True, text=True).stdout.strip(),
              "cpus": os.cpu_count(),
              "data": args.data, "dims": args.dims, "factory": args.factory,
              "rounds": [], "loadavg": []}
    log = args.out + ".log"
    for rnd in range(args.rounds):
        row = {}
        for name, binary, prefix in arms:
            if prefix:
                link_index(args.data, prefix)
            with open("/proc/loadavg") as f:
                result["loadavg"].append(f.read().split()[0])
            row[name] = one_start(binary, args.data, args.dims, args.factory,
                                  args.health_requests, log)
            print(name, rnd, json.dumps(row[name]), flush=True)
        result["rounds"].append(row)
    summary = {}
    for name, _, _ in arms:
        runs = [r[name] for r in result["rounds"]]
        summary[name] = {
            "ready_s_median": pct([r["ready_s"] for r in runs], 50),
            "cpu_s_median": pct([r["cpu_s_at_ready"] for r in runs], 50),
            "rss_peak_bytes_max": max(r["rss_peak_bytes"] for r in runs),
            "health_p50_ms_median": pct([r["health_ms"]["p50"] for r in runs], 50),
            "health_p95_ms_median": pct([r["health_ms"]["p95"] for r in runs], 50),
        }
    result["summary"] = summary
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
