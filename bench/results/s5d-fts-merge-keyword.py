#!/usr/bin/env python3
"""Throw-away: 100k-chunk HTML stores built with FTS5 merge settings 4 / N (env RAGD_X_FTSCFG of
the experiment binary), ingest CPU of each, then keyword- and hybrid-mode latency of each store,
served alternately, several rounds."""
import json, os, subprocess, sys, time, statistics
sys.path.insert(0, "/work/wt/nd/bench")
import bench_real as br
BIN = "/tmp/s5d/x-ragd"
W = "/tmp/s5d/real"
variants = sys.argv[1].split(",")  # e.g. 0,16 (0: default)
rounds = int(sys.argv[2])
os.makedirs(W, exist_ok=True)
cfg = os.path.join(W, "ragd.ini")
open(cfg, "w").write("[chunk]\ntarget_tokens = 128\nmax_tokens = 192\n[ingest]\non_start = false\n")
docs = os.path.join(W, "docs")
if not os.path.isdir(docs):
    br.corpus_copy(docs)
qtxt = "/tmp/s4/final-real/queries.txt"
out = {"ingest": {}, "serve": {}}
for v in variants:
    data = os.path.join(W, "data-%s" % v)
    if not os.path.isdir(data):
        env = br.env_for("Flat", cfg, {"RAGD_X_FTSCFG": v} if v != "0" else {})
        t = time.perf_counter()
        r0 = os.times()
        p = subprocess.run(["taskset", "-c", "0", BIN, "ingest", "--path", docs, "--data-dir", data,
                            "--json", "--log-level", "warn"], env=env, capture_output=True, text=True)
        r1 = os.times()
        assert p.returncode in (0, 3), p.stderr[-500:]
        out["ingest"][v] = {"cpu_s": round(r1.children_user + r1.children_system - r0.children_user - r0.children_system, 2),
                            "wall_s": round(time.perf_counter() - t, 2), "chunks": json.loads(p.stdout)["chunks"]["added"]}
        print("ingest", v, out["ingest"][v], file=sys.stderr, flush=True)
for rnd in range(rounds):
    for v in (variants if rnd % 2 == 0 else variants[::-1]):
        data = os.path.join(W, "data-%s" % v)
        d = br.Daemon(BIN, data, br.env_for("Flat", cfg), os.path.join(W, "serve.log"))
        try:
            for mode in ("keyword", "hybrid"):
                r = br.bench_http(d.port, qtxt, 1, 300, mode=mode)
                out["serve"].setdefault("%s/%s" % (v, mode), []).append(r)
                print(rnd, v, mode, r["p50_ms"], r["p95_ms"], r.get("server_ms"), os.getloadavg()[0], file=sys.stderr, flush=True)
        finally:
            d.stop()
summ = {}
for key, rs in out["serve"].items():
    summ[key] = {"p50_ms_median": statistics.median(r["p50_ms"] for r in rs),
                 "p95_ms_median": statistics.median(r["p95_ms"] for r in rs)}
out["summary"] = summ
print(json.dumps(summ, indent=1))
json.dump(out, open(sys.argv[3], "w"), indent=1)
