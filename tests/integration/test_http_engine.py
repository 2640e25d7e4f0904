# SPDX-License-Identifier: MIT
"""
test_http_engine.py - ragd's own HTTP/1.1 connection engine (src/http_front.c), against the real
binary: a client that half-closes after its request (its FIN arriving at any moment after the
request) gets its whole reply on every kind of route, the second and later heads of a kept-alive
connection and bodies deep into their chunked framing are checked like the first (JSON errors,
never HTML), a stalled body gets a 408 JSON reply, idle kept-alive connections make room for a
new client at the connection limit, and pipelined requests are answered in order.
"""
import json
import socket
import threading
import time

from harness import check, eq, faiss_only, test, write, wait_until
from test_chat import REFUND_QUESTION, setup as chat_setup


class Reader:
    """Reads HTTP/1.1 responses from a socket (Content-Length or chunked; 1xx skipped)."""

    def __init__(self, sock):
        self.s = sock
        self.buf = b""
        self.eof = False

    def _more(self):
        if self.eof:
            return False
        try:
            b = self.s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            b = b""
        if not b:
            self.eof = True
            return False
        self.buf += b
        return True

    def _until(self, sep):
        while sep not in self.buf:
            if not self._more():
                return None
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _take(self, n):
        while len(self.buf) < n:
            if not self._more():
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, head_request=False):
        """Returns (status, headers, body) of the next final response, or None when the
        connection ended before a complete one."""
        while True:
            head = self._until(b"\r\n\r\n")
            if head is None:
                return None
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            hdrs = {}
            for l in lines[1:]:
                if l:
                    k, _, v = l.partition(":")
                    hdrs[k.strip().lower()] = v.strip()
            if 100 <= status < 200:
                continue
            break
        if head_request:
            return status, hdrs, b""
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                line = self._until(b"\r\n")
                if line is None:
                    return None
                n = int(line.split(b";")[0], 16)
                if n == 0:
                    if self._until(b"\r\n") is None:
                        return None
                    return status, hdrs, body
                data = self._take(n + 2)
                if data is None:
                    return None
                body += data[:n]
        n = int(hdrs.get("content-length", "0"))
        body = self._take(n)
        if body is None:
            return None
        return status, hdrs, body


