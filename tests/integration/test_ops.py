# SPDX-License-Identifier: MIT
"""
test_ops.py - operations against the real daemon: GET /metrics after traffic (hits and misses,
HTTP requests by route and status, gauges, exposition format), the JSONL event log (fields,
X-Request-Id honoured and echoed, raw queries only with log_queries), a logrotate-style rename +
SIGHUP, SIGHUP reload of live keys (and naming the others), SIGTERM with a request in flight and
under load, the bounded drain, /health degraded, `ragd health` exit codes, and a backup taken
with contrib/ragd-backup.sh while the daemon runs, restored into a new data dir.
"""
import hashlib
import http.client
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

from corpus import REFUND_QUESTION, write_corpus, write_generated
from harness import check, eq, free_port, http_call, short, test, wait_until, write

SERIES = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(d):
    r = d.call("GET", "/metrics")
    eq(r.status, 200, "GET /metrics status")
    ctype = r.headers.get("content-type", "")
    check(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
          "metrics Content-Type is %r" % ctype)
    text = r.body.decode("utf-8")
    values, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        m = SERIES.match(line)
        check(m is not None, "malformed exposition line %r" % line)
        name = m.group(1)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        check(name in typed or base in typed, "series %s has no TYPE line" % name)
        check(name.startswith("ragd_"), "series %s lacks the ragd_ prefix" % name)
        values[name + (m.group(2) or "")] = float(m.group(3))
    return values


def event_lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def wait_log(d, needle, what, timeout=20):
    wait_until(lambda: needle in d.stderr_text(), timeout, what)


def ops_config(t, extra=""):
    path = t.path("ragd.ini")
    write(path, "[log]\nfile = %s\n%s" % (t.path("logs", "rag.log"), extra))
    return path


@test
def metrics_move_with_traffic(t):
    corpus = t.path("corpus")
    write_corpus(corpus)
    d = t.serve()
    before = scrape(d)
    for name in ("ragd_retrieval_hits_total", "ragd_retrieval_misses_total",
                 "ragd_cache_hits_total", "ragd_cache_misses_total",
                 "ragd_embedding_tokens_total", "ragd_embedding_requests_total",
                 "ragd_ingest_runs_total", "ragd_ingest_failures_total",
                 'ragd_upstream_errors_total{kind="timeout"}',
                 "ragd_retrieval_duration_seconds_count",
                 "ragd_retrieval_embed_duration_seconds_count",
                 "ragd_retrieval_search_duration_seconds_count"):
        eq(before.get(name), 0.0, "%s before any traffic" % name)
    d.ingest(corpus)
    for _ in range(3):
        ans = d.retrieve({"query": REFUND_QUESTION, "k": 3})
        check(ans["results"], "expected results for the refund question")
    for _ in range(2):
        ans = d.retrieve({"query": REFUND_QUESTION, "k": 3, "min_score": 1.0,
                          "mode": "vector"})
        eq(ans["results"], [], "results above min_score 1.0")
    bad = d.call("POST", "/retrieve", {"query": ""})
    eq(bad.status, 400, "empty query")
    m = scrape(d)
    eq(m["ragd_retrieval_hits_total"], 3.0, "hits")
    eq(m["ragd_retrieval_misses_total"], 2.0, "misses")
    eq(m["ragd_retrieval_duration_seconds_count"], 5.0, "retrieval histogram count")
    eq(m['ragd_retrieval_duration_seconds_bucket{le="+Inf"}'], 5.0, "+Inf bucket")
    eq(m['ragd_http_requests_total{route="/retrieve",status="200"}'], 5.0, "retrieve 200s")
    eq(m['ragd_http_requests_total{route="/retrieve",status="400"}'], 1.0, "retrieve 400s")
    eq(m['ragd_http_requests_total{route="/ingest",status="200"}'], 1.0, "ingest 200s")
    eq(m["ragd_ingest_runs_total"], 1.0, "ingest runs")
    h = d.health()
    eq(m["ragd_documents"], float(h["store"]["documents"]), "documents gauge")
    eq(m["ragd_chunks"], float(h["store"]["chunks"]), "chunks gauge")
    check(m["ragd_index_bytes"] > 0, "index bytes gauge %r" % m["ragd_index_bytes"])
    # One more retrieval moves exactly one of the two counters.
    d.retrieve({"query": REFUND_QUESTION})
    m2 = scrape(d)
    moved = (m2["ragd_retrieval_hits_total"] - m["ragd_retrieval_hits_total"],
             m2["ragd_retrieval_misses_total"] - m["ragd_retrieval_misses_total"])
    eq(moved, (1.0, 0.0), "hits/misses moved by one retrieval")
    eq(m2['ragd_http_requests_total{route="/metrics",status="200"}'], 2.0,
       "the two earlier scrapes, counted by the third")


