#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
bench_embed_remote.py - ragd with the "openai" embedding provider against tests/fake_openai.py
answering every request after a fixed latency (default 100 ms, a typical OpenAI round trip):

  1. /retrieve latency when the query embedding is a cache miss (one upstream request), a hit in
     the in-process LRU, and a hit in Redis (a fresh daemon, empty LRU; only when redis-server is
     installed), measured side by side in one run over the same queries;
  2. ingest wall time of one corpus with N embedding requests in flight vs 1 (same corpus, same
     batch size, fresh data dirs, one run).

Client times include HTTP on loopback; the server's own timings_ms are recorded beside them.
Writes a JSON result file and prints it. Not a test: nothing here asserts a timing.
"""
import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port  # noqa: E402
from bench_core import make_corpus  # noqa: E402 - the docs/ repeated, paragraphs made unique

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE = os.path.join(REPO, "tests", "fake_openai.py")


def start_fake(latency_ms):
    p = subprocess.Popen([sys.executable, FAKE, "--host", "127.0.0.1", "--port", "0",
                          "--latency-ms", str(latency_ms)], stdout=subprocess.PIPE)
    line = p.stdout.readline().decode().split()
    if len(line) != 2 or line[0] != "READY":
        raise SystemExit("fake_openai did not start")
    return p, int(line[1])


def fake_call(port, method, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, "{}" if method == "POST" else None)
    return json.loads(c.getresponse().read())


def start_redis(tmp):
    exe = shutil.which("redis-server")
    if exe is None:
        return None, None
    port = free_port()
    p = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return p, port
        except OSError:
            time.sleep(0.05)
    p.kill()
    return None, None


def write_config(path, fake_port, concurrency, batch_size, redis_port=None):
    lines = ["[embed]", "provider = openai",
             "base_url = http://127.0.0.1:%d/v1" % fake_port, "api_key = sk-bench",
             "dims = 256", "concurrency = %d" % concurrency, "batch_size = %d" % batch_size]
    if redis_port:
        lines += ["[cache]", "redis_url = redis://127.0.0.1:%d/0" % redis_port]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


class Daemon:
    def __init__(self, binary, data, config):
        self.port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("RAGD_") and k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL",
                                                          "REDIS_URL")}
        self.proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:%d" % self.port,
                                      "--data-dir", data, "--config", config, "--no-ingest",
                                      "--log-level", "warn"], env=env)
        deadline = time.time() + 30
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                c.getresponse().read()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("daemon did not start")
                time.sleep(0.05)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def post(self, path, body):
        self.conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        return json.loads(self.conn.getresponse().read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


def timed_retrieve(d, query):
    t = time.perf_counter()
    a = d.post("/retrieve", {"query": query, "k": 5})
    return (time.perf_counter() - t) * 1000, a


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="./ragd")
    ap.add_argument("--out", default="bench/results/embed_remote.json")
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--in-flight", type=int, default=8)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="ragd-bench-remote-")
    fake, fport = start_fake(args.latency_ms)
    redis, rport = start_redis(tmp)
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
              "upstream_latency_ms": args.latency_ms}
    try:
        corpus = os.path.join(tmp, "corpus")
        make_corpus(corpus, args.copies)

        # ---- 2. ingest: N in flight vs 1 (fresh data dirs, same corpus) ----
        ingest = {}
        for n in (1, args.in_flight):
            cfg = os.path.join(tmp, "ingest%d.ini" % n)
            write_config(cfg, fport, n, args.batch_size)
            fake_call(fport, "POST", "/_reset")
            t = time.perf_counter()
            out = subprocess.run([args.bin, "ingest", "--config", cfg, "--data-dir",
                                  os.path.join(tmp, "data%d" % n), "--path", corpus, "--json",
                                  "--log-level", "warn"], capture_output=True, text=True,
                                 check=True)
            wall = time.perf_counter() - t
            rep = json.loads(out.stdout)
            st = fake_call(fport, "GET", "/_stats")
            ingest["in_flight_%d" % n] = {
                "seconds": round(wall, 3), "requests": st["requests"],
                "chunks": rep["chunks"]["embedded"], "tokens": rep["embedding"]["tokens"],
                "max_concurrent_at_upstream": st["in_flight_max"],
                "chunks_per_s": round(rep["chunks"]["embedded"] / wall, 1)}
        one = ingest["in_flight_1"]["seconds"]
        many = ingest["in_flight_%d" % args.in_flight]["seconds"]
        ingest["speedup"] = round(one / many, 2)
        ingest["batch_size"] = args.batch_size
        result["ingest"] = ingest

        # ---- 1. /retrieve: miss vs memory hit vs Redis hit, same queries ----
        cfg = os.path.join(tmp, "serve.ini")
        write_config(cfg, fport, args.in_flight, args.batch_size, rport)
        data = os.path.join(tmp, "data%d" % args.in_flight)
        queries = ["question %d: how does ragd handle %s" % (i, w) for i, w in
                   enumerate(["refunds", "crashes", "re-indexing", "chunking", "Redis",
                              "timeouts", "costs", "backups"] * (args.queries // 8 + 1))]
        queries = queries[:args.queries]
        d = Daemon(args.bin, data, cfg)
        miss, memory, server_miss, server_memory = [], [], [], []
        try:
            for q in queries:
                ms, a = timed_retrieve(d, q)
                assert a["embedding_cache"] == "miss", a.get("embedding_cache")
                miss.append(ms)
                server_miss.append(a["timings_ms"])
                ms, a = timed_retrieve(d, q)
                assert a["embedding_cache"] == "memory", a.get("embedding_cache")
                memory.append(ms)
                server_memory.append(a["timings_ms"])
        finally:
            d.stop()
        redis_hit, server_redis = [], []
        if redis:
            d = Daemon(args.bin, data, cfg)
            try:
                for q in queries:
                    ms, a = timed_retrieve(d, q)
                    assert a["embedding_cache"] == "redis", a.get("embedding_cache")
                    redis_hit.append(ms)
                    server_redis.append(a["timings_ms"])
            finally:
                d.stop()
        med = statistics.median
        r = {"queries": len(queries),
             "client_ms_p50": {"miss": round(med(miss), 3), "memory_hit": round(med(memory), 3)},
             "server_ms_p50_miss": {k: round(med(t[k] for t in server_miss), 3)
                                    for k in ("cache", "embed", "search", "total")},
             "server_ms_p50_memory_hit": {k: round(med(t[k] for t in server_memory), 3)
                                          for k in ("cache", "embed", "search", "total")},
             "miss_over_memory_hit": round(med(miss) / med(memory), 1)}
        if redis_hit:
            r["client_ms_p50"]["redis_hit"] = round(med(redis_hit), 3)
            r["miss_over_redis_hit"] = round(med(miss) / med(redis_hit), 1)
            r["server_ms_p50_redis_hit"] = {k: round(med(t[k] for t in server_redis), 3)
                                            for k in ("cache", "embed", "search", "total")}
        result["retrieve"] = r
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(json.dumps(result, indent=2))
    finally:
        fake.terminate()
        fake.wait(10)
        if redis:
            redis.terminate()
            redis.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
