#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
bench_scale.py - retrieval at scale, side by side in one run: for every (chunks, dims, index type)
it fills a data dir with synthetic unit vectors (bench_load, through ragd's store APIs), measures
the raw-FAISS floor on the very index file ragd serves (bench_floor, which also makes the query
set: text embedded by ragd's local embedder, and the exact top-k), serves it with the release
./ragd and drives POST /retrieve over loopback with bench_http (concurrency 1, 8, 64; without and
with a tag filter; then again while an ingest runs), records the daemon's peak RSS, and runs the
peers (USearch and LanceDB from npm) on the same vectors and queries. The HTTP floor (bench_engine,
ragd's connection engine answering a fixed reply) is measured once. Nothing here asserts a timing. Writes one JSON file.

Every request names its `mode`. `vector` is the vector floor: its recall@k is against the exact
vector top-k (brute force over the same vectors). `hybrid` (the daemon's default) fuses the
keyword and the vector lists, so its reference is what hybrid returns when the vector side is
exact: the hybrid answers of the Flat store of the same vectors (same run, same chunk ids); an
HNSW store's hybrid recall is measured against those, a Flat store's is 1 by construction and
is not reported as a measurement (its overlap with the exact vector top-k is, for information).

--dists uniform,clustered: `uniform` draws independent random unit vectors (no neighbourhood
structure: HNSW's worst case); `clustered` a Gaussian mixture (bench_load --dist clustered), with
the questions' own vectors among the clusters' seeds, as real questions lie among the passages
that answer them.

At equal recall: for an HNSW store every system (ragd over HTTP with the per-request
`ef_search`, raw FAISS, USearch, LanceDB) sweeps its own ef over --ef-sweep, and the smallest ef
reaching --recall-target (recall@k against the exact top-k) is where its latency is compared
("at_target"). The grid starts at k (10) and is finer below 32, so each system is compared near
the smallest ef it needs. LanceDB's brute force is measured beside the Flat store.

Both cores: the ratio of concurrency 8's requests/s to concurrency 1's is measured apart from the
latency runs, in --scaling-rounds interleaved pairs of --scaling-seconds runs (the order
alternating per round; "scaling" in the JSON), and the median of the rounds' ratios is the figure:
two single runs minutes apart on this shared machine swing by 15%.

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
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_core import make_corpus  # noqa: E402 - the docs/ repeated, paragraphs made unique
from benchlib import free_port, proc_status, scaling_rounds, wait_ready  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BB = os.path.join(REPO, "build", "bench")
PEER = os.path.join(REPO, "bench", "peer")
K = 10


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


class Daemon:
    def __init__(self, data, dims, factory, ef, log, binary=None, extra_env=None):
        """Starts `ragd serve` on data: binary (default: the release build) with the bench's
        environment plus extra_env (a dict, may be None)."""
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAGD_")}
        env.update({"RAGD_EMBED_DIMS": str(dims), "RAGD_STORE_INDEX_FACTORY": factory,
                    "RAGD_STORE_HNSW_EF_SEARCH": str(ef), "RAGD_EMBED_PROVIDER": "local",
                    # The ingest-while-serving corpus is written beside the data dir.
                    "RAGD_INGEST_ALLOWED_ROOTS": os.path.dirname(os.path.abspath(data))})
        env.update(extra_env or {})
        self.log = open(log, "wb")
        t = time.perf_counter()
        ragd = binary or os.path.join(REPO, "build", "release", "ragd")
        self.proc = subprocess.Popen([ragd, "serve", "--listen",
                                      "127.0.0.1:%d" % self.port, "--data-dir", data,
                                      "--no-ingest", "--log-level", "warn"], env=env,
                                     stdout=self.log, stderr=self.log)
        wait_ready(self.proc, self.port, 1800, log)
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


def http_run(port, qtxt, conc, requests, filt=False, ids=None, path="/retrieve", mode=None,
             ef_search=None):
    cmd = [os.path.join(BB, "bench_http"), "--port", str(port), "--queries", qtxt, "--k", str(K),
           "--concurrency", str(conc), "--requests", str(requests), "--path", path]
    if filt:
        cmd.append("--filter")
    if ids:
        cmd += ["--ids", ids]
    if mode:
        cmd += ["--mode", mode]
    if ef_search:
        cmd += ["--ef-search", str(ef_search)]
    return run_json(cmd)


def ingest_while_serving(d, corpus, qtxt, requests, before=None):
    """POSTs /ingest of corpus to the Daemon d on a thread and, while it runs, drives vector
    requests at concurrency 1, 8 and 8 with a tag filter (requests each). before: called just
    before the ingest starts (may be None). Returns: (the ingest's status, report and seconds;
    bench_http's figures per run, with whether the ingest was still running at its end)."""
    box = {}

    def ingest():
        t = time.perf_counter()
        box["status"], box["report"] = d.post("/ingest", {"path": corpus})
        box["seconds"] = time.perf_counter() - t

    if before is not None:
        before()
    th = threading.Thread(target=ingest)
    th.start()
    time.sleep(0.2)
    during = {}
    for c, filt in ((1, False), (8, False), (8, True)):
        key = "c%d%s" % (c, "_filter" if filt else "")
        during[key] = http_run(d.port, qtxt, c, requests, filt=filt, mode="vector")
        during[key]["ingest_still_running"] = th.is_alive()
    th.join()
    return box, during


def at_target(sweep, target):
    """The first (smallest-ef) point of a sweep reaching target recall, else the best one, marked."""
    ok = [p for p in sweep if p.get("recall_at_k") is not None and p["recall_at_k"] >= target]
    if ok:
        return dict(min(ok, key=lambda p: p["ef"]), reached=True)
    if not sweep:
        return None
    return dict(max(sweep, key=lambda p: p.get("recall_at_k") or 0), reached=False)


def http_floor(qtxt, requests):
    p = subprocess.Popen([os.path.join(BB, "bench_engine")],
                         stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline().split()[1])
        return {str(c): http_run(port, qtxt, c, requests) for c in (1, 8, 64)}
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


def one_config(tmp, n, dims, factory, dist, ef, m, args, log):
    tag = "%s-%d-%d-%s" % (factory, n, dims, dist)
    log("== %s: %d chunks x %d dims, %s vectors" % (factory, n, dims, dist))
    data = os.path.join(tmp, "data-" + tag)
    pre = os.path.join(tmp, "vec-" + tag)
    # The Flat store's hybrid answers: the reference for the HNSW store of the same vectors.
    hybrid_ref = os.path.join(tmp, "hybrid-ref-%d-%d-%s" % (n, dims, dist))
    res = {"chunks": n, "dims": dims, "factory": factory, "dist": dist, "ef_search": ef,
           "raw_vector_bytes": n * dims * 4}
    load = [os.path.join(BB, "bench_load"), "--data-dir", data, "--n", str(n), "--dims",
            str(dims), "--factory", factory, "--ef", str(ef), "--seed", "7", "--out", pre]
    if dist == "clustered":
        run_json([os.path.join(BB, "bench_floor"), "--queries-only", "1", "--vec", pre,
                  "--dims", str(dims), "--queries", str(args.queries)])
        load += ["--dist", "clustered", "--clusters", str(args.clusters), "--spread",
                 str(args.spread), "--centroids", pre + ".qvec"]
    res["load"] = run_json(load)
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
    hnsw = factory.startswith("HNSW")
    sweep_efs = [int(x) for x in args.ef_sweep.split(",") if x] if hnsw else []
    targets = {}
    if sweep_efs:
        fs = []
        for e in sweep_efs:
            r = run_json([os.path.join(BB, "bench_floor"), "--index",
                          os.path.join(data, "index.faiss"), "--vec", pre, "--dims", str(dims),
                          "--queries", str(nq), "--k", str(K), "--ef", str(e), "--rounds",
                          str(rounds)])
            fs.append({"ef": e, "recall_at_k": r["recall_at_k"], "p50_ms": r["p50_ms"],
                       "p95_ms": r["p95_ms"], "p99_ms": r["p99_ms"]})
            log("   raw FAISS ef %4d: recall %.3f p50 %.3f p95 %.3f ms" % (
                e, r["recall_at_k"], r["p50_ms"], r["p95_ms"]))
            if r["recall_at_k"] >= args.recall_target:
                break
        res["floor_sweep"] = fs
        targets["faiss"] = at_target(fs, args.recall_target)
    # About args.seconds of work per HTTP run at concurrency 1.
    per = max(res["floor"]["p50_ms"], 0.3) + 0.3
    reqs = int(min(args.max_requests, max(args.min_requests, args.seconds * 1000 / per)))
    qtxt = pre + ".qtxt"
    d = Daemon(data, dims, factory, ef, os.path.join(tmp, "ragd-%s.log" % tag))
    res["ragd_start_s"] = d.start_s
    try:
        ids = pre + ".ragd_ids"
        http = {}
        # Recall first: every query once, in order, one connection, mode vector.
        http["recall_pass"] = http_run(d.port, qtxt, 1, nq, ids=ids, mode="vector")
        res["ragd_recall_at_k"] = recall(ids, pre + ".gt", nq)
        log("   ragd vector recall %.3f (against the exact vector top-k)" % res["ragd_recall_at_k"])
        for filt in (False, True):
            for c in (1, 8, 64):
                key = "c%d%s" % (c, "_filter" if filt else "")
                http[key] = http_run(d.port, qtxt, c, reqs, filt=filt, mode="vector")
                log("   ragd vector %-12s p50 %.3f p95 %.3f p99 %.3f ms, %.0f req/s" % (
                    key, http[key]["p50_ms"], http[key]["p95_ms"], http[key]["p99_ms"],
                    http[key]["rps"]))
        res["http"] = http
        res["http_mode"] = "vector"
        if args.scaling_rounds > 0:
            sc = res["scaling"] = scaling_rounds(
                lambda c, n: http_run(d.port, qtxt, c, n, mode="vector"), http["c1"]["rps"],
                args.scaling_rounds, args.scaling_seconds, args.min_requests)
            log("   ragd vector c8/c1 in %d interleaved rounds: %s; median %.2fx" % (
                len(sc["rounds"]), ", ".join("%.2f" % r["c8_over_c1"] for r in sc["rounds"]),
                sc["median_c8_over_c1"]))
        # The other modes, each with its own recall reference.
        res["modes"] = {}
        for mode in [x for x in args.modes.split(",") if x and x != "vector"]:
            mo = {}
            mids = pre + "." + mode + "_ids"
            mo["recall_pass"] = http_run(d.port, qtxt, 1, nq, ids=mids, mode=mode)
            mo["overlap_with_exact_vector_topk"] = recall(mids, pre + ".gt", nq)
            if mode == "hybrid":
                if factory == "Flat":
                    shutil.copyfile(mids, hybrid_ref)
                    mo["recall_reference"] = "is the reference (exact vector side)"
                elif os.path.exists(hybrid_ref):
                    mo["recall_at_k"] = recall(mids, hybrid_ref, nq)
                    mo["recall_reference"] = "hybrid over the Flat store of the same vectors"
                else:
                    mo["recall_reference"] = "not measured: no Flat store of these vectors in this run"
            for c in (1, 8):
                key = "c%d" % c
                mo[key] = http_run(d.port, qtxt, c, reqs, mode=mode)
                log("   ragd %s %-6s p50 %.3f p95 %.3f p99 %.3f ms, %.0f req/s (recall %s)" % (
                    mode, key, mo[key]["p50_ms"], mo[key]["p95_ms"], mo[key]["p99_ms"],
                    mo[key]["rps"], mo.get("recall_at_k", "-")))
            res["modes"][mode] = mo
        # ragd's own ef for the recall target (per-request ef_search), and its latency there.
        if sweep_efs:
            rs = []
            for e in sweep_efs:
                http_run(d.port, qtxt, 1, nq, ids=ids, mode="vector", ef_search=e)
                r = {"ef": e, "recall_at_k": recall(ids, pre + ".gt", nq)}
                rs.append(r)
                if r["recall_at_k"] is not None and r["recall_at_k"] >= args.recall_target:
                    break
            t = at_target(rs, args.recall_target)
            for c in (1, 8):
                h = http_run(d.port, qtxt, c, reqs, mode="vector", ef_search=t["ef"])
                t["c%d" % c] = {x: h[x] for x in ("p50_ms", "p95_ms", "p99_ms", "rps")}
            t.update({x: t["c1"][x] for x in ("p50_ms", "p95_ms", "p99_ms")})
            res["ragd_ef_sweep"] = rs
            targets["ragd"] = t
            log("   ragd at recall target: ef %d recall %.3f c1 p50 %.3f p95 %.3f ms, c8 %.0f "
                "req/s" % (t["ef"], t["recall_at_k"], t["p50_ms"], t["p95_ms"], t["c8"]["rps"]))
        res["requests_per_run"] = reqs
        st = proc_status(d.proc.pid)
        res["ragd_rss_peak_bytes"] = st.get("VmHWM")
        res["ragd_rss_bytes"] = st.get("VmRSS")
    except BaseException:
        d.stop()
        raise
    try:  # the daemon stays up: side by side with LanceDB, then the ingest (it adds chunks)
        peers(res, targets, d, qtxt, reqs, pre, tmp, dims, hnsw, sweep_efs, m, ef, rounds, args, log)
        ingest_phase(res, d, tmp, tag, qtxt, reqs, args, log)
    finally:
        d.stop()
    return finish(res, targets, data, pre, args, log)


def ingest_phase(res, d, tmp, tag, qtxt, reqs, args, log):
    """While an ingest runs: the docs corpus through POST /ingest to the Daemon d, measured
    concurrently (args.ingest_copies copies; 0: none), and the daemon's peak RSS after."""
    # While an ingest runs: the docs corpus through POST /ingest, measured concurrently.
    if args.ingest_copies > 0:
        corpus = os.path.join(tmp, "ingest-" + tag)
        nbytes = make_corpus(corpus, args.ingest_copies)
        # A third of the usual requests, so the runs overlap the ingest.
        box, during = ingest_while_serving(d, corpus, qtxt,
                                           max(args.min_requests, reqs // 3))
        for key, h in during.items():
            log("   ragd during ingest %-9s p50 %.3f p95 %.3f ms (ingest running at end: %s)"
                % (key, h["p50_ms"], h["p95_ms"], h["ingest_still_running"]))
        res["http_during_ingest"] = during
        res["ingest_during"] = {"bytes": nbytes, "seconds": round(box.get("seconds", 0), 3),
                                "status": box.get("status"),
                                "chunks_added": box.get("report", {}).get("chunks", {})
                                .get("added")}
        shutil.rmtree(corpus, ignore_errors=True)
    st = proc_status(d.proc.pid)
    res["ragd_rss_peak_after_ingest_bytes"] = st.get("VmHWM")


def peers(res, targets, d, qtxt, reqs, pre, tmp, dims, hnsw, sweep_efs, m, ef, rounds, args, log):
    """The peers on the same vectors (USearch beside HNSW; LanceDB's brute force beside Flat, its
    HNSW beside HNSW), then ragd and LanceDB side by side at their own efs for the recall target
    (lancedb_rounds), while the Daemon d still serves."""
    if hnsw and not args.no_peer:
        try:
            cmd = ["node", os.path.join(PEER, "peer_usearch.js"), "--vec", pre, "--dims",
                   str(dims), "--k", str(K), "--m", str(m), "--ef", str(ef), "--rounds",
                   str(rounds), "--tmp", tmp]
            if sweep_efs:
                cmd += ["--ef-sweep", ",".join(str(e) for e in sweep_efs)]
            res["peer"] = run_json(cmd, cwd=PEER)
            log("   peer usearch: p50 %.3f ms recall %.3f (build %.1f s)" % (
                res["peer"]["p50_ms"], res["peer"]["recall_at_k"], res["peer"]["build_s"]))
            if res["peer"].get("sweep"):
                targets["usearch"] = at_target(res["peer"]["sweep"], args.recall_target)
        except (RuntimeError, OSError) as e:
            res["peer"] = {"status": "not run", "reason": str(e)[:500]}
    if not args.no_peer and not args.no_lancedb:
        # LanceDB: brute force beside Flat, its HNSW (IVF_HNSW_SQ, one partition) beside HNSW.
        try:
            cmd = ["node", os.path.join(PEER, "peer_lancedb.js"), "--vec", pre, "--dims",
                   str(dims), "--k", str(K), "--m", str(m or 32), "--rounds", str(rounds),
                   "--tmp", tmp]
            if hnsw:
                cmd += ["--ef-sweep", ",".join(str(e) for e in sweep_efs), "--brute-queries", "0"]
            else:
                cmd += ["--no-index", "--brute-queries", str(args.lancedb_brute_queries)]
            side_by_side = hnsw and args.lancedb_rounds > 0 and "ragd" in targets
            if side_by_side:
                cmd.append("--rounds-stdin")
            errs = tempfile.TemporaryFile("w+")  # a pipe nobody reads could fill and block it
            p = subprocess.Popen(cmd, cwd=PEER, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=errs, text=True)
            try:
                first = p.stdout.readline()
                if not first:
                    p.wait(timeout=60)
                    errs.seek(0)
                    raise RuntimeError("peer_lancedb.js failed (%s): %s" % (
                        p.returncode, errs.read()[-2000:]))
                res["peer_lancedb"] = json.loads(first)
                lb = res["peer_lancedb"]
                if side_by_side and lb.get("sweep"):
                    res["lancedb_rounds"] = lancedb_rounds(
                        p, d, qtxt, reqs, targets["ragd"]["ef"],
                        at_target(lb["sweep"], args.recall_target)["ef"], rounds, args, log)
            finally:
                p.stdin.close()
                p.wait(timeout=600)
                errs.close()
            if lb.get("brute", {}).get("queries"):
                log("   peer lancedb brute force: p50 %.3f ms recall %.3f (%d queries)" % (
                    lb["brute"]["p50_ms"], lb["brute"]["recall_at_k"], lb["brute"]["queries"]))
            if lb.get("sweep"):
                targets["lancedb"] = at_target(lb["sweep"], args.recall_target)
                log("   peer lancedb HNSW-SQ (build %.1f s): %s" % (lb["build_s"], ", ".join(
                    "ef %d recall %.3f p50 %.3f" % (p["ef"], p["recall_at_k"], p["p50_ms"])
                    for p in lb["sweep"])))
        except (RuntimeError, OSError, ValueError) as e:
            res["peer_lancedb"] = {"status": "not run", "reason": str(e)[:500]}


def lancedb_rounds(p, d, qtxt, reqs, ragd_ef, lance_ef, passes, args, log):
    """ragd (over HTTP, concurrency 1, at its ef for the recall target) and LanceDB (the
    peer_lancedb.js process p, --rounds-stdin, at its own ef) timed in turn, args.lancedb_rounds
    rounds, which goes first alternating: a shared machine's drift hits both alike. Returns:
    each round's p50/p95 per side and LanceDB/ragd ratios, and the medians."""
    out = []
    for r in range(args.lancedb_rounds):
        got = {}
        for side in (("ragd", "lancedb") if r % 2 == 0 else ("lancedb", "ragd")):
            if side == "ragd":
                h = http_run(d.port, qtxt, 1, reqs, mode="vector", ef_search=ragd_ef)
            else:
                p.stdin.write("%d %d\n" % (lance_ef, passes))
                p.stdin.flush()
                h = json.loads(p.stdout.readline() or "{}")
                if "p50_ms" not in h:
                    raise RuntimeError("peer_lancedb.js: %s" % h.get("error", "no answer"))
            got[side] = {x: h[x] for x in ("p50_ms", "p95_ms")}
        row = dict(got, p50_ratio=got["lancedb"]["p50_ms"] / got["ragd"]["p50_ms"],
                   p95_ratio=got["lancedb"]["p95_ms"] / got["ragd"]["p95_ms"])
        out.append(row)
        log("   side by side, round %d: ragd p50 %.3f p95 %.3f ms, LanceDB p50 %.3f p95 %.3f ms: "
            "%.1fx / %.1fx" % (r + 1, got["ragd"]["p50_ms"], got["ragd"]["p95_ms"],
                               got["lancedb"]["p50_ms"], got["lancedb"]["p95_ms"],
                               row["p50_ratio"], row["p95_ratio"]))

    def med(f):
        return statistics.median(f(x) for x in out)
    return {"ragd_ef": ragd_ef, "lancedb_ef": lance_ef, "rounds": out,
            "median_p50_ratio": med(lambda x: x["p50_ratio"]),
            "median_p95_ratio": med(lambda x: x["p95_ratio"]),
            "ragd_median_p50_ms": med(lambda x: x["ragd"]["p50_ms"]),
            "ragd_median_p95_ms": med(lambda x: x["ragd"]["p95_ms"]),
            "lancedb_median_p50_ms": med(lambda x: x["lancedb"]["p50_ms"]),
            "lancedb_median_p95_ms": med(lambda x: x["lancedb"]["p95_ms"])}


def finish(res, targets, data, pre, args, log):
    """Records the per-system targets (at_target) and removes the configuration's files.
    Returns: res."""
    if targets:
        res["at_target"] = {"recall_target": args.recall_target, "systems": targets}
        log("   at recall@%d >= %.2f: %s" % (K, args.recall_target, ", ".join(
            "%s ef %s recall %.3f p50 %.3f p95 %.3f ms%s" % (
                k, t["ef"], t["recall_at_k"], t["p50_ms"], t["p95_ms"],
                "" if t["reached"] else " (NOT reached)") for k, t in targets.items())))
    shutil.rmtree(data, ignore_errors=True)
    for ext in (".vec", ".ids", ".qvec", ".gt", ".ragd_ids", ".hybrid_ids", ".keyword_ids"):
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
    ap.add_argument("--no-peer", action="store_true", help="no peers at all")
    ap.add_argument("--no-lancedb", action="store_true", help="USearch only")
    ap.add_argument("--lancedb-rounds", type=int, default=5,
                    help="rounds of ragd and LanceDB timed in turn at their efs for the recall "
                         "target (0: none; the verdict then compares their separate runs)")
    ap.add_argument("--lancedb-brute-queries", type=int, default=30,
                    help="queries for LanceDB's brute force (a scan takes 100s of ms)")
    ap.add_argument("--modes", default="vector,hybrid",
                    help="modes timed; vector always (it is the floor)")
    ap.add_argument("--dists", default="uniform",
                    help="vector distributions: uniform, clustered (comma-separated)")
    ap.add_argument("--clusters", type=int, default=0,
                    help="clustered: number of clusters (0: chunks / 100)")
    ap.add_argument("--spread", type=float, default=1.0,
                    help="clustered: noise norm around a centroid (unit centroids)")
    ap.add_argument("--ef-sweep", default="10,12,16,24,32,64,128,256,512,1024",
                    help="HNSW: ef values each system tries, smallest first")
    ap.add_argument("--recall-target", type=float, default=0.95)
    ap.add_argument("--scaling-rounds", type=int, default=5,
                    help="interleaved c1/c8 pairs for the c8/c1 ratio (0: none)")
    ap.add_argument("--scaling-seconds", type=float, default=3.0,
                    help="about this long per run of those pairs")
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
        # Flat first: its hybrid answers are the HNSW store's hybrid reference.
        factories.sort(key=lambda f: f != "Flat")
        dists = [x for x in args.dists.split(",") if x]
        for dist in dists:
            if dist not in ("uniform", "clustered"):
                ap.error("--dists: uniform or clustered, not %r" % dist)
        qfile = os.path.join(tmp, "floor.qtxt")
        with open(qfile, "w") as f:
            for i in range(200):
                f.write("how do I configure the backup index for daemon %d\n" % i)
        result["http_floor"] = http_floor(qfile, 3000)
        result["http_floor_server"] = "ragd engine"
        log("== HTTP floor (ragd's engine, fixed reply): " + ", ".join(
            "c%s p50 %.3f ms %.0f req/s" % (c, r["p50_ms"], r["rps"])
            for c, r in result["http_floor"].items()))
        for n in sizes:
            for dims in dims_list:
                for dist in dists:
                    for factory in factories:
                        m = int(factory[4:].split(",")[0] or 32) if factory.startswith("HNSW") \
                            else 0
                        try:
                            result["configs"].append(one_config(tmp, n, dims, factory, dist,
                                                                args.ef, m, args, log))
                        except (RuntimeError, OSError, ValueError, KeyError, TypeError) as e:
                            log("   FAILED: %s" % e)
                            result["configs"].append({"chunks": n, "dims": dims,
                                                      "factory": factory, "dist": dist,
                                                      "status": "failed",
                                                      "reason": str(e)[:1000]})
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
