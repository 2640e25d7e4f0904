#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
bench_core.py - ragd's core benchmark: ingest throughput with the offline embedder, and /retrieve
latency over real HTTP on loopback, measured side by side with the server's own timings so the
HTTP/JSON overhead shows. Writes a JSON result file and prints a table. Not a test: nothing here
asserts a timing.

Corpus: the repository's docs/ repeated --copies times (or as many times as make --mb MB); every
paragraph of copy i gets a unique suffix so that no chunk is deduplicated (each chunk is really
embedded and indexed).

Ingest figure: --rounds N (default 6) ingests of the same corpus, each into a fresh data dir, one
after the other (a single run on a shared machine spreads +-10%), each pinned to one CPU, the
CPUs taken in turn (--cpus; by default every CPU this process may use): a core that another
tenant of the host slows (seen here: CPU 0's memory copies 40% slower than CPU 1's for a while,
pure arithmetic equal) weighs on half the rounds, not on all of them. Every round's figures are
printed and kept in the JSON ("ingest" -> "rounds"); the "ingest" keys themselves are those of the
median round by CPU seconds (with an even N, the slower of the two middle ones), and /retrieve is
timed on that round's store.
"""
import argparse
import http.client
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import free_port, wait_ready

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

QUERIES = [
    "how do I rebuild the vector index after a crash",
    "what happens when the embedding model changes",
    "which environment variable disables retrieval",
    "how are markdown documents split into chunks",
    "what is the default listen address",
    "how do I back up the data directory while the daemon runs",
    "what does the retrieve endpoint return",
    "how many tokens does a chunk hold",
]


def make_corpus(dst, copies):
    src = os.path.join(REPO, "docs")
    total = 0
    for i in range(copies):
        d = os.path.join(dst, "copy%03d" % i)
        os.makedirs(d)
        for name in sorted(os.listdir(src)):
            if not name.endswith(".md"):
                continue
            with open(os.path.join(src, name), encoding="utf-8") as f:
                text = f.read()
            paras = text.split("\n\n")
            out = "\n\n".join(p + (" (rev %d.%d)" % (i, j) if p.strip() and not p.startswith("#")
                                   and not p.startswith("```") else "")
                              for j, p in enumerate(paras))
            with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                f.write(out)
            total += len(out.encode())
    return total


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def ingest_round(binary, corpus, data, env, nbytes, core):
    """One `ragd ingest` of corpus into the new data dir data, pinned to CPU core (the target says
    one core). Returns: its figures, with "data" and "report" (the ingest's JSON report)."""
    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([binary, "ingest", "--path", corpus, "--data-dir", data, "--json",
                          "--log-level", "warn"], env=env, capture_output=True, text=True,
                         check=True, preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    seconds = time.perf_counter() - t0
    # CPU seconds of the ingest process: on a shared machine the wall time also counts the time
    # other jobs held the core; the CPU time is what the ingest itself cost.
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    report = json.loads(out.stdout)
    chunks = report["chunks"]["added"]
    return {"seconds": round(seconds, 3), "mb_per_s": round(nbytes / 1e6 / seconds, 2),
            "chunks": chunks, "chunks_per_s": round(chunks / seconds, 1),
            "cpu_seconds": round(cpu, 3), "mb_per_s_cpu": round(nbytes / 1e6 / cpu, 2),
            "loadavg": " ".join("%.2f" % x for x in os.getloadavg()), "cpu": core,
            "data": data, "report": report}


def median_round(rounds):
    """Returns: the round with the median CPU seconds (of an even count, the slower middle one:
    the figure never flatters)."""
    by_cpu = sorted(rounds, key=lambda r: r["cpu_seconds"])
    return by_cpu[len(by_cpu) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="./ragd")
    ap.add_argument("--out", default="bench/results/core.json")
    ap.add_argument("--copies", type=int, default=60)
    ap.add_argument("--mb", type=float, default=0,
                    help="corpus size in MB instead of --copies (docs/ grows; a fixed size keeps "
                         "runs comparable; 12 stays below [store] index_auto_threshold)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--cpus", default="",
                    help="the CPUs the rounds are pinned to, in turn (default: every CPU this "
                         "process may use; one CPU per round)")
    ap.add_argument("--rounds", type=int, default=6,
                    help="ingests of the corpus, each into a fresh data dir; the figures are the "
                         "median round's (by CPU seconds)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    try:
        cpus = [int(x) for x in args.cpus.split(",") if x] or sorted(os.sched_getaffinity(0))
    except ValueError:
        ap.error("--cpus: a comma-separated list of CPU numbers")

    tmp = tempfile.mkdtemp(prefix="ragd-bench-")
    try:
        corpus = os.path.join(tmp, "corpus")
        os.makedirs(corpus)
        if args.mb > 0:
            one = make_corpus(os.path.join(tmp, "probe"), 1)
            shutil.rmtree(os.path.join(tmp, "probe"))
            args.copies = max(1, int(round(args.mb * 1e6 / one)))
        nbytes = make_corpus(corpus, args.copies)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAGD_")}
        rounds = []
        for i in range(args.rounds):
            rnd = ingest_round(args.bin, corpus, os.path.join(tmp, "data-%d" % i), env, nbytes,
                               cpus[i % len(cpus)])
            rnd["round"] = i + 1
            rounds.append(rnd)
            print("ingest round %d/%d on CPU %d: %.3f s, %.2f MB/s, %.3f CPU s, %.2f MB per CPU "
                  "second, %d chunks (load %s)" % (
                      i + 1, args.rounds, rnd["cpu"], rnd["seconds"], rnd["mb_per_s"],
                      rnd["cpu_seconds"], rnd["mb_per_s_cpu"], rnd["chunks"], rnd["loadavg"]),
                  file=sys.stderr, flush=True)
        med = median_round(rounds)
        data = med["data"]
        report = med["report"]
        chunks = report["chunks"]["added"]
        ingest = {k: med[k] for k in ("seconds", "mb_per_s", "chunks_per_s", "cpu_seconds",
                                      "mb_per_s_cpu", "loadavg")}
        ingest.update({"cores": 1, "median_of": args.rounds, "median_round": med["round"],
                       "rounds": [{k: v for k, v in r.items() if k not in ("data", "report")}
                                  for r in rounds]})
        print("ingest: median of %d rounds (round %d): %.2f MB per CPU second" % (
            args.rounds, med["round"], med["mb_per_s_cpu"]), file=sys.stderr, flush=True)

        port = free_port()
        proc = subprocess.Popen([args.bin, "serve", "--listen", "127.0.0.1:%d" % port,
                                 "--data-dir", data, "--no-ingest", "--log-level", "warn"],
                                env=env)
        try:
            wait_ready(proc, port, 30, "its stderr above")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            wall, server, embed, search = [], [], [], []
            for i in range(args.requests):
                body = json.dumps({"query": QUERIES[i % len(QUERIES)], "k": 5})
                t = time.perf_counter()
                conn.request("POST", "/retrieve", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                payload = resp.read()
                wall.append((time.perf_counter() - t) * 1000)
                tm = json.loads(payload)["timings_ms"]
                server.append(tm["total"])
                embed.append(tm["embed"])
                search.append(tm["search"])
        finally:
            proc.terminate()
            proc.wait(timeout=30)

        result = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "corpus": {"bytes": nbytes, "documents": report["documents"]["added"],
                       "chunks": chunks, "copies": args.copies},
            "ingest": ingest,
            "retrieve": {
                "requests": args.requests,
                "client_ms": {"p50": round(pct(wall, 50), 3), "p95": round(pct(wall, 95), 3),
                              "p99": round(pct(wall, 99), 3)},
                "server_total_ms": {"p50": round(pct(server, 50), 3),
                                    "p95": round(pct(server, 95), 3)},
                "server_embed_ms_p50": round(statistics.median(embed), 3),
                "server_search_ms_p50": round(statistics.median(search), 3),
            },
        }
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
