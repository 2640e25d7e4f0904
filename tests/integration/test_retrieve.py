# SPDX-License-Identifier: MIT
"""
test_retrieve.py - one daemon over the support corpus (shared fixture "corpus"): GET /health,
POST /retrieve ranking, fields and types, context/sources numbering, k, min_score, filters,
and every request error of /retrieve and /ingest (with the store unchanged afterwards), plus
routing errors (404, 405 with Allow) and body limits (8 KiB query, 1 MiB body).
"""
import http.client
import json
import os
import time

from corpus import FILES, PLAIN, REFUND_QUESTION, write_corpus
from harness import (check, eq, expect_error, fixture, http_raw, is_int, is_num, shared, short,
                     TestFailure, write)

RESULT_FIELDS = {"rank": is_int, "score": is_num, "text": lambda v: isinstance(v, str),
                 "source": lambda v: isinstance(v, str), "title": lambda v: isinstance(v, str),
                 "heading": lambda v: isinstance(v, str), "chunk": is_int, "chunk_id": is_int,
                 "document_id": is_int, "tokens": is_int, "char_start": is_int,
                 "char_end": is_int, "tags": lambda v: isinstance(v, list),
                 "metadata": lambda v: isinstance(v, dict)}


@fixture("corpus")
def corpus_fixture(ctx):
    corpus = ctx.path("corpus")
    n = write_corpus(corpus)
    cfg = ctx.path("ragd.ini")
    write(cfg, "[log]\nlevel = info\n")
    d = ctx.serve(config=cfg)
    report = d.ingest(corpus)
    return {"d": d, "corpus": corpus, "n": n, "report": report}


def retrieve(fx, body, expect=200):
    return fx["d"].retrieve(body, expect)


def sources(ans):
    return [r["source"] for r in ans["results"]]


@shared("corpus")
def health_fields(t, fx):
    d = fx["d"]
    r = d.call("GET", "/health")
    eq(r.status, 200, "GET /health status")
    check("application/json" in r.headers.get("content-type", ""), "Content-Type %r"
          % r.headers.get("content-type"))
    h = r.json
    eq(h.get("status"), "ok", "status")
    eq(h.get("version"), "0.1.0", "version")
    eq(h.get("rag_enabled"), True, "rag_enabled")
    s = h.get("store")
    check(isinstance(s, dict), "store is not an object: %s" % short(h))
    for k in ("documents", "chunks", "embeddings", "index_vectors", "index_bytes"):
        check(is_int(s.get(k)), "store.%s is not an integer: %s" % (k, short(s)))
    eq(s["documents"], fx["n"], "store.documents")
    eq(s["chunks"], fx["report"]["chunks"]["added"], "store.chunks vs report chunks.added")
    check(0 < s["embeddings"] <= s["chunks"], "store.embeddings %r vs chunks %r"
          % (s["embeddings"], s["chunks"]))
    eq(s["index_vectors"], s["chunks"], "store.index_vectors")
    check(s["index_bytes"] >= s["index_vectors"] * h["embedder"]["dims"] * 4, "index_bytes %r too small"
          % s["index_bytes"])
    eq(s.get("consistent"), True, "store.consistent")
    eq({k: h.get("embedder", {}).get(k) for k in ("provider", "model", "dims")},
       {"provider": "local", "model": "ragd-local-v1", "dims": 1024}, "embedder")
    ing = h.get("ingest")
    check(isinstance(ing, dict), "ingest is not an object: %s" % short(h))
    eq(ing.get("running"), False, "ingest.running")
    eq(ing.get("last_ok"), True, "ingest.last_ok")
    check(is_int(ing.get("last_at")) and abs(ing["last_at"] - time.time()) < 3600,
          "ingest.last_at is not a recent unix time: %r" % ing.get("last_at"))


