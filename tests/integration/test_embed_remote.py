# SPDX-License-Identifier: MIT
"""
test_embed_remote.py - the "openai" embedding provider against tests/fake_openai.py (a fake
OpenAI server that speaks the real protocol and counts what it receives), and the query-embedding
cache with a real redis-server on a free loopback port: batching under the API's limits, retries
and refusals, the key never shown, nothing paid for twice (SIGKILL mid-ingest, then only the
missing inputs are sent; an unchanged re-ingest sends nothing), repeated queries answered without
an embedding request (memory and Redis layers, across a daemon restart), and Redis stopped and
restarted under a running daemon without a single failed retrieval.
"""
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time

from corpus import REFUND_QUESTION, write_corpus
from harness import FakeServer, TestFailure, check, eq, http_call, short, test, wait_until, write

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(os.path.dirname(HERE), "fake_openai.py")
KEY = "sk-test-SECRETKEY-0123456789abcdef"


# ---- the fake upstream and Redis -----------------------------------------------------------
class Fake(FakeServer):
    """tests/fake_openai.py on a free port, stopped by the test's cleanup."""
    prefix = "/v1"

    def __init__(self, ctx, *args):
        super().__init__(ctx, FAKE, *args)

    def stats(self):
        return self.call("GET", "/_stats")

    def reset(self):
        self.call("POST", "/_reset", {})


def redis_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_cmd(port_or_path, *args):
    """Sends one command (RESP) and returns the decoded reply: int, bytes, list or None."""
    fam = socket.AF_UNIX if isinstance(port_or_path, str) else socket.AF_INET
    addr = port_or_path if fam == socket.AF_UNIX else ("127.0.0.1", port_or_path)
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(addr)
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")

        def read():
            line = f.readline().rstrip(b"\r\n")
            kind, rest = line[:1], line[1:]
            if kind == b":":
                return int(rest)
            if kind == b"+":
                return rest
            if kind == b"-":
                raise TestFailure("redis error: %r" % rest)
            if kind == b"$":
                n = int(rest)
                if n < 0:
                    return None
                data = f.read(n + 2)
                return data[:n]
            if kind == b"*":
                return [read() for _ in range(int(rest))]
            raise TestFailure("bad RESP reply %r" % line)
        return read()