@test
def parallel_sides_counted(t):
    """[retrieve] parallel_sides: ragd_retrieval_parallel_sides_total counts the hybrid
    retrievals whose keyword side ran in a thread of its own (true: every hybrid one; never a
    vector-mode one), and they answer as the sequential path does (false)."""
    corpus = t.path("corpus")
    write_corpus(corpus)
    answers = {}
    for setting in ("false", "true"):
        cfg = t.path("par-%s.ini" % setting)
        write(cfg, "[retrieve]\nparallel_sides = %s\n" % setting)
        d = t.serve(config=cfg, data_dir=t.path("data-%s" % setting))
        eq(scrape(d).get("ragd_retrieval_parallel_sides_total"), 0.0, "counter before traffic")
        d.ingest(corpus)
        got = []
        for _ in range(3):
            ans = d.retrieve({"query": REFUND_QUESTION, "k": 3})
            got.append([(r["source"], r["score"]) for r in ans["results"]])
        d.retrieve({"query": REFUND_QUESTION, "k": 3, "mode": "vector"})
        eq(scrape(d)["ragd_retrieval_parallel_sides_total"], 3.0 if setting == "true" else 0.0,
           "parallel retrievals counted with parallel_sides = %s" % setting)
        check(got[0], "expected results for the refund question")
        answers[setting] = got
        d.stop()
    eq(answers["true"], answers["false"], "parallel and sequential sides answer alike")


@test
def parallel_sides_beside_writes(t):
    """[retrieve] parallel_sides = true while pushed documents are written: the keyword side
    runs on a helper thread under a read lock of its own, which it takes only when free at once
    (a request holding its lock waits for the helper while a writer queues: blocking there would
    deadlock), and whose result is dropped when a write committed in between. Every retrieval
    and every write answers 200, the newest document is found by both sides' fusion after the
    writes, and the helpers ran sides (the counter moves)."""
    corpus = t.path("corpus")
    write_corpus(corpus)
    cfg = t.path("par.ini")
    write(cfg, "[retrieve]\nparallel_sides = true\n")
    d = t.serve(config=cfg)
    d.ingest(corpus)
    before = scrape(d).get("ragd_retrieval_parallel_sides_total", 0.0)
    statuses = []

    def writer():
        for i in range(30):
            doc = {"id": "policy", "title": "Refund policy revision %d" % i,
                   "text": "Refund requests revision %d: a receipt and the order number "
                           "zebulon%d within 30 days." % (i, i)}
            statuses.append(d.call("POST", "/documents", doc, timeout=120).status)

    th = threading.Thread(target=writer)
    th.start()
    answers = 0
    while th.is_alive() or answers < 30:
        ans = d.retrieve({"query": REFUND_QUESTION, "k": 3})
        check(ans["results"], "results while documents are written")
        answers += 1
    th.join(timeout=300)
    check(not th.is_alive(), "the writer finished")
    eq(statuses, [200] * 30, "every pushed document stored")
    hybrid = d.retrieve({"query": "zebulon29 receipt", "k": 3})
    eq(hybrid["results"][0]["source"], "push:policy", "the newest revision ranks first")
    for _ in range(3):
        d.retrieve({"query": REFUND_QUESTION, "k": 3})
    after = scrape(d)["ragd_retrieval_parallel_sides_total"]
    check(after - before >= 3, "helper threads ran keyword sides (%s)" % (after - before))
    check(after - before <= answers + 4, "counted at most once per hybrid retrieval")
    d.stop()


