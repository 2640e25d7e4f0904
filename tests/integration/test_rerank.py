# SPDX-License-Identifier: MIT
"""
test_rerank.py - the reranking stage against tests/fake_rerank.py (TEI and Cohere protocols) with
known scores: the reranker's order replaces the fused one and its scores sit beside the others;
(query, chunk) scores are cached; "rerank": false skips it; a timeout, an HTTP error, a non-JSON
or incomplete reply keep the fused order and say why, never an error; the bearer key reaches the
upstream and nowhere else; /health and /metrics count calls, failures, tokens and spend; a
[rerank] min_score floor decides low_confidence.
"""
import os

from harness import FakeServer, check, eq, expect_error, short, test, write
from test_embed_remote import Redis  # a real redis-server on loopback (same module run.py loads)

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(os.path.dirname(HERE), "fake_rerank.py")
KEY = "rk-test-SECRET-RERANK-0123456789"

DOCS = {
    "backups.md": "# Backups\n\nNightly backups run at two in the morning and backups are kept "
                  "for thirty days on the storage array.\n",
    "restores.md": "# Restores\n\nTo restore a backup, open a ticket naming the backup date and "
                   "the folder.\n",
    "retention.md": "# Mail retention\n\nArchived mail is kept for seven years, then deleted.\n",
    "lunch.md": "# Canteen\n\nThe canteen serves lunch from noon until two.\n",
}
QUERY = "how long are backups kept"
SCORES = {"seven years": 0.97, "open a ticket": 0.61, "Nightly backups": 0.12}


class FakeRerank(FakeServer):
    """tests/fake_rerank.py on a free port, stopped by the test's cleanup."""

    def __init__(self, ctx, *args):
        super().__init__(ctx, FAKE, *args)

    def stats(self):
        return self.call("GET", "/_stats")


def setup(t, provider="tei", extra=None, fake_args=()):
    fake = FakeRerank(t, *fake_args)
    fake.call("POST", "/_config", {"scores": SCORES})
    docs = t.path("docs")
    for name, text in DOCS.items():
        write(os.path.join(docs, name), text)
    env = {"RAGD_RERANK_PROVIDER": provider, "RAGD_RERANK_BASE_URL": fake.base_url,
           "RAGD_RERANK_CANDIDATES": "10"}
    env.update(extra or {})
    d = t.serve(env=env)
    d.ingest(docs)
    return fake, d


def sources(ans):
    return [r["source"] for r in ans["results"]]


