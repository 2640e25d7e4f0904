#!/usr/bin/env python3
"""Interleaved A/B of ragd daemons on copies of one store: each round, every side is driven
with bench_http (mode vector) at each (ef, concurrency) in turn; medians over rounds, and the
daemon's CPU per request (utime + stime from /proc). Part B (session 5) wrote it, part B2 added
the CPU column. Usage: bench_http_sides.py '{"sides": [{"name": "base", "bin": B, "data": DIR},
...], "dims": 384, "factory": "HNSW32", "qtxt": PREFIX.qtxt, "rounds": 6, "efs": [16],
"conc": [1], "requests": 3000, "out": OUT.json}' (each side its own copy of the store;
optional "mode": keyword or hybrid instead of vector, part E of session 6)."""
import json, os, subprocess, sys, signal, statistics
from benchlib import free_port, proc_cpu_s, wait_ready
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BB = REPO + "/build/bench"
cfg_logdir = os.environ.get("TMPDIR", "/tmp")
def start(binary, data, dims, factory, extra_env):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGD_")}
    env.update({"RAGD_EMBED_DIMS": str(dims), "RAGD_STORE_INDEX_FACTORY": factory,
                "RAGD_EMBED_PROVIDER": "local"})
    env.update(extra_env)
    log = os.path.join(cfg_logdir, "d-%d.log" % port)
    p = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:%d" % port, "--data-dir", data,
                          "--no-ingest", "--log-level", "warn"], env=env,
                         stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    wait_ready(p, port, 600, log)
    return p, port
def main():
    cfg = json.loads(sys.argv[1])
    sides = []
    for s in cfg["sides"]:
        p, port = start(s["bin"], s["data"], cfg["dims"], cfg["factory"], s.get("env", {}))
        sides.append((s["name"], p, port))
    res = {}
    try:
        for r in range(cfg["rounds"]):
            for ef in cfg["efs"]:
                for c in cfg["conc"]:
                    order = sides if r % 2 == 0 else sides[::-1]
                    for name, p, port in order:
                        cmd = [BB + "/bench_http", "--port", str(port), "--queries", cfg["qtxt"],
                               "--k", "10", "--concurrency", str(c), "--requests",
                               str(cfg["requests"] * (4 if c > 1 else 1)), "--mode",
                               cfg.get("mode", "vector"),
                               "--ef-search", str(ef)]
                        c0 = proc_cpu_s(p.pid)
                        out = json.loads(subprocess.run(cmd, capture_output=True, text=True,
                                                        check=True).stdout)
                        out["cpu_us_per_req"] = (proc_cpu_s(p.pid) - c0) * 1e6 / out.get("requests", cfg["requests"])
                        res.setdefault("%s ef%d c%d" % (name, ef, c), []).append(out)
    finally:
        for name, p, port in sides:
            p.send_signal(signal.SIGTERM); p.wait()
    summary = {}
    for key, runs in res.items():
        def med(f):
            v = [f(o) for o in runs if f(o) is not None]
            return round(statistics.median(v), 4) if v else None
        summary[key] = {"p50": med(lambda o: o.get("p50_ms")), "p95": med(lambda o: o.get("p95_ms")),
                        "rps": med(lambda o: o.get("rps") or o.get("requests_per_s")),
                        "vs": med(lambda o: (o.get("server_ms") or o.get("timings_ms") or {}).get("vector_search")),
                        "ks": med(lambda o: (o.get("server_ms") or o.get("timings_ms") or {}).get("keyword_search")),
                        "cpu_us": med(lambda o: o.get("cpu_us_per_req")), "total": med(lambda o: (o.get("server_ms") or o.get("timings_ms") or {}).get("total"))}
    out = {"config": cfg, "loadavg_end": open("/proc/loadavg").read().strip(), "summary": summary, "runs": res}
    json.dump(out, open(cfg["out"], "w"), indent=1)
    for k in sorted(summary): print(k, summary[k])
main()