@shared("corpus")
def ingest_report_shape(t, fx):
    rep = fx["report"]
    eq(rep.get("root"), os.path.realpath(fx["corpus"]), "root")
    eq(rep.get("reset"), False, "reset")
    eq(set(rep.get("documents", {})), {"seen", "added", "updated", "unchanged", "removed",
                                       "failed"}, "documents keys")
    eq(set(rep.get("chunks", {})), {"added", "removed", "embedded", "deduplicated"},
       "chunks keys")
    for group in ("documents", "chunks"):
        for k, v in rep[group].items():
            check(is_int(v) and v >= 0, "%s.%s is %r" % (group, k, v))
    eq(rep["documents"]["added"], fx["n"], "documents.added")
    eq(rep["documents"]["seen"], fx["n"], "documents.seen")
    eq(rep["errors"], [], "errors")
    check(is_num(rep.get("duration_ms")) and rep["duration_ms"] >= 0, "duration_ms %r"
          % rep.get("duration_ms"))
    eq(rep["chunks"]["embedded"] + rep["chunks"]["deduplicated"], rep["chunks"]["added"],
       "chunks.embedded + chunks.deduplicated vs chunks.added")


@shared("corpus")
def retrieve_refund_exceptions_first(t, fx):
    ans = retrieve(fx, {"query": REFUND_QUESTION, "k": 5})
    check(ans["results"], "no results: %s" % short(ans))
    top = ans["results"][0]
    eq(top["source"], "business/refunds.md", "top source")
    eq(top["heading"], "Refund policy > Exceptions", "top heading")
    eq(top["title"], "Refund policy", "top title")
    check("money back" in top["text"], "top text is not the Exceptions section: %r"
          % short(top["text"]))
    eq(ans["low_confidence"], False, "low_confidence")
    eq(ans["rag_enabled"], True, "rag_enabled")
    eq(ans["query"], REFUND_QUESTION, "query echoed")


@shared("corpus")
def retrieve_each_section_first(t, fx):
    cases = [
        ("how long does international shipping take and who pays customs duties",
         "shipping/faq.md", "Shipping FAQ > International shipping"),
        ("when is the coffee machine descaled", "notes/office.txt", ""),
        ("I forgot my password, how do I reset it", "account/passwords.md",
         "Account security > Resetting your password"),
        ("add a VAT identification number and company name to invoices", "billing/invoices.md",
         "Invoices > Company details and VAT numbers"),
        ("what are the support desk opening hours", "README.md",
         "Getting started > Opening hours"),
    ]
    for q, src, heading in cases:
        ans = retrieve(fx, {"query": q, "k": 3})
        check(ans["results"], "%r: no results" % q)
        top = ans["results"][0]
        check(top["source"] == src and top["heading"] == heading,
              "%r: expected %s / %r first, got %s" % (q, src, heading,
                                                    [(r["source"], r["heading"], r["score"])
                                                     for r in ans["results"]]))


@shared("corpus")
def retrieve_result_fields_and_order(t, fx):
    r = fx["d"].call("POST", "/retrieve", {"query": "refund order parcel invoice password",
                                           "k": 10})
    eq(r.status, 200, "status")
    check("application/json" in r.headers.get("content-type", ""), "Content-Type %r"
          % r.headers.get("content-type"))
    ans = r.json
    for k in ("query", "rag_enabled", "low_confidence", "results", "context", "sources",
              "timings_ms"):
        check(k in ans, "answer lacks %r: %s" % (k, short(ans)))
    check(len(ans["results"]) >= 2, "too few results to check: %s" % short(ans))
    for i, res in enumerate(ans["results"]):
        for field, ok in RESULT_FIELDS.items():
            check(field in res and ok(res[field]), "result %d field %s: %r" % (i, field,
                                                                            res.get(field)))
        eq(res["rank"], i + 1, "rank of result %d" % i)
        check(res["source"] in FILES, "source %r is not relative to the root" % res["source"])
        check(res["chunk"] >= 0 and res["chunk_id"] > 0 and res["document_id"] > 0,
              "ids of result %d: %s" % (i, short(res)))
        check(res["tokens"] > 0, "tokens of result %d: %r" % (i, res["tokens"]))
        check(0 <= res["char_start"] < res["char_end"], "char range of result %d: %r..%r"
              % (i, res["char_start"], res["char_end"]))
        check(res["text"].strip(), "empty text in result %d" % i)
        check(-1.0001 <= res["score"] <= 1.0001, "score out of [-1, 1]: %r" % res["score"])
        for tag in res["tags"]:
            check(isinstance(tag, str), "tag %r is not a string" % (tag,))
    scores = [res["score"] for res in ans["results"]]
    eq(scores, sorted(scores, reverse=True), "scores in descending order")
    ids = [res["chunk_id"] for res in ans["results"]]
    eq(len(set(ids)), len(ids), "distinct chunk ids")
    tm = ans["timings_ms"]
    for k in ("embed", "search", "fetch", "total"):
        check(is_num(tm.get(k)) and tm[k] >= 0, "timings_ms.%s: %r" % (k, tm.get(k)))
    # the same document has one document_id and distinct ordinals
    seen = {}
    for res in ans["results"]:
        seen.setdefault(res["source"], set()).add(res["document_id"])
    for src, dids in seen.items():
        eq(len(dids), 1, "document ids for %s" % src)


