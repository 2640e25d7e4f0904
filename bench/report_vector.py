# SPDX-License-Identifier: MIT
"""
report_vector.py - the section of docs/BENCHMARKS.md for issue 16's vector side (part B), called
by bench/report.py: ragd's SIMD index classes against FAISS's own (bench/results/simd.json, from
bench/bench_simd.py), the HNSW build-breadth sweep on real text, and the default index
(`index_factory = auto`) on real text per mode and concurrency (bench/results/real-vector.json,
from bench/bench_real.py --factories Flat,auto). Only numbers from those files appear.
"""


def _f(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return ("%." + str(nd) + "f") % v
    return str(v)


def _load(s):
    return " ".join("%.1f" % x for x in s[:3]) if s else "-"


def section(w, simd, real, real_sizes=None):
    w("## Vector side: SIMD kernels, the default index at scale (issue 16, part B)")
    w("")
    if not simd and not real and not real_sizes:
        w("Not measured in this run (`python3 bench/bench_simd.py`, `python3 bench/bench_real.py "
          "--factories Flat,auto --out bench/results/real-vector.json`).")
        w("")
        return
    if simd and simd.get("ab"):
        w("ragd's FAISS storage classes with AVX-512F / AVX2 kernels against Debian's FAISS 1.7.3 "
          "classes (scalar reference kernels), the same vectors and queries in one process, "
          "searches alternated query by query; search times are the thread's CPU time (one "
          "thread per search), builds use both cores (wall) and the calling thread's CPU time. "
          "Recall@10 against the exact top 10. Started %s on %s cores." % (
              simd.get("started"), simd.get("nproc")))
        w("")
        w("| run | level | FAISS p50 / p95 ms | ragd p50 / p95 ms | speed-up p50 | recall FAISS "
          "/ ragd | build wall s FAISS / ragd | load before / after |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in simd["ab"]:
            fb, rb = r.get("faiss_build_ms", {}), r.get("ragd_build_ms", {})
            hnsw = r.get("factory", "").startswith("HNSW")
            w("| %s | %s | %s / %s | %s / %s | %sx | %s / %s | %s | %s / %s |" % (
                r["label"], r.get("simd"), _f(r["faiss_search_cpu_ms"]["p50"], 3),
                _f(r["faiss_search_cpu_ms"]["p95"], 3), _f(r["ragd_search_cpu_ms"]["p50"], 3),
                _f(r["ragd_search_cpu_ms"]["p95"], 3), _f(r.get("speedup_p50")),
                _f(r.get("faiss_recall"), 3), _f(r.get("ragd_recall"), 3),
                "%s / %s" % (_f(fb.get("wall", 0) / 1e3, 1), _f(rb.get("wall", 0) / 1e3, 1))
                if hnsw else "-", _load(r.get("load_before")), _load(r.get("load_after"))))
        w("")
        w("Commands: " + "; ".join("`%s`" % r["command"] for r in simd["ab"]) + ".")
        w("")
    if simd and simd.get("real"):
        w("HNSW32 on real text (the vectors of the Flat store below and its questions, embedded "
          "by ragd's local embedder), built with ragd's kernels: recall@10 against the exact top "
          "10 and search CPU time per efSearch, for each build breadth (efConstruction).")
        w("")
        w("| efConstruction | build wall s | efSearch | recall@10 | search p50 / p95 ms |")
        w("| --- | --- | --- | --- | --- |")
        for r in simd["real"]:
            for ef, s in sorted(r.get("sweep", {}).items(), key=lambda x: int(x[0])):
                w("| %s | %s | %s | %s | %s / %s |" % (
                    r.get("efc") or 40, _f(r["ragd_build_ms"]["wall"] / 1e3, 1), ef,
                    _f(s["recall"], 3), _f(s["p50"], 3), _f(s["p95"], 3)))
        w("")
        w("Commands: " + "; ".join("`%s`" % r["command"] for r in simd["real"]) + ".")
        w("")
    for real in (real, real_sizes):
        if not real:
            continue
        if "sizes" in real:
            for size, sres in sorted(real["sizes"].items(), key=lambda x: int(x[0])):
                chunks = sres.get("ingest", {}).get("chunks") or int(size)
                _real_configs(w, chunks, sres.get("configs", {}), real.get("load_before"),
                              real.get("load_after"))
        else:
            _real_configs(w, real.get("ingest", {}).get("chunks", 0), real.get("configs", {}),
                          real.get("load_before"), real.get("load_after"))


def _real_configs(w, chunks, configs, load_before, load_after):
    w("The defaults on real text (%s chunks of Debian's HTML documentation, 1024 dims, local "
      "embedder): `Flat` (exact) next to `auto`, which at this size is HNSW32 with "
      "efConstruction 128 and efSearch 256. Load average before / after: %s / %s."
      % (chunks, _load(load_before), _load(load_after)))
    w("")
    w("| index | mode | concurrency | p50 ms | p95 ms | req/s | server search / total ms |")
    w("| --- | --- | --- | --- | --- | --- | --- |")
    for fac, c in configs.items():
        for key, r in c.get("runs", {}).items():
            mode, conc = key.split("/")
            sm = r.get("server_ms", {})
            w("| %s | %s | %s | %s | %s | %s | %s / %s |" % (
                fac, mode, conc, _f(r["p50_ms"]), _f(r["p95_ms"]), _f(r["rps"], 1),
                _f(sm.get("search")), _f(sm.get("total"))))
    w("")
    for fac, c in configs.items():
        w("- %s: first start %s s (the index built from SQLite when its type changes), start "
          "with the saved index %s s." % (fac, _f(c.get("first_start_s"), 1),
                                          _f(c.get("start_s"), 1)))
        r1, r8 = c.get("runs", {}).get("vector/1"), c.get("runs", {}).get("vector/8")
        if r1 and r8 and r1.get("rps"):
            w("  Concurrency 8 / 1 (vector): %s / %s req/s = %.2fx." % (
                _f(r8["rps"], 1), _f(r1["rps"], 1), r8["rps"] / r1["rps"]))
        for ef, s in sorted(c.get("ef_sweep", {}).items(), key=lambda x: int(x[0])):
            w("  ef_search %s: recall@10 %s, vector p50 / p95 %s / %s ms, hybrid p50 / p95 "
              "%s / %s ms." % (ef, _f(s.get("recall_at_10"), 3), _f(s["vector"]["p50_ms"]),
                               _f(s["vector"]["p95_ms"]), _f(s["hybrid"]["p50_ms"]),
                               _f(s["hybrid"]["p95_ms"])))
    w("")