def post(path, obj, extra=b""):
    body = json.dumps(obj).encode()
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def half_closed(port, raw, delay):
    """Sends raw, shuts the sending side after delay seconds, reads one response."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        s.sendall(raw)
        if delay:
            time.sleep(delay)
        s.shutdown(socket.SHUT_WR)
        return Reader(s).response()
    finally:
        s.close()


@test
def fin_after_request_every_route_kind_gets_its_reply(t):
    fake, d = chat_setup(t)
    kinds = [
        ("GET /health (a handler in the pool)", b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
         lambda st, h, b: st == 200 and json.loads(b)["status"] in ("ok", "degraded")),
        ("POST /retrieve (handed to the retrieval pool)",
         post("/retrieve", {"query": REFUND_QUESTION, "k": 2}),
         lambda st, h, b: st == 200 and json.loads(b)["results"]),
        ("POST /documents (a body, a handler in the pool)",
         post("/documents", {"id": "fin-doc", "text": "pushed while half-closing"}),
         lambda st, h, b: st == 200 and "fin-doc" in b.decode()),
        ("POST /v1/chat/completions streamed (a thread of its own)",
         post("/v1/chat/completions", {"stream": True, "messages": [
             {"role": "user", "content": REFUND_QUESTION}]}),
         lambda st, h, b: st == 200 and h.get("content-type", "").startswith(
             "text/event-stream") and b.rstrip().endswith(b"data: [DONE]")),
    ]
    delays = [0, 0.0005, 0.002, 0.005, 0.02]
    n = 200
    for name, raw, good in kinds:
        lost, bad = [], []
        lock = threading.Lock()

        def worker(k):
            for i in range(k, n, 4):
                r = half_closed(d.port, raw, delays[i % len(delays)])
                with lock:
                    if r is None:
                        lost.append(i)
                    elif not good(*r):
                        bad.append((i, r[0], r[2][:200]))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(600)
        eq(lost, [], "%s: half-closed requests without their full reply" % name)
        eq(bad, [], "%s: wrong replies" % name)
    eq(d.health()["status"], "ok", "daemon healthy after the half-closed clients")


@test
def keep_alive_later_heads_are_checked_in_json(t):
    d = t.serve()
    s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
    rd = Reader(s)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    r = rd.response()
    check(r is not None and r[0] == 200, "first request on the connection: %r" % (r,))
    cases = [
        (b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400, "bad_request"),
        (b"GET /health HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400,
         "bad_request"),
        (b"GET /health HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "unsupported"),
        (b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n", 400, "http_version_not_supported"),
    ]
    for i, (raw, status, code) in enumerate(cases):
        if i > 0:  # each refusal closes its connection: a fresh one, a good first request
            s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
            rd = Reader(s)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            eq(rd.response()[0], 200, "first request %d" % i)
        s.sendall(raw)
        r = rd.response()
        check(r is not None, "case %d: no reply to a malformed second head" % i)
        eq(r[0], status, "case %d: status" % i)
        check(r[1].get("content-type", "").startswith("application/json"),
              "case %d: not JSON: %r" % (i, r))
        eq(json.loads(r[2])["error"]["code"], code, "case %d: error code" % i)
        s.close()


@test
def chunked_framing_error_deep_in_a_body_is_json(t):
    d = t.serve()
    body = b"".join(b"400\r\n" + b" " * 1024 + b"\r\n" for _ in range(40))  # 40 KiB of spaces
    for tail, what in ((b"zz\r\n{}\r\n0\r\n\r\n", "a bad chunk size"),
                       (b"2\r\n{}xx0\r\n\r\n", "data longer than its chunk")):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
        s.sendall(b"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + body + tail)
        r = Reader(s).response()
        s.close()
        check(r is not None, "%s 40 KiB into the body: no reply" % what)
        eq(r[0], 400, "%s: status" % what)
        check(r[1].get("content-type", "").startswith("application/json"), "%s: not JSON" % what)
        eq(json.loads(r[2])["error"]["code"], "bad_request", "%s: error code" % what)
        eq(r[1].get("connection", "").lower(), "close", "%s: Connection: close" % what)
    # the same body, well framed, is read and answered
    s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
    s.sendall(b"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n" + body +
              b"11\r\n{\"query\": \"abc\"}\r\n0\r\n\r\n")
    r = Reader(s).response()
    s.close()
    eq(r[0] if r else None, 200, "well-framed 40 KiB chunked body")


@test
def stalled_body_gets_408_json(t):
    cfg = t.path("ragd.ini")
    write(cfg, "[server]\nrequest_timeout = 2\n")
    d = t.serve(config=cfg)
    for head, part in ((b"Content-Length: 100\r\n", b'{"query": "stall'),
                       (b"Transfer-Encoding: chunked\r\n", b'20\r\n{"query": "st')):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=60)
        s.sendall(b"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
                  head + b"\r\n" + part)
        r = Reader(s).response()  # the connection stays open on the client's side
        s.close()
        check(r is not None, "stalled body (%r): no reply" % head)
        eq(r[0], 408, "stalled body: status")
        check(r[1].get("content-type", "").startswith("application/json"), "408 not JSON")
        eq(json.loads(r[2])["error"]["code"], "request_timeout", "stalled body: code")


@test
def idle_keep_alive_connections_make_room_at_the_limit(t):
    cfg = t.path("ragd.ini")
    write(cfg, "[server]\nmax_connections = 8\nmax_connections_per_ip = 8\n")
    d = t.serve(config=cfg)
    held = []
    for i in range(8):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        r = Reader(s).response()
        check(r is not None and r[0] == 200, "keep-alive client %d: %r" % (i, r))
        held.append(s)
    # every slot holds an idle kept-alive connection: a new client is admitted, the oldest idle
    # one closed
    for i in range(3):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        r = Reader(s).response()
        s.close()
        check(r is not None, "new client %d: no reply" % i)
        eq(r[0], 200, "new client %d at the limit: %r" % (i, r[2][:200]))

    def closed(s):
        s.settimeout(0.05)
        try:
            return s.recv(1) == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    evicted = wait_until(lambda: [i for i, s in enumerate(held) if closed(s)] or None, 20,
                         "idle connections evicted")
    check(0 in evicted, "the oldest idle connection was not the one evicted: %r" % evicted)
    for s in held:
        s.close()


@test
def pipelined_requests_answered_in_order(t):
    d = t.serve()
    reqs = [b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: pipe-1\r\n\r\n",
            post("/retrieve", {"query": "anything"}, b"X-Request-Id: pipe-2\r\n"),
            b"GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-Id: pipe-3\r\n\r\n",
            b"HEAD /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: pipe-4\r\n\r\n",
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: pipe-5\r\n\r\n"]
    s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
    s.sendall(b"".join(reqs))
    rd = Reader(s)
    got = []
    for i in range(len(reqs)):
        r = rd.response(head_request=(i == 3))
        check(r is not None, "pipelined reply %d missing" % (i + 1))
        got.append((r[1].get("x-request-id"), r[0]))
    s.close()
    eq(got, [("pipe-1", 200), ("pipe-2", 200), ("pipe-3", 404), ("pipe-4", 200), ("pipe-5", 200)],
       "pipelined replies in order")


@test
def large_body_sent_at_once_is_read_whole(t):
    # A head and a body much larger than one read, all in the socket buffer before the daemon
    # looks: the engine must read on past its first look without waiting for another event
    # (a stall here ends in 408 after request_timeout).
    cfg = t.path("ragd.ini")
    write(cfg, "[server]\nrequest_timeout = 5\n")
    d = t.serve(config=cfg)
    pad = "p" * 700000
    for framing in ("length", "chunked"):
        body = json.dumps({"query": "x", "pad": pad}).encode()
        if framing == "length":
            raw = (b"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body)) + body
        else:
            chunks = b"".join(b"%x\r\n" % len(body[i:i + 30000]) + body[i:i + 30000] + b"\r\n"
                              for i in range(0, len(body), 30000))
            raw = (b"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n") + chunks + b"0\r\n\r\n"
        s = socket.create_connection(("127.0.0.1", d.port), timeout=60)
        s.sendall(raw + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        rd = Reader(s)
        r = rd.response()
        check(r is not None, "%s: no reply" % framing)
        eq(r[0], 400, "%s: status (408 means the body was not read on)" % framing)
        eq(json.loads(r[2])["error"]["code"], "invalid_request", "%s: code" % framing)
        r = rd.response()  # the pipelined request behind the large body
        eq(r[0] if r else None, 200, "%s: the request after the large body" % framing)
        s.close()


@test
@faiss_only  # the transport's behaviour; an 8 MB push into PGlite would take minutes
def reader_that_stops_reading_is_closed_after_connection_timeout(t):
    # A client that asks for a large reply and then reads nothing holds its connection only for
    # connection_timeout without progress: the rest of the reply is dropped and the slot freed.
    cfg = t.path("ragd.ini")
    write(cfg, "[server]\nconnection_timeout = 2\nmax_body_bytes = 16m\n"
          "[ingest]\nmax_document_bytes = 16m\n")
    d = t.serve(config=cfg)
    # an 8 MB pushed document, read back whole by GET /documents/{id}: more than the kernel's
    # send buffer (4 MB at most) and the client's tiny receive window hold
    text = "word " * 1600000
    eq(d.call("POST", "/documents", {"id": "big", "text": text}, timeout=120).status, 200, "push")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window: the reply waits
    s.settimeout(60)
    s.connect(("127.0.0.1", d.port))
    s.sendall(b"GET /documents/big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    time.sleep(8)  # reads nothing for 4x connection_timeout
    got = b""
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        got += b
    s.close()
    head, _, body = got.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 200"), "reply head: %r" % head[:100])
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(
        b"content-length:")][0])
    check(len(body) < n, "the stalled reader got all %d bytes: not closed" % n)
    eq(d.call("GET", "/health").status, 200, "daemon serves on")


def metric_value(d, name):
    r = d.call("GET", "/metrics")
    eq(r.status, 200, "GET /metrics")
    for line in r.body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    check(False, "%s missing from /metrics" % name)


@test
def quick_retrievals_run_by_the_loop_when_alone(t):
    # With the local embedder and one client connection, a short unfiltered retrieval runs on
    # the event loop itself (ragd_http_retrievals_inline_total), without the hand-off to the
    # retrieval pool. One naming filters or a collection (their searches widen), or one arriving
    # while another connection is open, goes to the pool as before. The answers are the same.
    d = t.serve()
    for i in range(3):
        eq(d.call("POST", "/documents", {"id": "d%d" % i, "text": "refunds within %d days of "
                                         "delivery for parcel %d" % (10 * (i + 1), i)}).status,
           200, "push %d" % i)
    s = socket.create_connection(("127.0.0.1", d.port), timeout=60)
    rd = Reader(s)

    def call(path, obj=None):
        s.sendall(post(path, obj) if obj is not None else
                  b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        r = rd.response()
        check(r is not None, "%s: no reply" % path)
        eq(r[0], 200, "%s %s" % (path, obj))
        return r[2]

    def inline_count():  # scraped on the same connection: it stays the only one
        for line in call("/metrics").decode().splitlines():
            if line.startswith("ragd_http_retrievals_inline_total "):
                return float(line.split()[1])
        check(False, "ragd_http_retrievals_inline_total missing from /metrics")

    q = {"query": "refunds after delivery", "k": 3}
    n0 = inline_count()
    answers = [json.loads(call("/retrieve", q)) for _ in range(5)]
    n1 = inline_count()
    # A request whose reply is made no longer counts, though its worker may not have let go of
    # it yet (CI under load counted 2 of 5 while the test for "alone" was the in-flight count:
    # each retrieval handed off made the next one find two in flight). All five, but for one
    # odd scheduling event.
    check(n1 - n0 >= 4, "retrievals run by the loop: %r of 5" % (n1 - n0))
    ids = [[r["chunk_id"] for r in a["results"]] for a in answers]
    check(ids[0] and all(x == ids[0] for x in ids), "answers differ: %r" % ids)
    filtered = dict(q, filters={"source": "d"})
    named = dict(q, collection="default")
    call("/retrieve", filtered)
    eq([r["chunk_id"] for r in json.loads(call("/retrieve", named))["results"]], ids[0],
       "answer naming the default collection")
    eq(inline_count(), n1, "a retrieval with filters or a collection run by the loop")
    other = socket.create_connection(("127.0.0.1", d.port), timeout=60)
    other.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    check(Reader(other).response() is not None, "health on the second connection")
    n2 = inline_count()
    via_pool = json.loads(call("/retrieve", q))
    eq([r["chunk_id"] for r in via_pool["results"]], ids[0], "answer through the pool")
    eq(inline_count(), n2, "a retrieval run by the loop while another connection is open")
    other.close()
    s.close()


@test
def replies_written_by_their_thread_and_large_ones_finished_by_the_loop(t):
    # A reply made in a worker (a retrieval, a document read) goes to the socket from that
    # thread when nothing else waits to be written on its connection: counted in
    # ragd_http_replies_direct_total. A reply larger than the socket takes at once is finished by
    # the event loop: the client gets every byte, in order, and the kept-alive connection serves
    # the next request.
    cfg = t.path("ragd.ini")
    write(cfg, "[server]\nmax_body_bytes = 16m\n[ingest]\nmax_document_bytes = 16m\n")
    d = t.serve(config=cfg)
    eq(d.call("POST", "/documents", {"id": "small", "text": "refunds within thirty days"}).status,
       200, "push small")
    before = metric_value(d, "ragd_http_replies_direct_total")
    inline_before = metric_value(d, "ragd_http_retrievals_inline_total")
    s = socket.create_connection(("127.0.0.1", d.port), timeout=60)
    rd = Reader(s)
    for i in range(10):
        s.sendall(post("/retrieve", {"query": "refunds", "k": 3}))
        r = rd.response()
        check(r is not None, "retrieve %d: no reply" % i)
        eq(r[0], 200, "retrieve %d status" % i)
        check(json.loads(r[2])["results"], "retrieve %d: results" % i)
        s.sendall(b"GET /documents/small HTTP/1.1\r\nHost: x\r\n\r\n")
        r = rd.response()
        check(r is not None, "document read %d: no reply" % i)
        eq(r[0], 200, "document read %d status" % i)
    s.close()
    after = metric_value(d, "ragd_http_replies_direct_total")
    inline = metric_value(d, "ragd_http_retrievals_inline_total") - inline_before
    # The 20 replies above and the first scrape's own may go direct. The choice is made at
    # dispatch (nothing queued on the connection, at most 2 requests being answered), so it
    # depends on scheduling: with two test suites on 2 cores, CI counted 19 of 21 (the others
    # written by the loop, as correctly). So most of them, not all; with the fast path off, none.
    # A retrieval the event loop ran itself (alone on the daemon: quick_retrievals_...) is
    # written by the loop, as it is made there.
    check(after - before + inline >= 11, "direct replies %r -> %r, %r retrievals run by the loop"
          % (before, after, inline))
    text = "".join("w%07d " % i for i in range(1000000))  # 9 MB
    eq(d.call("POST", "/documents", {"id": "big", "text": text}, timeout=120).status, 200,
       "push big")
    for rounds in range(2):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # the reply cannot go at once
        s.settimeout(60)
        s.connect(("127.0.0.1", d.port))
        rd = Reader(s)
        s.sendall(b"GET /documents/big HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: after-big\r\n\r\n")
        if rounds == 1:
            time.sleep(1)  # the worker's write has filled the socket long before the client reads
        r = rd.response()
        check(r is not None, "big document: no reply")
        eq(r[0], 200, "big document status")
        doc = json.loads(r[2])  # every byte, in order, or this fails
        eq((doc.get("id"), len(doc.get("chunks", [])) > 0), ("big", True), "big document")
        check(len(r[2]) > 4000000, "big reply only %d bytes" % len(r[2]))
        r = rd.response()
        check(r is not None, "health after the big reply: no reply")
        eq((r[0], r[1].get("x-request-id")), (200, "after-big"), "health after the big reply")
        s.close()