@shared("corpus")
def retrieve_text_matches_char_range(t, fx):
    """For files without front matter, text is exactly the file's bytes [char_start, char_end)."""
    for q, src in (("what are the support desk opening hours", "README.md"),
                   ("when is the coffee machine descaled", "notes/office.txt"),
                   ("two-factor authentication recovery codes", "account/passwords.md")):
        ans = retrieve(fx, {"query": q, "k": 10, "filters": {"source": src}})
        check(ans["results"], "%s: no results" % src)
        raw = FILES[src].encode()
        for res in ans["results"]:
            eq(res["source"], src, "source filter")
            piece = raw[res["char_start"]:res["char_end"]].decode()
            eq(res["text"], piece, "%s chunk %d text vs file[char_start:char_end]"
               % (src, res["chunk"]))


@shared("corpus")
def retrieve_context_and_sources_numbering(t, fx):
    ans = retrieve(fx, {"query": "coffee machine refund money back shipping customs", "k": 8})
    res = ans["results"]
    check(len(res) >= 2, "too few results: %s" % short(ans))
    check(any(r["heading"] == "" for r in res), "no heading-less (.txt) result to check: %s"
          % [(r["source"], r["heading"]) for r in res])
    eq(len(ans["sources"]), len(res), "len(sources)")
    blocks = []
    for i, (r, s) in enumerate(zip(res, ans["sources"])):
        eq(s, {"n": i + 1, "source": r["source"], "title": r["title"], "heading": r["heading"]},
           "sources[%d]" % i)
        tag = "[%d] %s" % (i + 1, r["source"]) + (" > " + r["heading"] if r["heading"] else "")
        blocks.append(tag + "\n" + r["text"])
    expected = "\n\n".join(blocks)
    ctx = ans["context"]
    if ctx.rstrip("\n") != expected:
        for i, b in enumerate(blocks):
            check(b in ctx, "context lacks block %d %r; context: %s" % (i + 1, short(b, 120),
                                                                    short(ctx, 600)))
        check(False, "context differs from the blocks joined by blank lines: %s"
              % short(ctx, 600))
    check(ctx.startswith("[1] "), "context does not start with [1]")


@shared("corpus")
def retrieve_k_respected(t, fx):
    q = "refund order parcel invoice password coffee support customs"
    one = retrieve(fx, {"query": q, "k": 1})["results"]
    eq(len(one), 1, "results for k=1")
    three = retrieve(fx, {"query": q, "k": 3})["results"]
    eq(len(three), 3, "results for k=3")
    eq(three[0]["chunk_id"], one[0]["chunk_id"], "top result for k=1 vs k=3")
    dflt = retrieve(fx, {"query": q})["results"]
    five = retrieve(fx, {"query": q, "k": 5})["results"]
    eq([r["chunk_id"] for r in dflt], [r["chunk_id"] for r in five],
       "default k vs k=5 results")
    check(len(five) <= 5, "k=5 gave %d" % len(five))
    many = retrieve(fx, {"query": q, "k": 50})["results"]
    chunks = fx["d"].health()["store"]["chunks"]
    check(len(many) <= min(50, chunks), "k=50 gave %d results for %d chunks"
          % (len(many), chunks))
    check(len(many) >= len(five), "k=50 gave fewer results than k=5")


