#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
bench_scale.py - retrieval at scale, side by side in one run: for every (chunks, dims, index type)
it fills a data dir with synthetic unit vectors (bench_load, through ragd's store APIs), measures
the raw-FAISS floor on the very index file ragd serves (bench_floor, which also makes the query
set: text embedded by ragd's local embedder, and the exact top-k), serves it with the release
./ragd and drives POST /retrieve over loopback with bench_http (concurrency 1, 8, 64; without and
with a tag filter; then again while an ingest runs), records the daemon's peak RSS, and runs the
peer (USearch from npm) on the same vectors and queries. The HTTP floor (bench_mhd, a bare
libmicrohttpd reply) is measured once. Recall@k of ragd, raw FAISS and the peer is measured
against the exact top-k. Nothing here asserts a timing. Writes one JSON file.

Budget: queries and requests shrink as a search gets slower (they are derived from the floor's
own latency), so 1M-chunk flat stores are measured with fewer requests rather than skipped; the
counts used are recorded next to every number.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import make_corpus  # noqa: E402 - the docs/ repeated, paragraphs made unique

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BB = os.path.join(REPO, "build", "bench")
PEER = os.path.join(REPO, "bench", "peer")
K = 10


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run_json(cmd, **kw):
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), out.returncode,
                                                   out.stderr[-2000:]))
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["wall_s"] = round(time.perf_counter() - t, 3)
    return r


def recall(ids_path, gt_path, nq):
    a = open(ids_path, "rb").read()
    g = open(gt_path, "rb").read()
    n = nq * K
    if len(a) < n * 8 or len(g) < n * 8:
        return None
    A = struct.unpack("%dq" % n, a[:n * 8])
    G = struct.unpack("%dq" % n, g[:n * 8])
    hits = sum(len(set(A[i:i + K]) & set(G[i:i + K])) for i in range(0, n, K))
    return round(hits / n, 4)


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