@test
def rerank_tei_reorders_and_caches(t):
    fake, d = setup(t, extra={"RAGD_RERANK_PRICE_PER_MILLION": "2.0"})
    fused = d.retrieve({"query": QUERY, "k": 3, "rerank": False})
    eq(fused["rerank"], {"requested": False, "applied": False}, "rerank off per request")
    check(all(r["rerank_score"] is None for r in fused["results"]), "no rerank scores when off")
    eq(fake.stats()["requests"], 0, "no upstream call with rerank false")
    check(sources(fused)[0] == "backups.md", "fused order puts backups first: %s" % sources(fused))

    ans = d.retrieve({"query": QUERY, "k": 3})
    rr = ans["rerank"]
    eq((rr["requested"], rr["applied"], rr["fallback"]), (True, True, None), "rerank %s" % rr)
    eq(sources(ans), ["retention.md", "restores.md", "backups.md"],
       "reranked order (%s)" % short(ans["results"]))
    eq([r["rerank_score"] for r in ans["results"]], [0.97, 0.61, 0.12], "rerank scores")
    for r in ans["results"]:
        check(isinstance(r["score"], float) and "vector_score" in r and "keyword_score" in r,
              "the fused scores stay beside the rerank score: %s" % short(r))
    eq(ans["rerank"]["best_score"], 0.97, "best_score")
    check("rerank" in ans["timings_ms"], "timings_ms.rerank: %s" % ans["timings_ms"])
    check(ans["context"].startswith("[1] retention.md"), "context follows the new order")
    st = fake.stats()
    eq(st["requests"], 1, "one upstream call")
    body = st["last_body"]
    eq(body["query"], QUERY, "TEI body query")
    eq(body["truncate"], True, "TEI body truncate")
    eq(rr["candidates"], len(body["texts"]), "candidates sent")
    check(3 <= len(body["texts"]) <= 10, "candidates within [rerank] candidates: %d"
          % len(body["texts"]))
    eq(rr["cache_hits"], 0, "cold cache")

    again = d.retrieve({"query": QUERY, "k": 3})
    eq(sources(again), sources(ans), "same order from the cache")
    eq(again["rerank"]["cache_hits"], rr["candidates"], "every pair cached")
    eq(fake.stats()["requests"], 1, "no second upstream call")

    h = d.health()["reranker"]
    eq((h["provider"], h["calls"], h["failures"]), ("tei", 1, 0), "health reranker %s" % h)
    eq(h["cache"]["hits"], rr["candidates"], "health cache hits")
    check(h["tokens"] > 0 and abs(h["estimated_cost_usd"] - h["tokens"] * 2.0 / 1e6) < 1e-9,
          "spend = tokens x price: %s" % h)
    m = d.call("GET", "/metrics").body.decode()
    for line in ("ragd_rerank_requests_total 1", "ragd_rerank_failures_total 0",
                 "ragd_rerank_cache_hits_total %d" % rr["candidates"],
                 "ragd_rerank_tokens_total %d" % h["tokens"]):
        check(line + "\n" in m, "metrics lack %r" % line)
    check("ragd_rerank_duration_seconds_count 1\n" in m, "rerank histogram")
    check("ragd_rerank_cost_usd_total " in m, "rerank spend metric")
    r = d.call("POST", "/retrieve", {"query": QUERY, "rerank": "yes"})
    expect_error(r, 400, "invalid_request", field="rerank")


@test
def rerank_failures_keep_fused_order(t):
    fake, d = setup(t, extra={"RAGD_RERANK_TIMEOUT_MS": "400"})
    fused = sources(d.retrieve({"query": "restore a backup", "k": 3, "rerank": False}))
    cases = [({"kind": "slow", "ms": 3000}, "timeout", "timeout_ms"),
             ({"kind": "error", "status": 500}, "error", "HTTP 500"),
             ({"kind": "bad_json"}, "error", "rerank answer"),
             ({"kind": "short"}, "error", "rerank answer")]
    for step, fallback, words in cases:
        fake.script(step)
        ans = d.retrieve({"query": "restore a backup", "k": 3})
        rr = ans["rerank"]
        eq((rr["applied"], rr["fallback"]), (False, fallback), "%s: %s" % (step, rr))
        check(words in rr["error"], "%s: error %r" % (step, rr["error"]))
        eq(sources(ans), fused, "%s: fused order kept" % step)
        check(all(r["rerank_score"] is None for r in ans["results"]), "no rerank scores")
    h = d.health()["reranker"]
    eq((h["calls"], h["failures"], h["timeouts"]), (4, 4, 1), "health counts %s" % h)
    check(h["last_error"] and "rerank answer" in h["last_error"], "last_error %s" % h)
    m = d.call("GET", "/metrics").body.decode()
    check("ragd_rerank_failures_total 4\n" in m, "failures metric")
    # a good call afterwards: applied, and failures were not cached
    ans = d.retrieve({"query": "restore a backup", "k": 3})
    eq(ans["rerank"]["applied"], True, "applied after the failures")
    eq(ans["rerank"]["cache_hits"], 0, "failed calls cached nothing")