@shared("corpus")
def retrieve_min_score_respected(t, fx):
    q = "refund money back order parcel"
    base = retrieve(fx, {"query": q, "k": 20})["results"]
    check(all(r["score"] >= 0 for r in base), "default min_score 0 let a negative score "
          "through: %s" % [r["score"] for r in base])
    scores = sorted({r["score"] for r in base}, reverse=True)
    check(len(scores) >= 3, "need 3 distinct scores, got %s" % scores)
    thr = (scores[1] + scores[2]) / 2
    cut = retrieve(fx, {"query": q, "k": 20, "min_score": thr})
    check(all(r["score"] >= thr for r in cut["results"]), "score below min_score %r: %s"
          % (thr, [r["score"] for r in cut["results"]]))
    eq(len(cut["results"]), sum(1 for r in base if r["score"] >= thr),
       "number of results above min_score")
    high = retrieve(fx, {"query": q, "k": 20, "min_score": 0.9999})
    eq(high["results"], [], "results with min_score 0.9999")
    eq(high["low_confidence"], True, "low_confidence with no results")
    eq(high["sources"], [], "sources with no results")
    eq(high["context"], "", "context with no results")
    whole = retrieve(fx, {"query": q, "k": 20, "min_score": 0})
    eq(len(whole["results"]), len(base), "explicit min_score 0 vs default")


@shared("corpus")
def retrieve_filter_source_prefix(t, fx):
    ans = retrieve(fx, {"query": REFUND_QUESTION, "k": 10, "filters": {"source": "business/"}})
    check(ans["results"], "no results under business/")
    eq(set(sources(ans)), {"business/refunds.md"}, "sources under business/")
    ans = retrieve(fx, {"query": "invoice VAT company billing PDF", "k": 10,
                        "filters": {"source": "billing/"}})
    check(ans["results"], "no results under billing/")
    eq(set(sources(ans)), {"billing/invoices.md"}, "sources under billing/")
    ans = retrieve(fx, {"query": REFUND_QUESTION, "k": 10, "filters": {"source": "nope/"}})
    eq(ans["results"], [], "results under nope/")
    eq(ans["low_confidence"], True, "low_confidence under nope/")
    ans = retrieve(fx, {"query": REFUND_QUESTION, "k": 2,
                        "filters": {"source": "shipping/faq.md"}})
    check(all(s == "shipping/faq.md" for s in sources(ans)), "exact-source filter: %s"
          % sources(ans))


@shared("corpus")
def retrieve_filter_tags_and_metadata(t, fx):
    ans = retrieve(fx, {"query": REFUND_QUESTION + " invoice VAT", "k": 10,
                        "filters": {"tags": ["billing"]}})
    check(ans["results"], "no results tagged billing")
    check(set(sources(ans)) <= {"business/refunds.md", "billing/invoices.md"},
          "tag billing let through %s" % sources(ans))
    for r in ans["results"]:
        check("billing" in r["tags"], "result without the billing tag: %s" % short(r))
    ans = retrieve(fx, {"query": "invoice VAT company billing PDF refund", "k": 10,
                        "filters": {"tags": ["billing", "vip"]}})
    check(ans["results"], "no results tagged billing+vip")
    eq(set(sources(ans)), {"billing/invoices.md"}, "sources tagged billing+vip")
    ans = retrieve(fx, {"query": REFUND_QUESTION, "k": 10, "filters": {"tags": ["refunds",
                                                                            "vip"]}})
    eq(ans["results"], [], "results tagged refunds+vip (none has both)")
    ans = retrieve(fx, {"query": REFUND_QUESTION, "k": 10,
                        "filters": {"source": "business/", "tags": ["shipping"]}})
    eq(ans["results"], [], "source business/ + tag shipping")
    ans = retrieve(fx, {"query": REFUND_QUESTION, "k": 1})
    top = ans["results"][0]
    eq(sorted(top["tags"]), ["billing", "refunds"], "tags of refunds.md")
    eq(top["metadata"].get("owner"), "finance", "metadata.owner of refunds.md")
    ans = retrieve(fx, {"query": "coffee machine descaled", "k": 1})
    eq(ans["results"][0]["tags"], [], "tags of a file without front matter")
    ans = retrieve(fx, {"query": "invoice VAT", "k": 10, "filters": {"tags": ["vip"]}})
    check(len(ans["results"]) >= 2, "tag filter did not widen to both invoice sections: %s"
          % [(r["source"], r["heading"]) for r in ans["results"]])


