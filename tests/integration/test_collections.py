# SPDX-License-Identifier: MIT
"""
test_collections.py - collections over the real API and CLI: a retrieval sees only its collection
(pushed and ingested documents), the same file ingested into two collections is embedded once,
GET /collections counts, DELETE /collections/{name} removes one collection and nothing else,
names are validated (400), and /metrics and the JSONL log carry the collection.
"""
import json
import os

from harness import check, eq, expect_error, test, wait_until, write


def sources(ans):
    return [r["source"] for r in ans["results"]]


@test
def collections_isolate_count_delete(t):
    log = t.path("logs", "rag.log")
    cfg = t.path("ragd.ini")
    write(cfg, "[log]\nfile = %s\n" % log)
    d = t.serve(config=cfg)
    # pushed documents: one id in two collections is two documents
    r = d.call("POST", "/documents", {"collection": "alpha", "documents": [
        {"id": "faq-1", "text": "The zephyr turbine needs oiling every spring.",
         "source": "https://kb/alpha/1"}]})
    eq(r.status, 200, "push into alpha: %r" % r)
    r = d.call("POST", "/documents", {"id": "faq-1", "collection": "beta",
                                      "text": "The quasar lamp is replaced yearly.",
                                      "source": "https://kb/beta/1"})
    eq(r.status, 200, "push into beta: %r" % r)
    a = d.retrieve({"query": "zephyr turbine oiling", "collection": "alpha"})
    eq(sources(a)[:1], ["https://kb/alpha/1"], "alpha finds its own document")
    eq(a["collection"], "alpha", "the answer names its collection")
    b = d.retrieve({"query": "zephyr turbine oiling", "collection": "beta"})
    check("https://kb/alpha/1" not in sources(b), "beta must not see alpha's document: %r" % b)
    dflt = d.retrieve({"query": "zephyr turbine oiling"})
    eq(sources(dflt), [], "the default collection holds nothing yet")
    ctx = d.call("POST", "/context", {"query": "quasar lamp", "collection": "beta"})
    eq(ctx.status, 200, "context in beta")
    check("quasar" in ctx.json["system_prompt"], "beta's context has its text")
    ctx = d.call("POST", "/context", {"query": "quasar lamp", "collection": "alpha"})
    check("quasar" not in ctx.json["system_prompt"], "alpha's context must not have beta's text")
    got = d.call("GET", "/documents/faq-1?collection=beta").json
    eq(got["source"], "https://kb/beta/1", "GET /documents/{id} in beta")
    eq(got["collection"], "beta", "document names its collection")
    eq(d.call("GET", "/documents/faq-1").status, 404, "faq-1 is not in the default collection")
    eq(d.call("GET", "/documents?collection=alpha").json["total"], 1, "alpha lists one")

    # the same file into two collections: embedded once
    docs = t.path("docs")
    os.makedirs(docs)
    write(os.path.join(docs, "guide.md"),
          "# Nimbus guide\n\nThe nimbus valve opens clockwise and closes anticlockwise.\n\n"
          "## Care\n\nRinse the nimbus valve with fresh water after each use.\n")
    r1 = d.call("POST", "/ingest", {"path": docs, "collection": "team-a"}, timeout=300)
    eq(r1.status, 200, "ingest into team-a: %r" % r1)
    check(r1.json["chunks"]["embedded"] > 0, "first ingest embeds: %r" % r1.json)
    eq(r1.json["collection"], "team-a", "report names the collection")
    embeddings = d.health()["store"]["embeddings"]
    r2 = d.call("POST", "/ingest", {"path": docs, "collection": "team-b"}, timeout=300)
    eq(r2.status, 200, "ingest into team-b")
    eq(r2.json["documents"]["added"], 1, "team-b gets its own document")
    eq(r2.json["chunks"]["embedded"], 0, "nothing embedded again for team-b")
    eq(r2.json["chunks"]["added"], r1.json["chunks"]["added"], "same chunks in team-b")
    eq(d.health()["store"]["embeddings"], embeddings, "no new embedding stored")
    for c in ("team-a", "team-b"):
        ans = d.retrieve({"query": "nimbus valve rinse", "collection": c})
        eq(sources(ans)[:1], ["guide.md"], "%s finds the guide" % c)
    check("guide.md" not in sources(d.retrieve({"query": "nimbus valve rinse",
                                                "collection": "alpha"})),
          "alpha must not see the guide")

    # counts
    listing = d.call("GET", "/collections")
    eq(listing.status, 200, "GET /collections")
    by = {c["name"]: c for c in listing.json["collections"]}
    eq(sorted(by), ["alpha", "beta", "team-a", "team-b"], "collections listed")
    eq(by["alpha"]["documents"], 1, "alpha documents")
    eq(by["team-a"]["chunks"], r1.json["chunks"]["added"], "team-a chunks")
    eq(listing.json["count"], 4, "count")
    metrics = d.call("GET", "/metrics").body.decode("utf-8")
    check('ragd_collection_documents{collection="team-b"} 1' in metrics,
          "metrics carry per-collection documents")

    # delete one collection: the others keep everything, embeddings stay
    r = d.call("DELETE", "/collections/team-a")
    eq(r.status, 200, "delete team-a: %r" % r)
    eq(r.json["documents_removed"], 1, "one document removed")
    eq(r.json["chunks_removed"], r1.json["chunks"]["added"], "its chunks removed")
    eq(sources(d.retrieve({"query": "nimbus valve rinse", "collection": "team-a"})), [],
       "team-a is empty")
    eq(sources(d.retrieve({"query": "nimbus valve rinse", "collection": "team-b"}))[:1],
       ["guide.md"], "team-b untouched")
    eq(d.health()["store"]["embeddings"], embeddings, "embeddings kept for re-use")
    eq(sorted(c["name"] for c in d.call("GET", "/collections").json["collections"]),
       ["alpha", "beta", "team-b"], "team-a gone from the listing")
    expect_error(d.call("DELETE", "/collections/team-a"), 404, "not_found", what="delete again")
    r3 = d.call("POST", "/ingest", {"path": docs, "collection": "team-a"}, timeout=300)
    eq(r3.json["chunks"]["embedded"], 0, "re-ingest after delete embeds nothing")

    # names are checked everywhere
    expect_error(d.call("POST", "/retrieve", {"query": "x", "collection": "no spaces"}), 400,
                 "invalid_request", what="bad name in /retrieve")
    expect_error(d.call("POST", "/retrieve", {"query": "x", "collection": 7}), 400,
                 "invalid_request", what="number as name")
    expect_error(d.call("POST", "/ingest", {"path": docs, "collection": ""}), 400,
                 "invalid_request", what="empty name in /ingest")
    expect_error(d.call("POST", "/documents", {"id": "x", "text": "y", "collection": "../etc"}),
                 400, "invalid_request", what="bad name in /documents")
    expect_error(d.call("GET", "/documents?collection=a%20b"), 400, "invalid_request",
                 what="bad name in ?collection=")
    expect_error(d.call("DELETE", "/collections/.hidden"), 400, "invalid_request",
                 what="name starting with a dot")
    expect_error(d.call("DELETE", "/collections/" + "x" * 65), 400, "invalid_request",
                 what="name too long")
    expect_error(d.call("POST", "/collections"), 405, "method_not_allowed", what="POST")
    eq(sorted(c["name"] for c in d.call("GET", "/collections").json["collections"]),
       ["alpha", "beta", "team-a", "team-b"], "bad requests changed nothing")

    # the CLI reads a collection beside the daemon
    q = t.cli("query", "quasar lamp", "--collection", "beta", "--json", "--data-dir", d.data_dir)
    eq(q.rc, 0, "ragd query --collection: %r" % q)
    eq(q.json()["results"][0]["source"], "https://kb/beta/1", "CLI query in beta")
    q = t.cli("query", "quasar lamp", "--collection", "bad name", "--data-dir", d.data_dir)
    eq(q.rc, 2, "bad --collection is a usage error")

    # the JSONL log carries the collection
    def logged():
        if not os.path.exists(log):
            return False
        with open(log) as f:
            events = [json.loads(line) for line in f if line.strip()]
        return any(e.get("event") == "retrieval" and e.get("collection") == "beta"
                   for e in events) and \
            any(e.get("event") == "ingest" and e.get("report", {}).get("collection") == "team-b"
                for e in events)
    wait_until(logged, 30, "retrieval and ingest events naming their collection")
