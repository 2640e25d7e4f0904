#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
bench_real.py - ragd on real text nobody here wrote: the HTML documentation of Python 3.11,
PostgreSQL 15 and Node.js 18 from Debian's packages (bench/corpus.sh installs them), ingested
through ragd's CLI with the offline embedder, then served and driven over loopback with
bench_http per mode (vector, keyword, hybrid = the default) at concurrency 1, 2 and 8, for the
exact index (Flat) and HNSW. Records, side by side in one run: the ingest (MB/s of input, CPU
seconds), start-up (index load or build), /health latency, peak RSS, p50/p95/p99 and requests/s
per mode and concurrency with the server's own time split (timings_ms: embed, search, fetch,
total), HNSW recall@10 against the exact index at several ef_search values (the vector side,
per request `ef_search`), and each keyword bound ([retrieve] keyword_max_matches) against the
unbounded keyword search on the same store. Nothing here asserts a timing. Writes one JSON file.

Usage: bench_real.py [--bin build/release/ragd] [--out bench/results/real.json]
                     [--chunk-tokens 128] [--requests 80] [--factories Flat,HNSW32]
"""
import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BB = os.path.join(REPO, "build", "bench")
K = 10
CORPUS = [("python", "/usr/share/doc/python3.11/html", ("_sources", "_static", "_images",
                                                         "_downloads")),
          ("postgresql", "/usr/share/doc/postgresql-doc-15/html", ()),
          ("nodejs", "/usr/share/doc/nodejs/api", ())]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def corpus_copy(dst):
    """Copies the .html files of each package under dst/<name>; returns (files, bytes)."""
    files = size = 0
    for name, src, skip in CORPUS:
        if not os.path.isdir(src):
            raise SystemExit("bench_real: %s missing: run bash bench/corpus.sh" % src)
        for root, dirs, names in os.walk(src):
            dirs[:] = [d for d in dirs if d not in skip]
            for n in names:
                if not n.endswith(".html"):
                    continue
                rel = os.path.relpath(os.path.join(root, n), src)
                out = os.path.join(dst, name, rel)
                os.makedirs(os.path.dirname(out), exist_ok=True)
                shutil.copyfile(os.path.join(root, n), out)
                files += 1
                size += os.path.getsize(out)
    return files, size


def proc_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("VmHWM", "VmRSS")):
                    key, val = line.split(":")
                    out[key] = int(val.split()[0]) * 1024
    except OSError:
        pass
    return out


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
        deadline = time.time() + 3600
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("ragd exited: see %s" % log)
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("ragd did not start")
            time.sleep(0.05)
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "release", "ragd"))
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "real.json"))
    ap.add_argument("--chunk-tokens", type=int, default=128)
    ap.add_argument("--requests", type=int, default=80)
    ap.add_argument("--factories", default="Flat,HNSW32")
    ap.add_argument("--efs", default="16,32,64,128,256")
    ap.add_argument("--keep", help="keep the work dir here")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    tmp = args.keep or tempfile.mkdtemp(prefix="ragd-bench-real-")
    os.makedirs(tmp, exist_ok=True)
    log = os.path.join(tmp, "ragd.log")
    res = {"chunk_target_tokens": args.chunk_tokens, "k": K, "requests": args.requests,
           "load_before": os.getloadavg(), "nproc": os.cpu_count()}
    try:
        docs = os.path.join(tmp, "docs")
        shutil.rmtree(docs, ignore_errors=True)
        files, nbytes = corpus_copy(docs)
        res["corpus"] = {"files": files, "bytes": nbytes,
                         "packages": ["python3.11-doc", "postgresql-doc-15", "nodejs-doc"]}
        cfg = os.path.join(tmp, "ragd.ini")
        with open(cfg, "w") as f:
            f.write("[chunk]\ntarget_tokens = %d\nmax_tokens = %d\n[ingest]\non_start = false\n"
                    % (args.chunk_tokens, args.chunk_tokens * 3 // 2))
        qtxt, nq = queries_file(tmp)
        res["queries"] = nq
        data = os.path.join(tmp, "data")
        shutil.rmtree(data, ignore_errors=True)
        # Ingest once (Flat), through the CLI, on one core: CPU time of the child.
        print("== ingest %d files, %.1f MB" % (files, nbytes / 1e6), file=sys.stderr)
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
        res["ingest"] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                         "user_s": round(after.ru_utime - before.ru_utime, 3),
                         "sys_s": round(after.ru_stime - before.ru_stime, 3),
                         "mb_per_s_wall": round(nbytes / 1e6 / wall, 3),
                         "mb_per_s_cpu": round(nbytes / 1e6 / cpu, 3),
                         "chunks": rep["chunks"]["added"], "documents": rep["documents"]}
        truth = None
        res["configs"] = {}
        for factory in args.factories.split(","):
            print("== %s" % factory, file=sys.stderr)
            c = {}
            # A first start of another type rebuilds the index from SQLite (HNSW: the build);
            # the second start loads the saved file.
            d = Daemon(binary, data, env_for(factory, cfg), log)
            c["first_start_s"] = d.start_s
            d.stop()
            d = Daemon(binary, data, env_for(factory, cfg), log)
            c["start_s"] = d.start_s
            c["health"] = d.health_ms()
            c["rss_after_start"] = proc_status(d.proc.pid)
            runs = {}
            for mode in ("vector", "keyword", "hybrid", None):
                for conc in (1, 2, 8):
                    r = bench_http(d.port, qtxt, conc, args.requests, mode=mode)
                    runs["%s/%d" % (mode or "default", conc)] = r
                    print("   %-8s c%d p50 %.2f p95 %.2f rps %.1f" % (
                        mode or "default", conc, r["p50_ms"], r["p95_ms"], r["rps"]),
                        file=sys.stderr)
            c["runs"] = runs
            ids = os.path.join(tmp, "ids-%s.bin" % factory)
            if factory == "Flat":
                bench_http(d.port, qtxt, 1, nq, mode="vector", ids=ids)
                truth = ids_read(ids, nq)
            elif truth is not None:
                sweep = {}
                for ef in [int(x) for x in args.efs.split(",")]:
                    bench_http(d.port, qtxt, 1, nq, mode="vector", ef=ef, ids=ids)
                    rr = recall(ids_read(ids, nq), truth)
                    v1 = bench_http(d.port, qtxt, 1, args.requests, mode="vector", ef=ef)
                    h1 = bench_http(d.port, qtxt, 1, args.requests, mode="hybrid", ef=ef)
                    sweep[str(ef)] = {"recall_at_10": rr, "vector": v1, "hybrid": h1}
                    print("   ef %d recall %.3f vector p95 %.2f hybrid p95 %.2f" % (
                        ef, rr or 0, v1["p95_ms"], h1["p95_ms"]), file=sys.stderr)
                c["ef_sweep"] = sweep
            c["rss"] = proc_status(d.proc.pid)
            d.stop()
            res["configs"][factory] = c
        # The keyword bound against the unbounded keyword search, same store, one run.
        kb = {}
        for bound in ("0", "4000", "1000"):
            d = Daemon(binary, data, env_for(args.factories.split(",")[-1], cfg,
                                             {"RAGD_RETRIEVE_KEYWORD_MAX_MATCHES": bound}), log)
            kb[bound] = {"keyword": bench_http(d.port, qtxt, 1, args.requests, mode="keyword"),
                         "hybrid": bench_http(d.port, qtxt, 1, args.requests, mode="hybrid")}
            print("   keyword_max_matches %s: keyword p50 %.2f p95 %.2f" % (
                bound, kb[bound]["keyword"]["p50_ms"], kb[bound]["keyword"]["p95_ms"]),
                file=sys.stderr)
            d.stop()
        res["keyword_bound"] = kb
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