@test
def rerank_cohere_shape_and_key(t):
    fake, d = setup(t, provider="cohere",
                    extra={"RAGD_RERANK_MODEL": "rerank-v3.5", "RAGD_RERANK_API_KEY": KEY},
                    fake_args=("--api-key", KEY))
    ans = d.retrieve({"query": QUERY, "k": 2})
    eq(ans["rerank"]["applied"], True, "cohere applied: %s" % ans["rerank"])
    eq(sources(ans), ["retention.md", "restores.md"], "cohere order")
    st = fake.stats()
    body = st["last_body"]
    eq((body["model"], body["query"], body["top_n"]), ("rerank-v3.5", QUERY,
                                                       len(body["documents"])), "cohere body")
    eq(st["last_headers"].get("authorization"), "Bearer " + KEY, "bearer key sent")
    check(KEY not in d.call("GET", "/health").body.decode(), "key in /health")
    r = t.cli("check-config", env={"RAGD_RERANK_API_KEY": KEY, "RAGD_RERANK_PROVIDER": "cohere",
                                   "RAGD_RERANK_BASE_URL": fake.base_url}, timeout=30)
    check(r.rc == 0 and KEY not in r.out and KEY not in r.err, "key printed: %r" % r)
    fake.call("POST", "/_config", {"api_key": "another"})
    ans = d.retrieve({"query": "mail retention years", "k": 2})
    eq(ans["rerank"]["fallback"], "error", "wrong key: %s" % ans["rerank"])
    check("401" in ans["rerank"]["error"] and KEY not in ans["rerank"]["error"],
          "401 reason without the key: %r" % ans["rerank"]["error"])
    fake.call("POST", "/_config", {"api_key": KEY})
    fake.script({"kind": "error", "status": 502, "echo_auth": True})
    ans = d.retrieve({"query": "restore a backup ticket", "k": 2})
    check("<redacted>" in ans["rerank"]["error"] and KEY not in ans["rerank"]["error"],
          "an echoed key is scrubbed: %r" % ans["rerank"]["error"])
    check(KEY not in d.call("GET", "/health").body.decode(), "key in /health last_error")
    check(KEY not in open(d.stderr_path, encoding="utf-8", errors="replace").read(),
          "key in the daemon's log")


@test
def rerank_floor_decides_confidence(t):
    fake, d = setup(t, extra={"RAGD_RERANK_MIN_SCORE": "0.5"})
    ans = d.retrieve({"query": QUERY, "k": 3})
    eq((ans["rerank"]["best_score"], ans["low_confidence"]), (0.97, False),
       "a strong rerank score is confident")
    fake.call("POST", "/_config", {"scores": {"seven years": 0.2, "open a ticket": 0.1,
                                              "Nightly backups": 0.3}})
    ans = d.retrieve({"query": "how long are backups retained", "k": 3})
    eq(ans["rerank"]["applied"], True, "applied")
    check(ans["rerank"]["best_score"] < 0.5, "weak scores: %s" % ans["rerank"])
    eq(ans["low_confidence"], True, "below the floor is low_confidence (%s)" % ans["rerank"])
    check(ans.get("clarifying_question"), "a clarifying question comes with it")


@test
def rerank_scores_shared_through_redis(t):
    redis = Redis(t)
    fake, d = setup(t, extra={"RAGD_CACHE_REDIS_URL": redis.url})
    ans = d.retrieve({"query": QUERY, "k": 3})
    eq((ans["rerank"]["applied"], ans["rerank"]["cache_hits"]), (True, 0), "cold: %s"
       % ans["rerank"])
    n = ans["rerank"]["candidates"]
    eq(fake.stats()["requests"], 1, "one upstream call")
    # a second process (a restart, a replica) finds the scores in Redis: no upstream call
    eq(d.stop(), 0, "first daemon's exit status")
    d2 = t.serve(data_dir=t.path("data"), env={"RAGD_RERANK_PROVIDER": "tei",
                                               "RAGD_RERANK_BASE_URL": fake.base_url,
                                               "RAGD_RERANK_CANDIDATES": "10",
                                               "RAGD_CACHE_REDIS_URL": redis.url})
    again = d2.retrieve({"query": QUERY, "k": 3})
    eq((again["rerank"]["applied"], again["rerank"]["cache_hits"]), (True, n),
       "warm from Redis: %s" % again["rerank"])
    eq(fake.stats()["requests"], 1, "no second upstream call")
    got = [r["rerank_score"] for r in again["results"]]
    check(len(got) == 3 and all(abs(a - b) < 1e-12 for a, b in zip(got, [0.97, 0.61, 0.12])),
          "scores read back (two floats carry a double to ~1e-15): %s" % got)