@shared("corpus")
def retrieve_intent_accepted(t, fx):
    ans = retrieve(fx, {"query": REFUND_QUESTION, "k": 2, "min_score": 0.0,
                        "intent": "refund_request", "filters": {}})
    eq(ans["results"][0]["source"], "business/refunds.md", "top source with intent")


@shared("corpus")
def retrieve_request_errors(t, fx):
    d = fx["d"]
    problems = []

    def expect(raw, status, code, field, what):
        try:
            expect_error(d.call("POST", "/retrieve", raw=raw), status, code, field, what=what)
        except TestFailure as e:
            problems.append(str(e))
    for raw in (b"{", b"", b"{\"query\": \"x\",}", b"nul", b"{\"query\": \"\xff\xfe\"}",
                b"{\"query\": \"caf\xc3\"}", b"{\"query\": \"x\"} trailing",
                b"{\"query\": \"a\\u0000b\"}"):
        expect(raw, 400, "invalid_json", None, "body %r" % raw)
    q = REFUND_QUESTION
    cases = [
        ([], None), ("query", None), (5, None), (None, None),
        ({}, "query"), ({"query": ""}, "query"), ({"query": 5}, "query"),
        ({"query": None}, "query"), ({"query": ["a"]}, "query"),
        ({"query": q, "k": 0}, "k"), ({"query": q, "k": 51}, "k"), ({"query": q, "k": -1}, "k"),
        ({"query": q, "k": "5"}, "k"), ({"query": q, "k": 2.5}, "k"),
        ({"query": q, "k": True}, "k"), ({"query": q, "k": None}, "k"),
        ({"query": q, "min_score": "high"}, "min_score"),
        ({"query": q, "min_score": True}, "min_score"),
        ({"query": q, "min_score": 1.5}, "min_score"), ({"query": q, "min_score": -2}, "min_score"),
        ({"query": q, "filters": None}, "filters"),
        ({"query": q, "filters": "business/"}, "filters"),
        ({"query": q, "filters": []}, "filters"),
        ({"query": q, "filters": {"source": 5}}, "source"),
        ({"query": q, "filters": {"tags": "billing"}}, "tags"),
        ({"query": q, "filters": {"tags": [1]}}, "tags"),
        ({"query": q, "filters": {"owner": "x"}}, "owner"),
        ({"query": q, "intent": 5}, "intent"),
        ({"query": q, "topk": 3}, "topk"),
    ]
    for body, field in cases:
        expect(json.dumps(body).encode(), 400, "invalid_request", field,
               "body %s" % short(body, 80))
    check(not problems, "%d of %d error cases wrong:\n%s"
          % (len(problems), len(cases) + 8, "\n".join(problems)))
    ok = retrieve(fx, {"query": q, "k": 50})
    check(len(ok["results"]) >= 1, "k=50 (max_k) rejected or empty")


