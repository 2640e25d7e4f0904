#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
bench_rss_ingest.py - the daemon's peak RSS while it serves a store and ingests into it: issue
16's "RSS < 1.3x raw vectors + 64 MiB in every configuration" checked where memory peaks, not only
at rest. Serves an existing data dir (e.g. one bench_load filled: --data-dir, --dims, --factory),
then POSTs /ingest of the project's docs/ repeated --copies times (bench_core's corpus, written
beside the data dir) while sampling /proc/PID/status every 50 ms: VmHWM, and the anonymous and
file-backed parts of RSS (RssAnon, RssFile: pages of mapped files, e.g. the binary). Records the
chunks before and after, the budget computed on the vectors held after the ingest, and the peak.
With --copy, the data dir is copied first (the ingest writes into it). Appends one entry to --out
(a JSON list), so several stores can share one file. Nothing here asserts anything.

Usage: bench_rss_ingest.py --data-dir DIR --dims D [--factory F] [--copies N] [--copy]
                           [--out bench/results/rss-ingest.json]
"""
import argparse
import json
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import make_corpus  # noqa: E402
from bench_scale import Daemon  # noqa: E402

MIB = 1024 * 1024
KEYS = ("VmHWM", "VmRSS", "RssAnon", "RssFile")


def status(pid, keys=KEYS):
    """Returns: the keys of /proc/pid/status, in bytes (a count for those not in kB: Threads)."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key = line.split(":")[0]
            if key in keys:
                out[key] = int(line.split()[1]) * (1024 if line.rstrip().endswith("kB") else 1)
    return out


def chunks(d):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
    c.request("GET", "/health")
    return json.loads(c.getresponse().read())["store"]["chunks"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--dims", type=int, required=True)
    ap.add_argument("--factory", default="auto")
    ap.add_argument("--copies", type=int, default=20)
    ap.add_argument("--copy", action="store_true", help="ingest into a copy of the data dir")
    ap.add_argument("--out", default="bench/results/rss-ingest.json")
    args = ap.parse_args()
    data = os.path.abspath(args.data_dir)
    work = data + ".rss-ingest"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    if args.copy:
        shutil.copytree(data, os.path.join(work, "data"))
        data = os.path.join(work, "data")
    corpus = os.path.join(os.path.dirname(data), "rss-ingest-corpus")
    shutil.rmtree(corpus, ignore_errors=True)
    nbytes = make_corpus(corpus, args.copies)
    d = Daemon(data, args.dims, args.factory, 64, os.path.join(work, "ragd.log"))
    try:
        before_chunks = chunks(d)
        at_rest = status(d.proc.pid)
        box = {}

        def ingest():
            t = time.perf_counter()
            box["status"], box["report"] = d.post("/ingest", {"path": corpus})
            box["seconds"] = round(time.perf_counter() - t, 3)

        th = threading.Thread(target=ingest)
        th.start()
        peak = dict(at_rest)
        while th.is_alive():
            for k, v in status(d.proc.pid).items():
                peak[k] = max(peak.get(k, 0), v)
            time.sleep(0.05)
        th.join()
        after = status(d.proc.pid)
        after_chunks = chunks(d)
    finally:
        d.stop()
        shutil.rmtree(corpus, ignore_errors=True)
        if args.copy:
            shutil.rmtree(work, ignore_errors=True)
    raw = after_chunks * args.dims * 4
    res = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "command": " ".join(sys.argv), "data_dir": args.data_dir, "dims": args.dims,
           "factory": args.factory, "corpus_bytes": nbytes, "ingest_status": box.get("status"),
           "ingest_seconds": box.get("seconds"), "chunks_before": before_chunks,
           "chunks_after": after_chunks, "raw_vector_bytes_after": raw,
           "budget_bytes": int(1.3 * raw + 64 * MIB), "at_rest": at_rest, "peak": peak,
           "after": after, "loadavg": open("/proc/loadavg").read().split()[:3]}
    print("%s: chunks %d -> %d, RSS at rest %.0f MiB, peak %.0f MiB (anon %.0f, file %.0f), "
          "budget %.0f MiB, ingest %s in %s s" % (
              args.data_dir, before_chunks, after_chunks, at_rest["VmRSS"] / MIB,
              peak["VmHWM"] / MIB, peak.get("RssAnon", 0) / MIB, peak.get("RssFile", 0) / MIB,
              res["budget_bytes"] / MIB, box.get("status"), box.get("seconds")))
    runs = []
    if os.path.exists(args.out):
        with open(args.out) as f:
            runs = json.load(f)
    runs.append(res)
    with open(args.out, "w") as f:
        json.dump(runs, f, indent=1)


if __name__ == "__main__":
    main()