@test
def event_log_lines_and_request_ids(t):
    corpus = t.path("corpus")
    write_corpus(corpus)
    log = t.path("logs", "rag.log")
    d = t.serve(config=ops_config(t))
    d.ingest(corpus)
    r = d.call("POST", "/retrieve", {"query": REFUND_QUESTION, "k": 2, "intent": "search_info"},
               headers={"X-Request-Id": "django-req-7"})
    eq(r.status, 200, "retrieve")
    eq(r.headers.get("x-request-id"), "django-req-7", "echoed X-Request-Id")
    r2 = d.call("POST", "/retrieve", {"query": "zyxw qqqq", "k": 2, "min_score": 0.99},
                headers={"X-Request-Id": "bad id with spaces"})
    rid = r2.headers.get("x-request-id", "")
    check(re.fullmatch(r"[0-9a-f]{16}", rid), "generated request id %r" % rid)
    lines = wait_until(lambda: [l for l in event_lines(log) if l["event"] == "retrieval"][:2]
                       if len([l for l in event_lines(log) if l["event"] == "retrieval"]) >= 2
                       else None, 20, "two retrieval lines in %s" % log)
    first, second = lines
    eq(first["request_id"], "django-req-7", "request_id of the first line")
    eq(first["query_sha256"], hashlib.sha256(REFUND_QUESTION.encode()).hexdigest(), "hash")
    check("query" not in first, "raw query logged without log_queries: %s" % short(first))
    eq(first["intent"], "search_info", "intent")
    eq(first["k"], 2, "k")
    eq(first["hit"], True, "hit")
    check(isinstance(first["top_score"], float) and first["top_score"] > 0, "top_score")
    for part in ("embed", "search", "fetch", "total"):
        check(isinstance(first["latency_ms"].get(part), (int, float)), "latency_ms.%s" % part)
    check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"]), "time")
    eq(second["request_id"], rid, "generated id in the log")
    eq(second["hit"], False, "miss")
    eq(second["top_score"], None, "top_score of a miss")
    ingests = [l for l in event_lines(log) if l["event"] == "ingest"]
    eq(len(ingests), 1, "ingest lines")
    eq(ingests[0]["result"], "ok", "ingest result")
    eq(ingests[0]["report"]["documents"]["added"], 6, "ingest report in the log")


@test
def event_log_raw_queries_only_when_enabled(t):
    corpus = t.path("corpus")
    write_corpus(corpus)
    log = t.path("logs", "rag.log")
    d = t.serve(config=ops_config(t, "log_queries = true\n"))
    d.ingest(corpus)
    d.retrieve({"query": REFUND_QUESTION})
    line = wait_until(lambda: next((l for l in event_lines(log) if l["event"] == "retrieval"),
                                   None), 20, "a retrieval line")
    eq(line.get("query"), REFUND_QUESTION, "raw query with log_queries = true")


@test
def logrotate_rename_then_sighup(t):
    corpus = t.path("corpus")
    write_corpus(corpus)
    log = t.path("logs", "rag.log")
    d = t.serve(config=ops_config(t))
    d.ingest(corpus)
    d.retrieve({"query": "before rotation"})
    wait_until(lambda: len(event_lines(log)) >= 2, 20, "lines before rotation")
    os.rename(log, log + ".1")
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "reopened " + log, "the reopen after SIGHUP")
    d.retrieve({"query": "after rotation"})
    after_hash = hashlib.sha256(b"after rotation").hexdigest()
    wait_until(lambda: any(l.get("query_sha256") == after_hash for l in event_lines(log)), 20,
               "the new line in the new file")
    old = event_lines(log + ".1")
    eq(len(old), 2, "lines in the rotated file")
    check(all(l.get("query_sha256") != after_hash for l in old),
          "a line written after the reopen went to the rotated file")
    check(d.running(), "daemon still running after SIGHUP")