class Daemon:
    def __init__(self, data, dims, factory, ef, log):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAGD_")}
        env.update({"RAGD_EMBED_DIMS": str(dims), "RAGD_STORE_INDEX_FACTORY": factory,
                    "RAGD_STORE_HNSW_EF_SEARCH": str(ef), "RAGD_EMBED_PROVIDER": "local"})
        self.log = open(log, "wb")
        t = time.perf_counter()
        ragd = os.path.join(REPO, "build", "release", "ragd")
        self.proc = subprocess.Popen([ragd, "serve", "--listen",
                                      "127.0.0.1:%d" % self.port, "--data-dir", data,
                                      "--no-ingest", "--log-level", "warn"], env=env,
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 1800
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

    def post(self, path, body, timeout=3600):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, json.loads(r.read())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def http_run(port, qtxt, conc, requests, filt=False, ids=None, path="/retrieve"):
    cmd = [os.path.join(BB, "bench_http"), "--port", str(port), "--queries", qtxt, "--k", str(K),
           "--concurrency", str(conc), "--requests", str(requests), "--path", path]
    if filt:
        cmd.append("--filter")
    if ids:
        cmd += ["--ids", ids]
    return run_json(cmd)


def http_floor(qtxt, requests):
    p = subprocess.Popen([os.path.join(BB, "bench_mhd"), "--threads", "4"],
                         stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline().split()[1])
        return {str(c): http_run(port, qtxt, c, requests) for c in (1, 8, 64)}
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


def one_config(tmp, n, dims, factory, ef, m, args, log):
    tag = "%s-%d-%d" % (factory, n, dims)
    log("== %s: %d chunks x %d dims" % (factory, n, dims))
    data = os.path.join(tmp, "data-" + tag)
    pre = os.path.join(tmp, "vec-" + tag)
    res = {"chunks": n, "dims": dims, "factory": factory, "ef_search": ef,
           "raw_vector_bytes": n * dims * 4}
    res["load"] = run_json([os.path.join(BB, "bench_load"), "--data-dir", data, "--n", str(n),
                            "--dims", str(dims), "--factory", factory, "--ef", str(ef),
                            "--seed", "7", "--out", pre])
    log("   loaded: sqlite %.1f s, index build %.1f s" % (res["load"]["sqlite_s"],
                                                        res["load"]["index_build_s"]))
    # Fewer queries where a search is slow (flat at 1M x 1536 scans 6 GB per query).
    cost = n * dims / (1e5 * 384) if factory == "Flat" else 1
    nq = args.queries if cost <= 10 else max(20, int(args.queries / 4))
    rounds = 3 if cost <= 10 else 1
    res["floor"] = run_json([os.path.join(BB, "bench_floor"), "--index",
                             os.path.join(data, "index.faiss"), "--vec", pre, "--dims", str(dims),
                             "--queries", str(nq), "--k", str(K), "--ef", str(ef),
                             "--rounds", str(rounds)])
    log("   raw FAISS: p50 %.3f ms p95 %.3f ms recall %.3f" % (
        res["floor"]["p50_ms"], res["floor"]["p95_ms"], res["floor"]["recall_at_k"]))
    # About args.seconds of work per HTTP run at concurrency 1.
    per = max(res["floor"]["p50_ms"], 0.3) + 0.3
    reqs = int(min(args.max_requests, max(args.min_requests, args.seconds * 1000 / per)))
    qtxt = pre + ".qtxt"
    d = Daemon(data, dims, factory, ef, os.path.join(tmp, "ragd-%s.log" % tag))
    res["ragd_start_s"] = d.start_s
    try:
        ids = pre + ".ragd_ids"
        http = {}
        # Recall first: every query once, in order, one connection.
        http["recall_pass"] = http_run(d.port, qtxt, 1, nq, ids=ids)
        res["ragd_recall_at_k"] = recall(ids, pre + ".gt", nq)
        for filt in (False, True):
            for c in (1, 8, 64):
                key = "c%d%s" % (c, "_filter" if filt else "")
                http[key] = http_run(d.port, qtxt, c, reqs, filt=filt)
                log("   ragd %-12s p50 %.3f p95 %.3f p99 %.3f ms, %.0f req/s" % (
                    key, http[key]["p50_ms"], http[key]["p95_ms"], http[key]["p99_ms"],
                    http[key]["rps"]))
        res["http"] = http
        res["requests_per_run"] = reqs
        st = proc_status(d.proc.pid)
        res["ragd_rss_peak_bytes"] = st.get("VmHWM")
        res["ragd_rss_bytes"] = st.get("VmRSS")
        # While an ingest runs: the docs corpus through POST /ingest, measured concurrently.
        if args.ingest_copies > 0:
            corpus = os.path.join(tmp, "ingest-" + tag)
            nbytes = make_corpus(corpus, args.ingest_copies)
            box = {}

            def ingest():
                t = time.perf_counter()
                box["status"], box["report"] = d.post("/ingest", {"path": corpus})
                box["seconds"] = time.perf_counter() - t

            th = threading.Thread(target=ingest)
            th.start()
            time.sleep(0.2)
            during = {}
            for c, filt in ((1, False), (8, False), (8, True)):
                key = "c%d%s" % (c, "_filter" if filt else "")
                # A third of the usual requests, so the runs overlap the ingest.
                during[key] = http_run(d.port, qtxt, c, max(args.min_requests, reqs // 3),
                                       filt=filt)
                during[key]["ingest_still_running"] = th.is_alive()
                log("   ragd during ingest %-9s p50 %.3f p95 %.3f ms (ingest running at end: %s)"
                    % (key, during[key]["p50_ms"], during[key]["p95_ms"], th.is_alive()))
            th.join()
            res["http_during_ingest"] = during
            res["ingest_during"] = {"bytes": nbytes, "seconds": round(box.get("seconds", 0), 3),
                                    "status": box.get("status"),
                                    "chunks_added": box.get("report", {}).get("chunks", {})
                                    .get("added")}
            shutil.rmtree(corpus, ignore_errors=True)
        st = proc_status(d.proc.pid)
        res["ragd_rss_peak_after_ingest_bytes"] = st.get("VmHWM")
    finally:
        d.stop()
    if factory.startswith("HNSW") and not args.no_peer:
        try:
            res["peer"] = run_json(["node", os.path.join(PEER, "peer_usearch.js"), "--vec", pre,
                                    "--dims", str(dims), "--k", str(K), "--m", str(m), "--ef",
                                    str(ef), "--rounds", str(rounds)], cwd=PEER)
            log("   peer usearch: p50 %.3f ms recall %.3f (build %.1f s)" % (
                res["peer"]["p50_ms"], res["peer"]["recall_at_k"], res["peer"]["build_s"]))
        except (RuntimeError, OSError) as e:
            res["peer"] = {"status": "not run", "reason": str(e)[:500]}
    shutil.rmtree(data, ignore_errors=True)
    for ext in (".vec", ".ids", ".qvec", ".gt", ".ragd_ids"):
        if os.path.exists(pre + ext):
            os.remove(pre + ext)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/scale.json")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dims", default="384,1536")
    ap.add_argument("--factories", default="Flat,HNSW32")
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--min-requests", type=int, default=100)
    ap.add_argument("--max-requests", type=int, default=3000)
    ap.add_argument("--ingest-copies", type=int, default=100)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()

    def log(msg):
        print(msg, flush=True)

    tmp = tempfile.mkdtemp(prefix="ragd-scale-", dir=args.tmp)
    started = time.time()
    result = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "k": K,
              "command": " ".join([sys.argv[0]] + sys.argv[1:]), "configs": []}
    try:
        # The HTTP floor, with the first config's query texts.
        sizes = [int(x) for x in args.sizes.split(",") if x]
        dims_list = [int(x) for x in args.dims.split(",") if x]
        factories = [x for x in args.factories.split(",") if x]
        qfile = os.path.join(tmp, "floor.qtxt")
        with open(qfile, "w") as f:
            for i in range(200):
                f.write("how do I configure the backup index for daemon %d\n" % i)
        result["http_floor"] = http_floor(qfile, 3000)
        log("== HTTP floor (bare libmicrohttpd): " + ", ".join(
            "c%s p50 %.3f ms %.0f req/s" % (c, r["p50_ms"], r["rps"])
            for c, r in result["http_floor"].items()))
        for n in sizes:
            for dims in dims_list:
                for factory in factories:
                    m = int(factory[4:].split(",")[0] or 32) if factory.startswith("HNSW") else 0
                    try:
                        result["configs"].append(one_config(tmp, n, dims, factory, args.ef, m,
                                                            args, log))
                    except (RuntimeError, OSError, ValueError) as e:
                        log("   FAILED: %s" % e)
                        result["configs"].append({"chunks": n, "dims": dims, "factory": factory,
                                                  "status": "failed", "reason": str(e)[:1000]})
                    with open(args.out + ".tmp", "w") as f:
                        json.dump(result, f, indent=1)
    finally:
        result["seconds"] = round(time.time() - started, 1)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
        if os.path.exists(args.out + ".tmp"):
            os.remove(args.out + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
    log("wrote %s (%.0f s)" % (args.out, result["seconds"]))


if __name__ == "__main__":
    main()
