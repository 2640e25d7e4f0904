#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
bench_http_ab.py - the request path of two ragd binaries side by side (A/B, interleaved): one
synthetic store (bench_load: N chunks x D dims, HNSW32 by default, so the search itself is a
fraction of a millisecond and the HTTP path shows), each binary served in turn on it, rounds
alternating which goes first, and POST /retrieve driven by bench_http at concurrency 1 and 8
(keep-alive, closed loop). Per round and binary: p50/p95 at concurrency 1, requests/s at 1 and
8, the server's own timings_ms.total (so p50 - total is what the HTTP path costs), and the CPU
time the daemon used per request (utime + stime from /proc, so a loaded machine blurs it less
than wall time). Medians over the rounds, the ratios B/A, and the load average go to the JSON.
Nothing here asserts a timing.

Usage: bench_http_ab.py --a OLD_RAGD --b NEW_RAGD [--a-name main] [--b-name engine]
                        [--n 20000] [--dims 384] [--factory HNSW32] [--rounds 3]
                        [--requests 2000] [--mode vector] [--concurrency 1,2,8]
                        --out bench/results/http_ab.json
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import wait_ready

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BB = os.path.join(REPO, "build", "bench")
K = 10


class Daemon:
    """ragd serve on data with the local embedder (as bench_scale.py starts it), from binary."""

    def __init__(self, binary, data, dims, factory, log):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAGD_")}
        env.update({"RAGD_EMBED_DIMS": str(dims), "RAGD_STORE_INDEX_FACTORY": factory,
                    "RAGD_STORE_HNSW_EF_SEARCH": "64", "RAGD_EMBED_PROVIDER": "local"})
        self.log = open(log, "wb")
        self.proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:%d" % self.port,
                                      "--data-dir", data, "--no-ingest", "--log-level", "warn"],
                                     env=env, stdout=self.log, stderr=self.log)
        wait_ready(self.proc, self.port, 600, log)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def run_json(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def drive(port, qtxt, conc, requests, mode):
    cmd = [os.path.join(BB, "bench_http"), "--port", str(port), "--queries", qtxt, "--k", str(K),
           "--concurrency", str(conc), "--requests", str(requests)]
    if mode:
        cmd += ["--mode", mode]
    return run_json(cmd)


def flat_passes(port):
    """Returns: (passes, searches) of ragd's shared Flat passes from /metrics (0, 0 when the
    binary has no such counters)."""
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30) as r:
        text = r.read().decode("utf-8")
    vals = dict(line.split(" ", 1) for line in text.splitlines()
                if line.startswith("ragd_flat_search_pass"))
    return (float(vals.get("ragd_flat_search_passes_total", 0)),
            float(vals.get("ragd_flat_search_pass_searches_total", 0)))


def one(binary, data, args, qtxt, log):
    d = Daemon(binary, data, args.dims, args.factory, log)
    try:
        drive(d.port, qtxt, 1, 200, args.mode)  # warm-up: pages, caches
        out = {}
        for conc in args.concurrency:
            n = args.requests if conc == 1 else args.requests * 2
            c0 = cpu_s(d.proc.pid)
            p0 = flat_passes(d.port)
            r = drive(d.port, qtxt, conc, n, args.mode)
            r["daemon_cpu_us_per_request"] = round((cpu_s(d.proc.pid) - c0) / n * 1e6, 1)
            p1 = flat_passes(d.port)
            if p1[0] > p0[0]:
                r["flat_searches_per_pass"] = round((p1[1] - p0[1]) / (p1[0] - p0[0]), 3)
            out[str(conc)] = r
        return out
    finally:
        d.stop()