@test
def sighup_reloads_live_keys_and_names_the_rest(t):
    corpus = t.path("corpus")
    write_corpus(corpus)
    cfg = t.path("ragd.ini")
    write(cfg, "[retrieve]\nmin_score = 0.0\n[log]\nfile = %s\n" % t.path("rag.log"))
    d = t.serve(config=cfg)
    d.ingest(corpus)
    check(d.retrieve({"query": REFUND_QUESTION})["results"], "results before the reload")
    write(cfg, "[retrieve]\nmin_score = 1.0\ndefault_k = 2\n[server]\nthreads = 7\n"
               "[log]\nlevel = debug\nfile = %s\n" % t.path("rag.log"))
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "SIGHUP: applied live: retrieve.default_k, retrieve.min_score, log.level",
             "the applied live keys")
    wait_log(d, "restart to apply: server.threads", "the key that needs a restart")
    # vector mode: a cosine of 1.0 is a perfect match (hybrid scores are relative, top = 1.0)
    eq(d.retrieve({"query": REFUND_QUESTION, "mode": "vector"})["results"], [],
       "results after min_score = 1.0")
    # log.level = debug is live: requests are now logged.
    wait_log(d, "level=debug module=http", "a debug line after the reload")
    # A file that no longer validates is not applied; the running values stay.
    write(cfg, "[retrieve]\nmin_score = 0.0\nmax_k = nope\n")
    os.kill(d.pid, signal.SIGHUP)
    wait_log(d, "configuration not reloaded", "the refused reload")
    check("max_k: 'nope' is not an integer" in d.stderr_text(), "reason of the refused reload")
    eq(d.retrieve({"query": REFUND_QUESTION, "mode": "vector"})["results"], [],
       "min_score kept at 1.0")
    write(cfg, "[retrieve]\nmin_score = 0.0\n[log]\nfile = %s\n" % t.path("rag.log"))
    os.kill(d.pid, signal.SIGHUP)
    wait_until(lambda: d.retrieve({"query": REFUND_QUESTION})["results"], 20,
               "results again after min_score back to 0.0")


def send_partial(port, body, keep):
    """Opens a connection and sends a POST /retrieve with all of body's headers and
    "Expect: 100-continue", waits for the daemon's "100 Continue", then sends only `keep` bytes of
    the body. ragd's engine sends "100 Continue" only after the server has begun the request
    (and counted it in flight), so on return the request is known to be in flight: no scrape of
    /metrics, whose own requests would blur the count. Returns the socket."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(("POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Content-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
               % len(body)).encode())
    got = b""
    while b"\r\n\r\n" not in got:
        b = s.recv(4096)
        check(b, "connection closed before 100 Continue: %r" % got)
        got += b
    check(got.startswith(b"HTTP/1.1 100"), "expected 100 Continue, got %r" % got[:200])
    s.sendall(body[:keep])
    return s


def drain_count(d):
    """Returns: the count of the daemon's "draining: N requests in flight" line, or None."""
    m = re.search(r"draining: (\d+) requests in flight", d.stderr_text())
    return int(m.group(1)) if m else None


def read_response(s):
    data = b""
    while True:
        try:
            b = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not b:
            break
        data += b
    s.close()
    return data


@test
def sigterm_finishes_request_in_flight_and_refuses_new(t):
    corpus = t.path("corpus")
    write_corpus(corpus)
    d = t.serve(args=("--log-level", "debug"))
    d.ingest(corpus)
    body = json.dumps({"query": REFUND_QUESTION, "k": 2}).encode()
    s = send_partial(d.port, body, 10)
    os.kill(d.pid, signal.SIGTERM)
    # The partial request is in flight (send_partial saw its 100 Continue); an earlier request
    # whose completion the daemon has not processed yet may be counted too: at least 1.
    wait_until(lambda: drain_count(d) is not None, 60, "the drain line")
    check(drain_count(d) >= 1, "drain did not count the open request: %s" % drain_count(d))
    try:
        http_call(d.port, "GET", "/health", timeout=5)
        refused = False
    except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
        refused = True
    check(refused, "a new connection was served during the drain")
    s.sendall(body[10:])
    data = read_response(s)
    check(data.startswith(b"HTTP/1.1 200"), "in-flight request answer: %r" % data[:200])
    payload = json.loads(data.partition(b"\r\n\r\n")[2])
    check(payload["results"], "in-flight request got no results")
    d.proc.wait(30)
    eq(d.proc.returncode, 0, "exit status after the drain")
    check("drained in" in d.stderr_text(), "no 'drained' line:\n%s" % d.stderr_text()[-800:])
    check(os.path.isfile(t.path("data", "index.faiss")), "index saved")


@test
def sigterm_drain_is_bounded(t):
    cfg = t.path("ragd.ini")
    write(cfg, "[server]\nshutdown_timeout = 1\n[log]\nfile =\n")
    d = t.serve(config=cfg)
    s = send_partial(d.port, b'{"query": "never finished"}', 5)
    os.kill(d.pid, signal.SIGTERM)
    d.proc.wait(60)  # the client never sends the rest: only the deadline ends the drain
    eq(d.proc.returncode, 0, "exit status after a bounded drain")
    check(re.search(r"closing [1-9]\d* requests still in flight", d.stderr_text()),
          "no deadline line:\n%s" % d.stderr_text()[-800:])
    s.close()