@shared("corpus")
def retrieve_query_and_body_limits(t, fx):
    d = fx["d"]
    base = "refund money back "
    q8192 = (base * (8192 // len(base) + 1))[:8192]
    eq(len(q8192.encode()), 8192, "test query length")
    ans = retrieve(fx, {"query": q8192, "k": 1})
    eq(len(ans["results"]), 1, "results for an 8192-byte query")
    expect_error(d.call("POST", "/retrieve", {"query": q8192 + "x"}), 400, "invalid_request",
                 "query", what="8193-byte query")
    limit = 1048576
    body = b'{"query": "refund money back", "k": 1}'
    at_limit = body[:-1] + b" " * (limit - len(body)) + b"}"
    eq(len(at_limit), limit, "test body length")
    r = d.call("POST", "/retrieve", raw=at_limit)
    eq(r.status, 200, "status of a body of exactly max_body_bytes (%r)" % r)
    over = at_limit[:-1] + b" }"
    head = ("POST /retrieve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\nConnection: close\r\n\r\n")
    r = http_raw(d.port, (head % len(over)).encode(), over)
    expect_error(r, 413, "payload_too_large", what="body of max_body_bytes + 1")
    big = b'{"query": "' + b"a" * (8 * limit) + b'"}'
    r = http_raw(d.port, (head % len(big)).encode(), big)
    expect_error(r, 413, "payload_too_large", what="8 MiB body")
    check(d.health()["status"] == "ok", "daemon unhealthy after large bodies")


@shared("corpus")
def routing_errors(t, fx):
    d = fx["d"]
    for method, path in (("GET", "/nope"), ("POST", "/nope"), ("GET", "/nope/deeper"),
                         ("GET", "/retrieve/extra"), ("GET", "/healthz")):
        expect_error(d.call(method, path), 404, "not_found", what="%s %s" % (method, path))
    for method, path, allow in (("GET", "/retrieve", "POST"), ("PUT", "/retrieve", "POST"),
                                ("GET", "/ingest", "POST"), ("DELETE", "/ingest", "POST"),
                                ("POST", "/health", "GET"), ("PUT", "/health", "GET")):
        body = {"query": "x"} if method in ("PUT", "POST") else None
        r = d.call(method, path, body)
        expect_error(r, 405, "method_not_allowed", what="%s %s" % (method, path))
        check(allow in r.headers.get("allow", ""), "%s %s: Allow header %r lacks %s"
              % (method, path, r.headers.get("allow"), allow))
    r = d.call("GET", "/health?verbose=1")
    eq(r.status, 200, "GET /health with a query string")
    r = d.call("GET", "/")
    eq(r.status, 200, "GET / (endpoint index)")
    eq(r.json.get("version"), "0.1.0", "GET / version")
    for ep in ("GET /health", "POST /retrieve", "POST /ingest"):
        check(ep in r.json.get("endpoints", []), "GET / does not list %r: %r" % (ep, r))


@shared("corpus")
def http_keep_alive_connection_reused(t, fx):
    conn = http.client.HTTPConnection("127.0.0.1", fx["d"].port, timeout=30)
    try:
        for i in range(5):
            body = json.dumps({"query": REFUND_QUESTION, "k": 1 + i % 3})
            conn.request("POST", "/retrieve", body=body,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            eq(r.status, 200, "request %d on one keep-alive connection" % i)
            eq(len(json.loads(data)["results"]), 1 + i % 3, "results of request %d" % i)
        conn.request("GET", "/health")
        r = conn.getresponse()
        eq(r.status, 200, "GET /health on the same connection")
        r.read()
    finally:
        conn.close()


@shared("corpus")
def ingest_request_errors_leave_store_unchanged(t, fx):
    d = fx["d"]
    before = d.health()["store"]
    missing = t.path("does-not-exist")
    cases = [
        (("raw", b"{\"path\": "), 400, "invalid_json", None),
        (("raw", b"{\"path\": \"\xff\"}"), 400, "invalid_json", None),
        (("json", []), 400, "invalid_request", None),
        (("json", {}), 400, "invalid_request", "path"),
        (("json", {"path": 5}), 400, "invalid_request", "path"),
        (("json", {"path": ""}), 400, "invalid_request", "path"),
        (("json", {"path": fx["corpus"], "reset": "yes"}), 400, "invalid_request", "reset"),
        (("json", {"path": fx["corpus"], "reset": 1}), 400, "invalid_request", "reset"),
        (("json", {"path": fx["corpus"], "recursive": True}), 400, "invalid_request",
         "recursive"),
        (("json", {"path": missing}), 404, "not_found", None),
        (("json", {"path": missing, "reset": True}), 404, "not_found", None),
    ]
    for (kind, body), status, code, field in cases:
        if kind == "raw":
            r = d.call("POST", "/ingest", raw=body)
        else:
            r = d.call("POST", "/ingest", body)
        expect_error(r, status, code, field, what="POST /ingest %s" % short(body, 80))
        after = d.health()["store"]
        eq(after, before, "store after rejected POST /ingest %s" % short(body, 80))
    ans = retrieve(fx, {"query": REFUND_QUESTION, "k": 1})
    eq(ans["results"][0]["source"], "business/refunds.md", "top source after rejected ingests")


@shared("corpus")
def retrieve_plain_files_listed(t, fx):
    """Every corpus file (markdown, front matter or not, and .txt) is retrievable by source."""
    for src in FILES:
        ans = retrieve(fx, {"query": FILES[src][:200], "k": 1, "filters": {"source": src}})
        eq(sources(ans), [src], "source filter %s" % src)
    check(set(PLAIN) <= set(FILES), "fixture sanity")