def floor_one(cmd, qtxt, requests):
    """Starts a floor server (prints "READY <port>"), drives it at concurrency 1 and 8."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline().split()[1])
        drive(port, qtxt, 1, 500, None)
        return {str(c): drive(port, qtxt, c, requests * (1 if c == 1 else 2), None)
                for c in (1, 8)}
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


def floors(args, qtxt):
    """The bare transports (fixed reply, no route), interleaved the same way."""
    rounds = []
    for r in range(args.rounds):
        order = [("a", args.floor_a), ("b", args.floor_b)]
        if r % 2:
            order.reverse()
        res = {}
        for key, cmd in order:
            res[key] = floor_one(cmd.split(), qtxt, args.requests * 5)
            print("floor round %d %s: c1 p50 %.4f ms %.0f req/s, c8 %.0f req/s" % (
                r + 1, key, res[key]["1"]["p50_ms"], res[key]["1"]["rps"], res[key]["8"]["rps"]),
                file=sys.stderr, flush=True)
        rounds.append(res)
    out = {}
    for key in ("a", "b"):
        c1 = statistics.median(rd[key]["1"]["rps"] for rd in rounds)
        c8 = statistics.median(rd[key]["8"]["rps"] for rd in rounds)
        out[key] = {"c1_p50_ms": round(statistics.median(rd[key]["1"]["p50_ms"]
                                                         for rd in rounds), 4),
                    "c1_rps": c1, "c8_rps": c8, "c8_over_c1": round(c8 / c1, 3)}
    return {"a": args.floor_a, "b": args.floor_b, "summary": out, "per_round": rounds}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--floor-a", help="command of A's HTTP floor server (bench_mhd)")
    ap.add_argument("--floor-b", help="command of B's HTTP floor server (bench_engine)")
    ap.add_argument("--a", required=True)
    ap.add_argument("--b", required=True)
    ap.add_argument("--a-name", default="A")
    ap.add_argument("--b-name", default="B")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--factory", default="HNSW32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--mode", default="vector")
    ap.add_argument("--concurrency", default="1,8",
                    help="levels to drive, comma-separated; 1 and 8 are always among them")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    args.concurrency = sorted({1, 8} | {int(c) for c in args.concurrency.split(",")})
    tmp = tempfile.mkdtemp(prefix="ragd-http-ab-")
    try:
        data = os.path.join(tmp, "data")
        pre = os.path.join(tmp, "vec")
        load = run_json([os.path.join(BB, "bench_load"), "--data-dir", data, "--n", str(args.n),
                         "--dims", str(args.dims), "--factory", args.factory, "--ef", "64",
                         "--seed", "7", "--out", pre])
        qtxt = os.path.join(tmp, "q.txt")
        with open(qtxt, "w") as f:
            for i in range(500):
                f.write("how do I configure the backup index for daemon %d\n" % i)
        loads = [" ".join("%.2f" % x for x in os.getloadavg())]
        floor = floors(args, qtxt) if args.floor_a and args.floor_b else None
        rounds = []
        for r in range(args.rounds):
            order = [("a", args.a), ("b", args.b)]
            if r % 2:
                order.reverse()
            res = {}
            for key, binary in order:
                res[key] = one(binary, data, args, qtxt, os.path.join(tmp, "%s.log" % key))
                print("round %d %s: c1 p50 %.3f ms (server %.3f) %.0f req/s, c8 %.0f req/s" % (
                    r + 1, key, res[key]["1"]["p50_ms"], res[key]["1"]["server_ms"]["total"],
                    res[key]["1"]["rps"], res[key]["8"]["rps"]), file=sys.stderr, flush=True)
            rounds.append(res)
            loads.append(" ".join("%.2f" % x for x in os.getloadavg()))

        def med(key, path):
            vals = []
            for rd in rounds:
                v = rd[key]
                for p in path:
                    v = v[p]
                vals.append(v)
            return round(statistics.median(vals), 4)

        summary = {}
        for key in ("a", "b"):
            s = {"c1_p50_ms": med(key, ("1", "p50_ms")), "c1_p95_ms": med(key, ("1", "p95_ms")),
                 "c1_server_ms": med(key, ("1", "server_ms", "total")),
                 "c1_rps": med(key, ("1", "rps")), "c8_rps": med(key, ("8", "rps")),
                 "c8_p50_ms": med(key, ("8", "p50_ms")),
                 "c1_cpu_us": med(key, ("1", "daemon_cpu_us_per_request")),
                 "c8_cpu_us": med(key, ("8", "daemon_cpu_us_per_request"))}
            for conc in args.concurrency:
                if conc == 1:
                    continue
                for name, path in (("rps", "rps"), ("p50_ms", "p50_ms"), ("p95_ms", "p95_ms")):
                    s["c%d_%s" % (conc, name)] = med(key, (str(conc), path))
                s["c%d_over_c1" % conc] = round(s["c%d_rps" % conc] / s["c1_rps"], 3)
            s["c1_http_overhead_ms"] = round(s["c1_p50_ms"] - s["c1_server_ms"], 4)
            s["c8_over_c1"] = round(s["c8_rps"] / s["c1_rps"], 3)
            summary[key] = s
        ratios = {k: round(summary["b"][k] / summary["a"][k], 3) for k in summary["a"]
                  if summary["a"][k]}
        out = {"a": args.a_name, "b": args.b_name, "chunks": args.n, "dims": args.dims,
               "factory": args.factory, "mode": args.mode, "k": K, "rounds": args.rounds,
               "requests_c1": args.requests, "requests_c8": args.requests * 2,
               "cpus": os.cpu_count(), "load": loads, "store_load": load,
               "summary": summary, "ratio_b_over_a": ratios, "per_round": rounds,
               "floor": floor,
               "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])}
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
        print(json.dumps({"summary": summary, "ratio_b_over_a": ratios, "load": loads,
                          "floor": floor and floor["summary"]}, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