@test
def sigterm_under_load(t):
    corpus = t.path("corpus")
    write_generated(corpus, 60)
    d = t.serve()
    d.ingest(corpus)
    stop = threading.Event()
    outcomes = {"ok": 0, "unavailable": 0, "refused": 0, "bad": []}
    lock = threading.Lock()

    def client(i):
        while not stop.is_set():
            try:
                r = http_call(d.port, "POST", "/retrieve", {"query": "alpha bravo %d" % i, "k": 3},
                              timeout=30)
                if r.status == 200 and isinstance(r.json.get("results"), list):
                    key = "ok"
                elif r.status == 503 and r.json["error"]["code"] == "unavailable":
                    key = "unavailable"
                else:
                    with lock:
                        outcomes["bad"].append(repr(r))
                    continue
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
                    http.client.RemoteDisconnected):
                key = "refused"
                if not d.running():
                    stop.set()
            with lock:
                outcomes[key] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    wait_until(lambda: outcomes["ok"] >= 20, 60, "20 answered retrievals under load")
    os.kill(d.pid, signal.SIGTERM)
    try:
        d.proc.wait(60)
    finally:
        stop.set()
        for th in threads:
            th.join(60)
    eq(d.proc.returncode, 0, "exit status after SIGTERM under load")
    eq(outcomes["bad"], [], "answers that were neither a result nor a clean refusal")
    check(outcomes["ok"] >= 20, "answered retrievals: %r" % outcomes)
    # Restart: the saved index matches the store.
    d2 = t.serve()
    h = d2.health()
    eq(h["store"]["consistent"], True, "store consistent after the restart")
    eq(h["store"]["index_vectors"], h["store"]["chunks"], "index vectors after the restart")


@test
def health_degraded_reasons(t):
    d = t.serve(env={"RAG_ENABLED": "false"})
    r = d.call("GET", "/health")
    eq(r.status, 200, "degraded is 200")
    h = r.json
    eq(h["status"], "degraded", "status with RAG disabled")
    check(any("RAG is disabled" in x for x in h["reasons"]), "reasons %r" % h["reasons"])
    eq(h["rag"], {"enabled": False, "available": False}, "rag block")
    for key in ("reachable", "latency_ms", "last_error"):
        check(key in h["embedder"], "embedder.%s missing" % key)
    check(isinstance(h.get("disk_bytes"), int), "disk_bytes missing: %s" % short(h))

    d2 = t.serve(data_dir=t.path("data2"))
    eq(d2.health()["status"], "ok", "fresh daemon")
    r = d2.call("POST", "/ingest", {"path": t.path("no-such-dir")})
    eq(r.status, 404, "ingest of a missing path")
    r = d2.call("POST", "/ingest", {"path": "/etc"})
    eq(r.status, 403, "ingest outside the allowed roots")
    # A refused request is not an ingest: nothing ran, so readiness does not change (the
    # "last ingest failed" reason itself is covered by test_http's test_health_degraded).
    h = d2.health()
    eq(h["status"], "ok", "status after refused ingests")
    check(h["ingest"]["last_result"] != "failed", "ingest.last_result: %r" % h["ingest"])
    corpus = t.path("corpus")
    write_corpus(corpus)
    d2.ingest(corpus)
    h = d2.health()
    eq((h["status"], h["ingest"]["last_result"]), ("ok", "ok"), "after a good ingest")


class DownHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        body = json.dumps({"status": "down", "reasons": ["store not open"]}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@test
def ragd_health_exit_codes(t):
    d = t.serve()
    r = t.cli("health", "--url", "http://127.0.0.1:%d" % d.port)
    eq(r.rc, 0, "ragd health against a healthy daemon (%r)" % r)
    eq(r.json()["status"], "ok", "printed status")
    # Without --url: the address from the configuration.
    cfg = t.path("ragd.ini")
    write(cfg, "[server]\nlisten = 127.0.0.1:%d\n" % d.port)
    r = t.cli("health", "--config", cfg)
    eq(r.rc, 0, "ragd health with the configured address (%r)" % r)

    dd = t.serve(data_dir=t.path("data2"), env={"RAG_ENABLED": "false"})
    r = t.cli("health", "--url", "http://127.0.0.1:%d/" % dd.port)
    eq(r.rc, 0, "degraded still exits 0 (%r)" % r)
    eq(r.json()["status"], "degraded", "printed degraded status")

    r = t.cli("health", "--url", "http://127.0.0.1:%d" % free_port())
    eq(r.rc, 1, "unreachable daemon (%r)" % r)
    check("did not answer" in r.err, "message for an unreachable daemon: %r" % r.err)

    srv = http.server.HTTPServer(("127.0.0.1", 0), DownHandler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        r = t.cli("health", "--url", "http://127.0.0.1:%d" % srv.server_address[1])
    finally:
        srv.shutdown()
        srv.server_close()
    eq(r.rc, 1, "a down daemon (%r)" % r)
    eq(r.json()["status"], "down", "printed down status")
    r = t.cli("health", "--bogus")
    eq(r.rc, 2, "unknown option")


@test
def backup_while_running_then_restore(t):
    corpus = t.path("corpus")
    write_generated(corpus, 30)
    d = t.serve()
    d.ingest(corpus)
    before = d.health()["store"]
    # Take the backup while the daemon runs and serves retrievals.
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "contrib", "ragd-backup.sh")
    p = subprocess.run(["sh", script, t.path("data"), t.path("backup")], capture_output=True,
                       timeout=120)
    eq(p.returncode, 0, "ragd-backup.sh exit status (%s)" % p.stderr.decode(errors="replace"))
    for name in ("ragd.sqlite3", "index.faiss", "index.faiss.meta"):
        check(os.path.isfile(t.path("backup", name)), "%s missing from the backup" % name)
    check(not os.path.exists(t.path("backup", "ragd.sqlite3-wal")), "a -wal beside the backup")
    q = d.retrieve({"query": "alpha bravo", "k": 3})
    # Restore into a fresh data dir and start a second daemon on it.
    os.makedirs(t.path("restored"))
    for name in ("ragd.sqlite3", "index.faiss", "index.faiss.meta"):
        os.replace(t.path("backup", name), t.path("restored", name))
    d2 = t.serve(data_dir=t.path("restored"))
    after = d2.health()["store"]
    for key in ("documents", "chunks", "embeddings", "index_vectors"):
        eq(after[key], before[key], "restored store.%s" % key)
    eq(after["consistent"], True, "restored store consistent")
    q2 = d2.retrieve({"query": "alpha bravo", "k": 3})
    eq([r["chunk_id"] for r in q2["results"]], [r["chunk_id"] for r in q["results"]],
       "same results from the restored store")
    r = subprocess.run(["sh", script, t.path("nowhere"), t.path("b2")], capture_output=True)
    eq(r.returncode, 1, "backup of a directory that is not a data dir")


def _unmasked_threads(pid, sig):
    """Threads of pid (not the main one) that do not block sig: where a process-directed signal
    may land. Libraries start some before main() can set a mask (OpenBLAS's pool)."""
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        if int(tid) == pid:
            continue
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                blk = [ln for ln in f if ln.startswith("SigBlk:")][0].split()[1]
        except (OSError, IndexError):
            continue
        if not (int(blk, 16) >> (sig - 1)) & 1:
            out.append(int(tid))
    return out


@test
def sigterm_on_a_library_thread_still_drains(t):
    """SIGTERM delivered to a thread ragd did not create (and so could not mask) still stops the
    daemon through the drain, with exit 0; before the fix the default action killed it."""
    import ctypes
    d = t.serve()
    tids = _unmasked_threads(d.pid, signal.SIGTERM)
    check(tids, "no thread without SIGTERM blocked to aim at (the test needs one)")
    libc = ctypes.CDLL(None, use_errno=True)
    SYS_tgkill = 234  # x86_64
    eq(libc.syscall(SYS_tgkill, d.pid, tids[0], int(signal.SIGTERM)), 0, "tgkill")
    d.proc.wait(30)
    eq(d.proc.returncode, 0, "exit status (a negative one: killed by the signal, no drain)")
    check("SIGTERM received" in d.stderr_text(), "no drain:\n%s" % d.stderr_text()[-600:])
