# SPDX-License-Identifier: MIT
"""
test_http_hostile.py - the HTTP surface under hostile clients, against the real binary: hostile
bytes echoed into error messages (cut multibyte characters, non-UTF-8 in the URL), /health
without the token when one is set, refused requests that must not look like failed ingests.
Every answer checked here must be JSON with error.code and never a 5xx.
"""
import socket
import time

from harness import check, eq, expect_error, short, test, write, HTTP_TIMEOUT_S, TestFailure, \
    http_raw


def raw_call(port, head, body=b"", timeout=HTTP_TIMEOUT_S):
    """Sends head (bytes, the request line and headers without the blank line) + body."""
    return http_raw(port, head + b"\r\n", body, timeout=timeout)


def json_error(resp, what):
    """Checks a reply is a JSON error below 500 with a string error.code; returns the code."""
    check(resp.status < 500, "%s: a 5xx from client input: %r" % (what, resp))
    check(resp.status >= 400, "%s: expected an error, got %r" % (what, resp))
    check(resp.headers.get("content-type", "").startswith("application/json"),
          "%s: not JSON (content-type %r): %r" % (what, resp.headers.get("content-type"), resp))
    j = resp.json
    check(isinstance(j, dict) and isinstance(j.get("error"), dict) and
          isinstance(j["error"].get("code"), str) and isinstance(j["error"].get("message"), str),
          "%s: error body is not {\"error\": {code, message}}: %s" % (what, short(j)))
    return j["error"]["code"]


@test
def error_messages_cut_at_characters(t):
    d = t.serve()
    # an unknown field name whose echo would be cut inside a two-byte character
    for n in (40, 59, 60, 61, 62, 63, 64, 95, 96, 97, 300):
        name = "a" * n + "\u00e9\u00e9\u00e9"
        r = d.call("POST", "/retrieve", {"query": "x", name: 1})
        expect_error(r, 400, "invalid_request", field="unknown field", what="field name of %d" % n)
        r.body.decode("utf-8")  # strict: valid UTF-8
    # four-byte characters in a filter's unknown field and type
    emoji = "\U0001F600" * 40
    r = d.call("POST", "/retrieve", {"query": "x", "filters": {"type": emoji, "key": "a",
                                                                  "value": 1}})
    expect_error(r, 400, "invalid_request", field="unknown filter type", what="filter type")
    r = d.call("POST", "/retrieve", {"query": "x", "filters": {"type": "eq", "key": "a",
                                                                  "value": 1, emoji: 2}})
    expect_error(r, 400, "invalid_request", what="filter field")
    # a path outside the roots, long and multibyte, echoed in a 403
    r = d.call("POST", "/ingest", {"path": "/" + "\u00e9" * 400})
    expect_error(r, 403, "forbidden", what="multibyte path outside the roots")
    # a pushed document id too long, multibyte
    r = d.call("POST", "/documents", {"id": "\u00e9" * 300, "text": "x"})
    expect_error(r, 400, "invalid_request", what="multibyte id")


@test
def non_utf8_url_and_method_get_json(t):
    d = t.serve()
    r = raw_call(d.port, b"GET /\xe7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n")
    eq(json_error(r, "GET /\\xe7"), "not_found", "GET /\\xe7")
    r = raw_call(d.port, b"GET /documents/\xe7\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n")
    eq(json_error(r, "GET /documents/\\xe7\\xff"), "not_found", "bad document id")
    r = raw_call(d.port, b"DELETE /documents/\xc3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n")
    eq(json_error(r, "DELETE /documents/\\xc3"), "not_found", "bad document id on DELETE")
    r = raw_call(d.port, b"POST /" + b"\xe9" * 300 + b" HTTP/1.1\r\nHost: x\r\n"
                 b"Connection: close\r\nContent-Length: 0\r\n")
    eq(json_error(r, "long latin-1 path"), "not_found", "long latin-1 path")
    r = raw_call(d.port, b"GET /retrieve\xe9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n")
    eq(json_error(r, "path with a latin-1 tail"), "not_found", "path with a latin-1 tail")
    r = raw_call(d.port, b"PUT /retrieve HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 b"Content-Length: 0\r\n")
    eq(json_error(r, "PUT /retrieve"), "method_not_allowed", "PUT /retrieve")
    eq(r.headers.get("allow"), "POST", "Allow header")
    eq(d.health()["status"], "ok", "daemon still healthy")


@test
def health_status_only_without_token(t):
    token = "health-token-for-tests"
    d = t.serve(env={"RAGD_SERVER_AUTH_TOKEN": token})
    good = {"Authorization": "Bearer " + token}
    for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
        r = d.call("GET", "/health", headers=headers)
        eq(r.status, 200, "/health without the token answers")
        eq(r.json, {"status": "ok"}, "/health without the token: the status only")
    r = d.call("GET", "/health", headers=good)
    eq(r.status, 200, "/health with the token")
    for key in ("store", "embedder", "ingest", "cache", "reasons", "version"):
        check(key in r.json, "/health with the token lacks %r: %s" % (key, short(r.json)))
    # refused requests (no token; a path outside the roots) are not failed ingests
    expect_error(d.call("POST", "/ingest", {"path": "/etc"}), 401, "unauthorized",
                 what="ingest without the token")
    expect_error(d.call("POST", "/ingest", {"path": "/etc"}, headers=good), 403, "forbidden",
                 what="ingest outside the roots")
    expect_error(d.call("POST", "/ingest", {"path": t.path("missing")}, headers=good), 404,
                 "not_found", what="ingest of a missing path")
    eq(d.call("GET", "/health").json, {"status": "ok"}, "status after refused requests")
    h = d.call("GET", "/health", headers=good).json
    eq((h["status"], h["reasons"]), ("ok", []), "details after refused requests")
    check(h["ingest"]["last_result"] != "failed", "last_result %r" % h["ingest"])
    check(t.path("missing") not in d.call("GET", "/health").body.decode(),
          "a refused path shows in the unauthenticated /health")
