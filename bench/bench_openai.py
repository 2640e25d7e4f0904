#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
bench_openai.py - ingest wall time with a remote embedding provider, simulated by the fake OpenAI
server (tests/fake_openai.py, from issue 5) answering every request after --latency-ms (50 ms),
as the number of embedding requests ragd keeps in flight grows. The corpus is the project's docs
repeated (as bench_core.py). It needs tests/fake_openai.py and ragd's openai provider; when
either is missing, or ragd has no [embed] setting for requests in flight, it prints why and
records {"status": "not run", "reason": ...}: never a number it did not measure.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
from bench_scale import make_ingest_corpus  # noqa: E402

FAKE = os.path.join(REPO, "tests", "fake_openai.py")
INFLIGHT_WORDS = ("in_flight", "inflight", "concurren", "parallel")


def not_run(out, reason):
    print("bench_openai: not run: " + reason, flush=True)
    with open(out, "w") as f:
        json.dump({"status": "not run", "reason": reason}, f, indent=1)


def base_env():
    return {k: v for k, v in os.environ.items()
            if not k.startswith("RAGD_") and not k.startswith("OPENAI_")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="./ragd")
    ap.add_argument("--out", default="bench/results/openai.json")
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--inflight", default="1,2,4,8,16")
    args = ap.parse_args()

    if not os.path.exists(FAKE):
        return not_run(args.out, "tests/fake_openai.py is absent (issue 5 not merged)")
    env = base_env()
    env.update({"RAGD_EMBED_PROVIDER": "openai", "OPENAI_API_KEY": "bench-key",
                "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    chk = subprocess.run([args.bin, "check-config"], env=env, capture_output=True, text=True)
    if chk.returncode != 0:
        return not_run(args.out, "ragd has no openai embedding provider: " +
                       chk.stderr.strip()[-300:])
    section, knob = None, None
    for line in chk.stdout.splitlines():
        m = re.match(r"\[(\w+)\]", line)
        if m:
            section = m.group(1)
        m = re.match(r"(\w+)\s*=", line)
        if m and section == "embed" and any(w in m.group(1) for w in INFLIGHT_WORDS):
            knob = m.group(1)
    if knob is None:
        return not_run(args.out, "ragd's [embed] section has no setting for requests in flight "
                       "(looked for a key containing %s)" % "/".join(INFLIGHT_WORDS))

    fake = subprocess.Popen([sys.executable, FAKE, "--host", "127.0.0.1", "--port", "0",
                             "--latency-ms", str(args.latency_ms)], stdout=subprocess.PIPE,
                            text=True)
    tmp = tempfile.mkdtemp(prefix="ragd-bench-openai-")
    try:
        line = fake.stdout.readline().split()
        if len(line) != 2 or line[0] != "READY":
            return not_run(args.out, "fake_openai.py did not print READY <port>")
        port = int(line[1])
        base = "http://127.0.0.1:%d" % port
        corpus = os.path.join(tmp, "corpus")
        nbytes = make_ingest_corpus(corpus, args.copies)
        runs = []
        for n in [int(x) for x in args.inflight.split(",") if x]:
            urllib.request.urlopen(urllib.request.Request(base + "/_reset", data=b"{}",
                                                          method="POST")).read()
            data = os.path.join(tmp, "data%d" % n)
            e = dict(env)
            e.update({"OPENAI_BASE_URL": base + "/v1",
                      "RAGD_EMBED_" + knob.upper(): str(n)})
            t = time.perf_counter()
            p = subprocess.run([args.bin, "ingest", "--path", corpus, "--data-dir", data,
                                "--json", "--log-level", "warn"], env=e, capture_output=True,
                               text=True)
            wall = time.perf_counter() - t
            stats = json.loads(urllib.request.urlopen(base + "/_stats").read())
            if p.returncode != 0:
                runs.append({"in_flight": n, "status": "failed", "stderr": p.stderr[-500:]})
                continue
            rep = json.loads(p.stdout)
            runs.append({"in_flight": n, "seconds": round(wall, 3),
                         "mb_per_s": round(nbytes / 1e6 / wall, 3),
                         "chunks": rep["chunks"]["added"], "requests": stats.get("requests"),
                         "in_flight_max_seen": stats.get("in_flight_max")})
            print("   openai @%d ms, %s=%d: %.2f s, %s requests" % (
                args.latency_ms, knob, n, wall, stats.get("requests")), flush=True)
            shutil.rmtree(data, ignore_errors=True)
        with open(args.out, "w") as f:
            json.dump({"status": "ok", "latency_ms": args.latency_ms, "setting": "embed." + knob,
                       "corpus_bytes": nbytes, "runs": runs}, f, indent=1)
    finally:
        fake.terminate()
        fake.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