class Redis:
    """A real redis-server on loopback, no persistence; stop() and start() keep its port."""

    def __init__(self, ctx, *extra):
        self.ctx = ctx
        self.port = None
        self.proc = None
        self.extra = list(extra)
        self.start()

    def start(self):
        exe = shutil.which("redis-server")
        check(exe is not None, "redis-server is not installed (scripts/install-deps.sh)")
        for _ in range(5):
            port = self.port or free_port_tcp()
            self.proc = subprocess.Popen(
                [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--dir", self.ctx.tmp] + self.extra,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            self.ctx.children.append(self.proc)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                if redis_ping(port):
                    self.port = port
                    return
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
        raise TestFailure("redis-server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port


def free_port_tcp():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def config(ctx, fake, name="ragd.ini", embed=None, cache=None):
    """Writes a config for the fake upstream; returns its path."""
    lines = ["[embed]", "provider = openai", "base_url = %s" % fake.base_url,
             "api_key = %s" % KEY, "dims = 64", "max_retries = 8", "retry_max_time = 30",
             "timeout = 20", "connect_timeout = 2"]
    lines += ["%s = %s" % kv for kv in (embed or {}).items()]
    if cache:
        lines.append("[cache]")
        lines += ["%s = %s" % kv for kv in cache.items()]
    path = ctx.path(name)
    write(path, "\n".join(lines) + "\n")
    return path


# ---- provider ------------------------------------------------------------------------------
@test
def test_openai_ingest_retrieve_and_memory_cache(t):
    fake = Fake(t)
    docs = t.path("docs")
    write_corpus(docs)
    d = t.serve(config=config(t, fake, embed={"batch_size": 3}))
    fake.call("POST", "/_config", {"latency_ms": 150})
    h = d.health()
    eq(h["embedder"]["provider"], "openai", "embedder.provider")
    eq(h["embedder"]["model"], "text-embedding-3-small", "embedder.model")
    rep = d.ingest(docs)
    s = fake.stats()
    check(s["requests"] > 0 and s["failures"] == 0, "fake stats after ingest: %s" % short(s))
    eq(rep["chunks"]["embedded"], s["inputs"], "chunks embedded vs inputs the upstream answered")
    # paid-for vectors are stored with their bytes (never recomputed, never paid twice)
    con = sqlite3.connect(os.path.join(d.data_dir, "ragd.sqlite3"))
    sizes = con.execute("SELECT count(*), min(length(vector)), max(length(vector)) "
                        "FROM embeddings").fetchone()
    con.close()
    eq(sizes, (rep["chunks"]["embedded"], 64 * 4, 64 * 4), "remote rows: count, vector bytes")
    eq(rep["embedding"]["tokens"], s["tokens"], "report tokens vs upstream usage")
    eq(rep["embedding"]["batches"], s["requests"], "report batches vs upstream requests")
    check(s["max_inputs"] <= 3, "a request carried %d inputs over batch_size 3" % s["max_inputs"])
    # The corpus's small documents still share requests in flight (concurrency 4): the
    # embeddings of a window of documents are fetched together.
    check(s["in_flight_max"] >= 2, "never more than one request in flight: %s" % short(s))
    check(s["in_flight_max"] <= 4, "more requests in flight than concurrency 4: %s" % short(s))
    fake.call("POST", "/_config", {"latency_ms": 0})
    check(abs(rep["embedding"]["estimated_cost_usd"] - s["tokens"] * 0.02 / 1e6) < 1e-9,
          "estimated cost: %s" % rep["embedding"])

    before = fake.stats()["requests"]
    a = d.retrieve({"query": REFUND_QUESTION, "k": 3})
    eq(a["embedding_cache"], "miss", "first query embedding_cache")
    check(a["results"], "no results for the refund question")
    check("cache" in a["timings_ms"] and "embed" in a["timings_ms"], "timings: %s" % a)
    eq(fake.stats()["requests"], before + 1, "a new query sends one embedding request")
    b = d.retrieve({"query": "  " + REFUND_QUESTION.replace(" ", "   ") + "\n", "k": 3})
    eq(b["embedding_cache"], "memory", "repeated query (whitespace aside) embedding_cache")
    eq(fake.stats()["requests"], before + 1, "a repeated query sends no embedding request")
    eq([r["chunk_id"] for r in b["results"]], [r["chunk_id"] for r in a["results"]],
       "cached query results")
    # Queries reuse a kept-alive connection: fewer connections than requests.
    spent = fake.stats()["tokens"]
    fake.reset()
    for i in range(5):
        eq(d.retrieve({"query": "keep-alive question %d" % i})["embedding_cache"], "miss",
           "query %d" % i)
    s = fake.stats()
    eq(s["requests"], 5, "requests for 5 new queries")
    check(s["connections"] < 5, "every query opened its own connection: %s" % short(s))
    h = d.health()
    eq(h["embedder"]["tokens"], spent + fake.stats()["tokens"],
       "/health embedder.tokens vs everything the upstream billed")
    check(h["embedder"]["tokens"] > rep["embedding"]["tokens"], "query tokens counted")
    check(h["embedder"]["estimated_cost_usd"] > 0, "/health cost: %s" % h["embedder"])
    eq(h["cache"]["memory"]["hits"], 1, "/health cache.memory.hits")
    eq(h["cache"]["redis"]["state"], "off", "/health cache.redis.state without redis_url")
    eq(h["status"], "ok", "/health status")
    # /metrics counts the same upstream traffic and the cache's answers
    m = d.call("GET", "/metrics").body.decode()

    def metric(name):
        for line in m.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError("%s missing from /metrics" % name)
    eq(metric("ragd_embedding_tokens_total"), h["embedder"]["tokens"],
       "ragd_embedding_tokens_total vs /health")
    eq(metric("ragd_embedding_requests_total"), h["embedder"]["requests"],
       "ragd_embedding_requests_total vs /health")
    eq(metric("ragd_cache_hits_total"), 1, "ragd_cache_hits_total")
    eq(metric("ragd_cache_misses_total"), 6, "ragd_cache_misses_total (1 + 5 new queries)")
    # a retrieval that may wait on the embedding API never runs on the event loop
    eq(metric("ragd_http_retrievals_inline_total"), 0, "retrievals run by the event loop")


@test
def test_local_provider_usage_in_health(t):
    """The built-in embedder costs nothing: /health and the report say 0 tokens, $0."""
    docs = t.path("docs")
    write_corpus(docs)
    d = t.serve()
    rep = d.ingest(docs)
    eq(rep["embedding"]["tokens"], 0, "report tokens with the local provider")
    eq(rep["embedding"]["estimated_cost_usd"], 0.0, "report cost with the local provider")
    check(rep["embedding"]["batches"] >= 1, "report batches: %s" % rep["embedding"])
    eq(d.retrieve({"query": REFUND_QUESTION})["embedding_cache"], "miss", "first query")
    eq(d.retrieve({"query": REFUND_QUESTION})["embedding_cache"], "memory", "second query")
    h = d.health()
    e = h["embedder"]
    eq((e["provider"], e["requests"], e["tokens"], e["estimated_cost_usd"]),
       ("local", 0, 0, 0.0), "local embedder usage")
    eq(e["inputs"], rep["chunks"]["embedded"] + 1, "inputs: chunks plus the one query embedded")
    eq(h["cache"]["redis"]["state"], "off", "redis state")
    eq(h["status"], "ok", "status")


@test
def test_openai_batch_limits_tokens_and_overlong(t):
    """Chunks of ~4,000 tokens under batch_size 2048: the 300,000-token request limit splits the
    batch; chunks whose bound passes 8,191 tokens are refused per file and never sent."""
    fake = Fake(t)
    words = ["alpha%d" % (i % 997) for i in range(4000)]
    para = "\n\n".join(" ".join(words[i:i + 40]) + "." for i in range(0, len(words), 40))
    big = "# Big\n\n" + "\n\n".join("## Part %d\n\n%s part%d" % (p, para, p) for p in range(90))
    write(t.path("docs", "big.md"), big)
    d = t.serve(config=config_chunks(t, fake, 4000, 4200))
    rep = d.ingest(t.path("docs"))
    eq(rep["documents"]["failed"], 0, "failed documents: %s" % short(rep["errors"]))
    s = fake.stats()
    eq(s["failures"], 0, "upstream refusals (limits exceeded): %s" % short(s))
    check(s["requests"] >= 2, "~360k tokens went in %d request(s)" % s["requests"])
    check(s["max_tokens"] <= 300000, "a request carried %d tokens" % s["max_tokens"])
    eq(s["inputs"], rep["chunks"]["embedded"], "inputs vs chunks embedded")

    # Over-long chunks: refused before sending.
    fake.reset()
    long_para = " ".join("beta%d" % (i % 991) for i in range(7900))
    write(t.path("docs2", "long.md"), "# Long\n\n" + long_para + "\n")
    d.stop()
    d2 = t.serve(data_dir=t.path("data2"), config=config_chunks(t, fake, 8000, 8192, "b.ini"))
    rep = d2.ingest(t.path("docs2"))
    eq(rep["documents"]["failed"], 1, "documents failed (over-long chunk)")
    eq(rep["errors"][0]["code"], "too_large", "error code of an over-long chunk")
    msg = rep["errors"][0]["message"]
    check("8191" in msg and "chunk 1 (Long)" in msg, "message: %s" % msg)
    eq(fake.stats()["requests"], 0, "requests sent for an over-long chunk")


def config_chunks(t, fake, target, maximum, name="ragd.ini"):
    path = config(t, fake, name=name, embed={"batch_size": 2048})
    with open(path, "a") as f:
        f.write("[chunk]\ntarget_tokens = %d\nmax_tokens = %d\n" % (target, maximum))
    return path


@test
def test_openai_retries_then_success(t):
    fake = Fake(t)
    write(t.path("docs", "a.md"), "# Refunds\n\nRefunds are paid within 14 days.\n")
    d = t.serve(config=config(t, fake))
    fake.script({"status": 429, "code": "rate_limit_exceeded", "retry_after_ms": "30"},
                {"status": 500},
                {"status": 503, "retry_after": "1"},
                {"status": 408, "retry_after_ms": "10"},
                {"status": 409, "retry_after_ms": "10"},
                {"kind": "truncated"},
                {"kind": "bad_json"})
    rep = d.ingest(t.path("docs"))
    eq(rep["documents"]["added"], 1, "document added after retries: %s" % short(rep))
    s = fake.stats()
    eq(s["requests"], 8, "requests: 7 scripted failures then 1 success")
    eq(s["answered"], 1, "answered requests")
    e = d.health()["embedder"]
    eq(e["retries"], 7, "/health embedder.retries")
    eq(e["errors"]["rate_limited"], 1, "errors.rate_limited")
    eq(e["errors"]["server"], 4, "errors.server (500, 503, 408, 409)")
    eq(e["errors"]["network"], 1, "errors.network (truncated reply)")
    eq(e["errors"]["bad_reply"], 1, "errors.bad_reply")

    # Retries are bounded: more failures than max_retries fail the ingest with the last error.
    write(t.path("docs", "b.md"), "# Shipping\n\nParcels leave on Mondays.\n")
    fake.reset()
    fake.script(*[{"status": 502, "retry_after_ms": "5", "message": "bad gateway %d" % i}
                  for i in range(9)])
    r = d.call("POST", "/ingest", {"path": t.path("docs")}, timeout=120)
    eq(r.status, 502, "ingest after exhausting retries: %r" % r)
    eq(r.json["error"]["code"], "embed_error", "error code")
    check("bad gateway 8" in r.json["error"]["message"] and "9 attempts" in
          r.json["error"]["message"], "message: %s" % r.json["error"]["message"])
    eq(fake.stats()["requests"], 9, "requests: 1 + max_retries 8")


@test
def test_openai_refusals_are_not_retried(t):
    fake = Fake(t)
    d = t.serve(config=config(t, fake))
    cases = [({"status": 400, "message": "Invalid input for this model"}, "Invalid input"),
             ({"status": 401, "message": "Incorrect API key provided: sk-t****cdef"},
              "Incorrect API key"),
             ({"status": 403, "message": "Country, region, or territory not supported"},
              "not supported"),
             ({"status": 404, "message": "The model `nope` does not exist"}, "does not exist"),
             ({"status": 429, "code": "insufficient_quota",
               "message": "You exceeded your current quota, please check your plan"},
              "exceeded your current quota")]
    for i, (reply, words) in enumerate(cases):
        fake.reset()
        fake.script(reply)
        write(t.path("docs%d" % i, "a.md"), "# Doc %d\n\nSome text about topic %d.\n" % (i, i))
        r = d.call("POST", "/ingest", {"path": t.path("docs%d" % i)}, timeout=60)
        eq(r.status, 502, "ingest refused with %d: %r" % (reply["status"], r))
        eq(r.json["error"]["code"], "upstream_refused", "code for %d" % reply["status"])
        check(words in r.json["error"]["message"], "upstream message missing: %s"
              % r.json["error"]["message"])
        eq(fake.stats()["requests"], 1, "requests for a %d (no retry)" % reply["status"])
    h = d.health()
    eq(h["store"]["documents"], 0, "documents after refused ingests")
    eq(h["embedder"]["errors"]["refused"], len(cases), "errors.refused")
    eq(h["embedder"]["retries"], 0, "retries after refusals")
    # A query refused upstream is a 502 with the message, not a hang.
    fake.reset()
    fake.script({"status": 401, "message": "Incorrect API key provided"})
    r = d.call("POST", "/retrieve", {"query": "anything at all"})
    eq(r.status, 502, "retrieve refused upstream: %r" % r)
    eq(r.json["error"]["code"], "upstream_refused", "retrieve error code")


@test
def test_openai_key_never_shown(t):
    fake = Fake(t, "--api-key", "sk-the-right-one-9999")
    docs = t.path("docs")
    write(docs + "/a.md", "# A\n\nText.\n")
    cfg = config(t, fake)
    with open(cfg, "a") as f:
        f.write("[log]\nlevel = debug\n")
    res = t.cli("check-config", "--config", cfg)
    eq(res.rc, 0, "check-config: %r" % res)
    check(KEY not in res.out + res.err, "check-config shows the key")
    check("<redacted>" in res.out, "check-config does not say <redacted>")
    res = t.cli("check-config", "--config", cfg, env={"OPENAI_API_KEY": KEY + "x"})
    check(KEY not in res.out + res.err, "check-config shows the key from OPENAI_API_KEY")
    res = t.cli("check-config", env={"OPENAI_API_KEY": KEY,
                                     "OPENAI_BASE_URL": "http://10.1.2.3:8000/v1",
                                     "REDIS_URL": "redis://:hunter2@10.0.0.1:6379/0"})
    eq(res.rc, 0, "check-config with the OpenAI and Redis environment: %r" % res)
    check("base_url = http://10.1.2.3:8000/v1" in res.out, "OPENAI_BASE_URL not applied: %r" % res)
    check("redis_url = <redacted>" in res.out, "REDIS_URL not applied or not redacted: %r" % res)
    check(KEY not in res.out and "hunter2" not in res.out, "a secret in check-config: %r" % res)

    d = t.serve(config=cfg)
    # Wrong key: the upstream's 401 (which names a masked key) comes back, never ours.
    r = d.call("POST", "/ingest", {"path": docs}, timeout=60)
    eq(r.status, 502, "ingest with a wrong key: %r" % r)
    check("Incorrect API key" in r.body.decode(), "401 message: %r" % r)
    # An upstream that echoes the whole key: scrubbed from the reply and the log.
    fake.script({"status": 400, "message": "bad request from key %s, really" % KEY})
    r = d.call("POST", "/retrieve", {"query": "echo please"})
    eq(r.status, 502, "retrieve with echoing upstream: %r" % r)
    check("<redacted>" in r.json["error"]["message"], "message: %s" % r.json["error"]["message"])
    fake.script({"status": 500, "message": "server error for %s" % KEY},
                {"status": 400, "message": "again %s" % KEY})
    d.call("POST", "/retrieve", {"query": "echo again"})
    for body in (r.body.decode(), d.call("GET", "/health").body.decode()):
        check(KEY not in body, "the key appears in an HTTP reply")
    d.stop()
    log = d.stderr_text()
    check("retry" in log, "the 500 was retried and logged")
    check(KEY not in log, "the key appears in the daemon log:\n%s" % short(log, 2000))
    check(KEY[:20] not in log, "a prefix of the key appears in the daemon log")


# ---- nothing paid for twice ----------------------------------------------------------------
@test
def test_openai_sigkill_mid_ingest_sends_only_missing(t):
    fake = Fake(t)
    docs = t.path("docs")
    for i in range(6):
        write(os.path.join(docs, "doc%d.md" % i), "# Document %d\n\n" % i + "\n\n".join(
            "## Topic %d.%d\n\n" % (i, j) + " ".join("word%d_%d_%d" % (i, j, w)
                                                      for w in range(700))
            for j in range(4)) + "\n")
    embed = {"batch_size": 4, "concurrency": 1}
    # Reference: how many inputs a whole ingest sends.
    ref = t.cli("ingest", "--config", config(t, fake, embed=embed), "--data-dir", t.path("ref"),
                "--path", docs, "--json")
    eq(ref.rc, 0, "reference ingest: %r" % ref)
    total = fake.stats()["inputs"]
    check(total >= 20, "the corpus needs more than a few batches (%d inputs)" % total)

    fake.reset()
    ok = (total // 4) // 2  # about half the batches succeed, then the upstream hangs
    fake.script(*([{"kind": "ok"}] * ok + [{"kind": "hang"}]))
    cfg = config(t, fake, embed=embed)
    p = subprocess.Popen([BIN(), "ingest", "--config", cfg, "--data-dir", t.path("data"),
                          "--path", docs], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=child_env(), start_new_session=True)
    t.children.append(p)
    wait_until(lambda: fake.stats()["hanging"] == 1, 120, "the upstream to hang mid-ingest")
    paid = fake.stats()["inputs"]
    eq(fake.stats()["answered"], ok, "batches answered before the hang")
    p.send_signal(signal.SIGKILL)
    p.wait(30)

    fake.reset()
    again = t.cli("ingest", "--config", cfg, "--data-dir", t.path("data"), "--path", docs,
                  "--json")
    eq(again.rc, 0, "ingest after SIGKILL: %r" % again)
    s = fake.stats()
    eq(s["inputs"], total - paid, "inputs sent after the crash (total %d, paid before %d)"
       % (total, paid))
    rep = again.json()
    eq(rep["chunks"]["embedded"], total - paid, "chunks embedded after the crash")

    fake.reset()
    third = t.cli("ingest", "--config", cfg, "--data-dir", t.path("data"), "--path", docs,
                  "--json")
    eq(third.rc, 0, "unchanged re-ingest: %r" % third)
    eq(fake.stats()["requests"], 0, "requests for an unchanged re-ingest")
    # Reset re-indexes from the stored embeddings: still nothing sent.
    res = t.cli("ingest", "--config", cfg, "--data-dir", t.path("data"), "--path", docs,
                "--reset", "--json")
    eq(res.rc, 0, "ingest --reset: %r" % res)
    eq(fake.stats()["requests"], 0, "requests for a reset re-ingest")
    eq(res.json()["chunks"]["added"], ref.json()["chunks"]["added"], "chunks after reset")


@test
def test_openai_sigterm_mid_ingest_keeps_every_paid_batch(t):
    """SIGTERM during a slow remote ingest: the daemon stops soon, keeping every batch the
    upstream answered (it stores the one in flight), so the next ingest sends exactly the rest."""
    fake = Fake(t)
    docs = t.path("docs")
    for i in range(3):
        write(os.path.join(docs, "doc%d.md" % i), "# Document %d\n\n" % i + "\n\n".join(
            "## Topic %d.%d\n\n" % (i, j) + " ".join("term%d_%d_%d" % (i, j, w)
                                                      for w in range(600))
            for j in range(6)) + "\n")
    for conc in (1, 4):
        embed = {"batch_size": 2, "concurrency": conc}
        fake.reset()
        ref = t.cli("ingest", "--config", config(t, fake, name="ref.ini", embed=embed),
                    "--data-dir", t.path("ref%d" % conc), "--path", docs)
        eq(ref.rc, 0, "reference ingest: %r" % ref)
        total = fake.stats()["inputs"]
        fake.reset()
        fake.call("POST", "/_config", {"latency_ms": 300})
        cfg = config(t, fake, name="c%d.ini" % conc, embed=embed)
        data = t.path("data%d" % conc)
        d = t.serve(data_dir=data, config=cfg)
        import threading
        def ingest_until_stopped():
            try:
                d.call("POST", "/ingest", {"path": docs}, timeout=120)
            except OSError:
                pass  # the daemon may close the connection as it stops
        th = threading.Thread(target=ingest_until_stopped)
        th.start()
        wait_until(lambda: fake.stats()["answered"] >= 2, 60, "a few batches answered")
        eq(d.stop(signal.SIGTERM), 0, "exit status after SIGTERM mid-ingest")
        th.join(60)
        paid = fake.stats()["inputs"]
        check(0 < paid < total, "paid %d of %d inputs before the stop" % (paid, total))
        fake.reset()
        fake.call("POST", "/_config", {"latency_ms": 0})
        again = t.cli("ingest", "--config", cfg, "--data-dir", data, "--path", docs)
        eq(again.rc, 0, "ingest after SIGTERM: %r" % again)
        eq(fake.stats()["inputs"], total - paid,
           "inputs sent after the stop, concurrency %d (total %d, paid %d)" % (conc, total, paid))


def BIN():
    import harness
    return harness.BIN


def child_env():
    import harness
    return harness.child_env()


# ---- Redis ---------------------------------------------------------------------------------
@test
def test_query_cache_redis_layers_outage_and_recovery(t):
    fake = Fake(t)
    redis = Redis(t)
    docs = t.path("docs")
    write_corpus(docs)
    cache = {"redis_url": redis.url, "reconnect_interval_ms": 100, "command_timeout_ms": 200}
    cfg = config(t, fake, cache=cache)
    d = t.serve(config=cfg)
    h = d.health()
    eq(h["cache"]["redis"]["state"], "up", "redis state at start")
    check(redis.url not in json.dumps(h) or ":" in redis.url, "health shape")
    d.ingest(docs)
    q = {"query": REFUND_QUESTION, "k": 3}
    eq(d.retrieve(q)["embedding_cache"], "miss", "first query")
    eq(d.retrieve(q)["embedding_cache"], "memory", "second query")
    d.stop()

    # A new daemon has an empty LRU: the vector comes from Redis, no upstream request.
    d = t.serve(config=cfg)
    before = fake.stats()["requests"]
    a = d.retrieve(q)
    eq(a["embedding_cache"], "redis", "query after a daemon restart")
    eq(fake.stats()["requests"], before, "upstream requests for a Redis hit")
    check(a["results"], "results from a Redis-cached vector")

    # Redis stops and returns while a client keeps retrieving: not one retrieval fails.
    import threading
    statuses, stop = [], threading.Event()

    def hammer():
        i = 0
        while not stop.is_set():
            body = {"query": "background question %d about refunds" % (i % 7), "k": 2}
            statuses.append(http_call(d.port, "POST", "/retrieve", body).status)
            i += 1
    th = threading.Thread(target=hammer)
    th.start()

    # Redis stops: every retrieval still answers; /health degrades with a reason.
    redis.stop()
    for i in range(8):
        r = d.retrieve({"query": "question number %d about refunds" % i, "k": 2})
        eq(r["embedding_cache"], "miss", "query %d with Redis down" % i)
    eq(d.retrieve(q)["embedding_cache"], "memory", "memory layer with Redis down")
    h = wait_until(lambda: (lambda h: h if h["status"] == "degraded" else None)(d.health()), 15,
                   "/health to say degraded")
    eq(h["cache"]["redis"]["state"], "down", "redis state while stopped")
    check(any("Redis" in s for s in h["reasons"]), "reasons: %s" % h["reasons"])
    r = d.call("GET", "/health")
    eq(r.status, 200, "/health HTTP status while degraded")

    # Redis returns: ragd reconnects by itself.
    redis.start()
    h = wait_until(lambda: (lambda h: h if h["cache"]["redis"]["state"] == "up" else None)(
        d.health()), 15, "Redis to be reconnected")
    eq(h["status"], "ok", "/health after Redis returned")
    check(h["cache"]["redis"]["reconnects"] >= 1, "reconnects: %s" % h["cache"]["redis"])
    stop.set()
    th.join(60)
    check(len(statuses) > 10, "the background client made only %d requests" % len(statuses))
    eq([x for x in statuses if x != 200], [], "failed retrievals during the Redis outage")
    q2 = {"query": "how fast are refunds paid after recovery", "k": 2}
    eq(d.retrieve(q2)["embedding_cache"], "miss", "new query after recovery")
    d.stop()
    d = t.serve(config=cfg)
    before = fake.stats()["requests"]
    eq(d.retrieve(q2)["embedding_cache"], "redis", "query stored after recovery, new daemon")
    eq(fake.stats()["requests"], before, "upstream requests for it")


@test
def test_query_cache_redis_unix_socket_binary_values(t):
    """unix: URLs work; values are a 40-byte header and dims x 4 bytes of floats, with the
    configured TTL."""
    fake = Fake(t)
    sock = t.path("redis.sock")
    redis = Redis(t, "--unixsocket", sock, "--unixsocketperm", "700")
    write(t.path("docs", "a.md"), "# Refunds\n\nRefunds are paid within 14 days.\n")
    cfg = config(t, fake, cache={"redis_url": "unix:%s?db=3" % sock, "ttl": 120})
    d = t.serve(config=cfg)
    eq(d.health()["cache"]["redis"]["state"], "up", "redis over a unix socket")
    d.ingest(t.path("docs"))
    eq(d.retrieve({"query": "refunds paid"})["embedding_cache"], "miss", "first query")
    eq(redis_cmd(redis.port, "KEYS", "*"), [], "keys in db 0 (ragd uses db 3)")
    # redis_cmd opens one connection per command, so db 3 is read through one-line scripts.
    found = redis_cmd(sock, "EVAL", "redis.call('SELECT', 3); return redis.call('KEYS', '*')", 0)
    eq(len(found), 1, "one cached query embedding in db 3")
    key = found[0]
    check(key.startswith(b"ragd:qemb:v2:") and len(key) == len(b"ragd:qemb:v2:") + 64,
          "key shape: %r" % key)
    n = redis_cmd(sock, "EVAL", "redis.call('SELECT', 3); return redis.call('STRLEN', KEYS[1])",
                  1, key)
    eq(n, 40 + 64 * 4, "value length (40-byte header, dims 64 x 4-byte floats)")
    ttl = redis_cmd(sock, "EVAL", "redis.call('SELECT', 3); return redis.call('TTL', KEYS[1])",
                    1, key)
    check(0 < ttl <= 120, "TTL %r, configured 120" % ttl)
    d.stop()
    d = t.serve(config=cfg)
    eq(d.retrieve({"query": "refunds   paid"})["embedding_cache"], "redis",
       "same query (whitespace aside) after a restart")


@test
def test_query_cache_redis_slow_is_bounded(t):
    """Redis that stops answering (DEBUG SLEEP) costs a query at most the command timeout: the
    retrieval answers without it, the cache goes down, then comes back by itself."""
    fake = Fake(t)
    redis = Redis(t, "--enable-debug-command", "yes")
    write(t.path("docs", "a.md"), "# Refunds\n\nRefunds are paid within 14 days.\n")
    cfg = config(t, fake, cache={"redis_url": redis.url, "command_timeout_ms": 100,
                                 "reconnect_interval_ms": 100})
    d = t.serve(config=cfg)
    d.ingest(t.path("docs"))
    eq(d.retrieve({"query": "refund delay"})["embedding_cache"], "miss", "first query")
    s = socket.create_connection(("127.0.0.1", redis.port), timeout=60)
    try:
        # Long enough for a loaded machine; that Redis sleeps is seen (a PING goes unanswered),
        # not assumed after a fixed delay.
        s.sendall(b"DEBUG SLEEP 8\r\n")
        wait_until(lambda: not redis_ping(redis.port), 8, "Redis to start sleeping", poll=0.05)
        a = d.retrieve({"query": "when are refunds paid, asked while Redis sleeps"})
        eq(a["embedding_cache"], "miss", "query while Redis is unresponsive")
        check(a["results"], "no results while Redis sleeps")
        h = d.health()
        check(h["cache"]["redis"]["errors"] >= 1, "no Redis error counted: %s" % h["cache"])
        check(s.recv(16).startswith(b"+OK"), "DEBUG SLEEP did not finish")
    finally:
        s.close()
    h = wait_until(lambda: (lambda h: h if h["cache"]["redis"]["state"] == "up" else None)(
        d.health()), 15, "Redis to be reconnected after the stall")
    eq(h["status"], "ok", "/health after the stall")


@test
def test_query_cache_redis_unreachable_at_start(t):
    """Redis configured but not running: ragd starts, answers, says degraded."""
    fake = Fake(t)
    port = free_port_tcp()
    cfg = config(t, fake, cache={"redis_url": "redis://:pw%%40x@127.0.0.1:%d/2" % port,
                                 "reconnect_interval_ms": 100})
    d = t.serve(config=cfg)
    h = d.health()
    eq(h["status"], "degraded", "status with Redis unreachable")
    eq(h["cache"]["redis"]["state"], "down", "redis state")
    eq(h["cache"]["redis"]["where"], "127.0.0.1:%d/2" % port, "redis where (no password)")
    check("pw" not in json.dumps(h), "the Redis password appears in /health")
    r = d.retrieve({"query": "anything", "k": 1})
    eq(r["embedding_cache"], "miss", "query without Redis")
    res = t.cli("check-config", "--config", cfg)
    check("pw%40x" not in res.out, "check-config shows the Redis password")


@test
def test_bad_redis_url_and_base_url_stop_startup(t):
    fake = Fake(t)
    for cache, embed, words in (({"redis_url": "http://nope"}, {}, "redis_url"),
                                ({"redis_url": "redis://host:99999/0"}, {}, "port"),
                                ({}, {"base_url": "ftp://x"}, "base_url"),
                                ({}, {"headers": "no colon here"}, "headers")):
        cfg = config(t, fake, name="bad.ini", cache=cache or None, embed=embed)
        write(t.path("docs", "a.md"), "# A\n\ntext\n")
        res = t.cli("ingest", "--config", cfg, "--data-dir", t.path("d"), "--path",
                    t.path("docs"))
        check(res.rc != 0, "ragd accepted %s %s: %r" % (cache, embed, res))
        check(words in res.err, "error does not name %s: %r" % (words, res))


@test
def test_pushed_documents_during_a_remote_ingest(t):
    # A directory ingest with requests in flight prefetches embeddings through the store's writer
    # connection while the app pushes documents through it too: both must take turns.
    fake = Fake(t)
    docs = t.path("docs")
    for i in range(150):
        write(os.path.join(docs, "d%03d.md" % i), "# Doc %d\n\n" % i + "\n\n".join(
            "## Part %d\n\n" % j + " ".join("w%d_%d_%d" % (i, j, w) for w in range(60))
            for j in range(3)) + "\n")
    d = t.serve(config=config(t, fake, embed={"batch_size": 2, "concurrency": 4}))
    fake.call("POST", "/_config", {"latency_ms": 30})
    failures, pushed = [], [0]
    stop = threading.Event()

    def pusher():
        n = 0
        while not stop.is_set():
            r = d.call("POST", "/documents", {"id": "faq-%d" % (n % 5),
                                              "text": "Pushed answer %d about topic %d." % (n, n)})
            if r.status != 200:
                failures.append((r.status, short(r.body)))
            n += 1
        pushed[0] = n

    th = threading.Thread(target=pusher)
    th.start()
    try:
        r = d.call("POST", "/ingest", {"path": docs}, timeout=300)
    finally:
        stop.set()
        th.join(60)
    eq(r.status, 200, "ingest beside pushes: %s" % short(r.body))
    eq(failures, [], "pushes that failed during the ingest")
    check(pushed[0] > 0, "no push ran during the ingest")
    eq(r.json["documents"]["failed"], 0, "failed documents")
    # every chunk of the directory was embedded by the ingest itself, none claimed by a push
    eq(r.json["chunks"]["embedded"] + r.json["chunks"]["deduplicated"],
       r.json["chunks"]["added"], "embedded + deduplicated vs added chunks")
    check(d.running(), "daemon died")
    lst = d.call("GET", "/documents").json
    eq((lst["total"], lst["counts"]["files"]), (5, 150), "pushed and file documents afterwards")


@test
def test_query_cache_redis_poisoned_values_change_no_answer(t):
    """Redis is shared: values of the right length but foreign, written for another query, or
    bound correctly but NaN, Inf, zero or scaled are refused (counted), the query is embedded
    instead, the answer is the one a clean cache gives, and the key gets the sound value back."""
    fake = Fake(t)
    redis = Redis(t)
    write_corpus(t.path("docs"))
    cfg = config(t, fake, cache={"redis_url": redis.url, "memory_entries": 0})
    d = t.serve(config=cfg)
    d.ingest(t.path("docs"))
    q1 = {"query": REFUND_QUESTION, "k": 3, "mode": "vector"}
    q2 = {"query": "how do I reset my password", "k": 3, "mode": "vector"}

    def answer(q):
        a = d.retrieve(q)
        return a["embedding_cache"], [(r["chunk_id"], round(r["score"], 5)) for r in a["results"]]

    layer, clean = answer(q1)
    eq(layer, "miss", "first query")
    check(clean, "no results for the refund question")
    eq(answer(q1), ("redis", clean), "second query (Redis, memory layer off)")
    keys = redis_cmd(redis.port, "KEYS", "ragd:qemb:v2:*")
    eq(len(keys), 1, "cached keys after one query")
    k1 = keys[0]
    good = redis_cmd(redis.port, "GET", k1)
    eq(len(good), 40 + 64 * 4, "value length")
    answer(q2)
    k2 = [k for k in redis_cmd(redis.port, "KEYS", "ragd:qemb:v2:*") if k != k1][0]
    other = redis_cmd(redis.port, "GET", k2)  # a sound, unit-length vector of another query

    def floats(value):
        return good[:40] + value

    poisons = {
        "another query's value": other,
        "another program's bytes": b"\x07" * len(good),
        "v1 bare floats": good[40:],
        "zeros": floats(b"\0" * 256),
        "NaN": floats(b"\x00\x00\xc0\x7f" * 64),
        "Inf": floats(b"\x00\x00\x80\x7f" * 64),
        "scaled": floats(b"\x00\x00\x80\x3f" * 64),  # all ones: norm 8
    }
    for i, (what, value) in enumerate(poisons.items()):
        redis_cmd(redis.port, "SET", k1, value)
        before = fake.stats()["requests"]
        eq(answer(q1), ("miss", clean), "answer with %s in Redis" % what)
        eq(fake.stats()["requests"], before + 1, "embedding requests after %s" % what)
        eq(d.health()["cache"]["redis"]["rejected"], i + 1, "rejected after %s" % what)
        eq(redis_cmd(redis.port, "GET", k1), good, "the sound value written back after %s" % what)
        eq(answer(q1), ("redis", clean), "the next query after %s" % what)
    eq(d.health()["status"], "ok", "a refused value is not an outage")
    r = d.call("GET", "/metrics")
    check(("ragd_cache_redis_rejected_total %d" % len(poisons)) in r.body.decode(),
          "ragd_cache_redis_rejected_total in /metrics")


@test
def test_startup_ingest_is_a_job(t):
    """serve's start-up ingest is an ingest job: a POST /ingest during it gets 409 with its
    job_id, and GET /jobs/{id} follows it to the end. The upstream holds the first embedding
    request until released, so the ingest is known to be running (no timing)."""
    fake = Fake(t)
    docs = t.path("docs")
    n = write_corpus(docs)
    fake.script({"kind": "hang"})
    d = t.serve(config=config(t, fake), env={"RAGD_INGEST_PATHS": docs}, no_ingest=False)
    wait_until(lambda: fake.stats()["hanging"] == 1, 60, "the start-up ingest's first request")
    r = d.call("POST", "/ingest", {"path": docs})
    eq(r.status, 409, "POST /ingest during the start-up ingest: %r" % r)
    eq(r.json["error"]["code"], "busy", "error code")
    job = r.json["error"].get("job_id")
    check(job, "409 without job_id: %r" % r.json)
    j = d.call("GET", "/jobs/" + job)
    eq(j.status, 200, "GET /jobs/{id} of the start-up ingest")
    eq(j.json["state"], "running", "start-up job state")
    eq(os.path.realpath(j.json["path"]), os.path.realpath(docs), "start-up job path")
    fake.reset()  # releases the held request; ragd retries it
    j = wait_until(lambda: (lambda j: j if j["state"] != "running" else None)(
        d.call("GET", "/jobs/" + job).json), 60, "the start-up job to end")
    eq(j["state"], "done", "start-up job: %r" % j)
    eq(d.health()["store"]["documents"], n, "documents after the start-up ingest")
    eq(d.call("POST", "/ingest", {"path": docs}).status, 200, "an ingest after it")


@test
def test_retrieve_runs_off_the_http_threads(t):
    """A retrieval runs in the retrieval pool, not in the handler pool that answers /health.
    With one thread each ([server] threads = 1) and a retrieval stuck on its upstream embedding, /health on another connection
    is still answered; the stuck retrieval completes when the upstream lets go, and the next
    retrieval runs (threads also bounds the retrievals running at once)."""
    fake = Fake(t)
    cfg = config(t, fake, embed={"timeout": 120, "max_retries": 0})
    with open(cfg, "a") as f:
        f.write("[server]\nthreads = 1\n")
    d = t.serve(config=cfg)
    write(t.path("docs", "a.md"), "# Valves\n\nThe red valve opens the water supply.\n")
    d.ingest(t.path("docs"))
    fake.reset()
    fake.script({"kind": "hang"})
    done = {}

    def stuck():
        done["r"] = d.call("POST", "/retrieve", {"query": "which valve opens the water"},
                           timeout=180)

    th = threading.Thread(target=stuck)
    th.start()
    wait_until(lambda: fake.stats()["hanging"] == 1, 60, "the query embedding to hang")
    r = d.call("GET", "/health", timeout=60)
    eq(r.status, 200, "/health while a retrieval waits on its upstream")
    check(th.is_alive(), "the stuck retrieval is still waiting")
    fake.reset()  # releases the hanging request
    th.join(180)
    check(not th.is_alive(), "the retrieval finished once the upstream answered")
    check(done["r"].status in (200, 502, 503, 504), "stuck retrieval: %r" % done["r"])
    r = d.call("POST", "/retrieve", {"query": "red valve water", "mode": "keyword"}, timeout=60)
    eq(r.status, 200, "a retrieval after the stuck one")
    check(any("a.md" == x["source"] for x in r.json["results"]), "keyword result after release")
