# SPDX-License-Identifier: MIT
"""
test_documents.py - pushed documents over the real API: upsert (added, unchanged, updated),
paging, one document with its chunks, delete round trips, validation and size limits (413); and
the OpenAI-style filters on /retrieve with every operator, and/or nesting, the built-in source and
tags keys, k results when k pass, and malformed filters answered 400 naming the offending part.
"""
from harness import check, eq, expect_error, fixture, shared, short, write

TOPIC = "warranty claim policy"  # every document mentions it, so every one can be retrieved


def doc(i, lang, year, region, tags):
    return {"id": "kb-%02d" % i, "title": "Article %d" % i,
            "text": "Article %d about the %s for %s customers, edition %d." % (i, TOPIC, region,
                                                                              year),
            "source": "https://kb.example/%s/%d" % (region, i), "tags": tags,
            "metadata": {"lang": lang, "year": year, "region": region, "draft": i % 5 == 0}}


DOCS = [doc(i, "en" if i % 2 else "fr", 2019 + i % 6, ["eu", "us", "apac"][i % 3],
            ["kb"] + (["legal"] if i % 4 == 0 else []))
        for i in range(30)]


@fixture("pushed")
def pushed_fixture(ctx):
    cfg = ctx.path("ragd.ini")
    write(cfg, "[ingest]\nmax_document_bytes = 4k\n[server]\nmax_body_bytes = 64k\n"
               "[retrieve]\nmax_k = 50\n")
    return {"d": ctx.serve(config=cfg)}


def ids(ans):
    return sorted(r["source"].rsplit("/", 1)[1] for r in ans["results"])


def expected(pred):
    return sorted(str(i) for i, d in enumerate(DOCS) if pred(d))


@shared("pushed")
def documents_upsert_round_trip(t, fx):
    d = fx["d"]
    r = d.call("POST", "/documents", DOCS)
    eq(r.status, 200, "POST 30 documents: %r" % r)
    eq(r.json["counts"], {"added": 30, "updated": 0, "unchanged": 0}, "first push")
    embeddings = d.health()["store"]["embeddings"]
    r = d.call("POST", "/documents", {"documents": DOCS})
    eq(r.json["counts"], {"added": 0, "updated": 0, "unchanged": 30}, "same push again")
    eq(d.health()["store"]["embeddings"], embeddings, "nothing embedded for unchanged content")
    changed = dict(DOCS[3], text=DOCS[3]["text"] + " Now also covering sapphire repairs.")
    r = d.call("POST", "/documents", changed)  # a single object works too
    eq(r.status, 200, "update one")
    eq(r.json["documents"], [{"id": "kb-03", "outcome": "updated", "chunks": 1}], "update result")
    ans = d.retrieve({"query": "sapphire repairs", "k": 1})
    eq(ans["results"][0]["source"], DOCS[3]["source"], "updated text is retrievable")
    eq(ans["results"][0]["metadata"]["year"], DOCS[3]["metadata"]["year"], "metadata kept")
    # paging
    page = d.call("GET", "/documents?offset=10&limit=5").json
    eq(page["total"], 30, "total")
    eq([x["id"] for x in page["documents"]], ["kb-%02d" % i for i in range(10, 15)], "page ids")
    eq(page["counts"]["pushed"], 30, "counts.pushed")
    check(all(x["chunks"] == 1 for x in page["documents"]), "chunk counts: %s" % short(page))
    one = d.call("GET", "/documents/kb-03").json
    eq(one["title"], "Article 3", "GET one: title")
    eq(one["tags"], DOCS[3]["tags"], "GET one: tags")
    eq(len(one["chunks"]), 1, "GET one: chunks")
    check("sapphire" in one["chunks"][0]["text"], "GET one: chunk text")
    # delete
    r = d.call("DELETE", "/documents/kb-03")
    eq(r.status, 200, "DELETE")
    eq(r.json, {"id": "kb-03", "deleted": True, "chunks_removed": 1}, "DELETE body")
    expect_error(d.call("DELETE", "/documents/kb-03"), 404, "not_found", what="DELETE again")
    expect_error(d.call("GET", "/documents/kb-03"), 404, "not_found", what="GET deleted")
    ans = d.retrieve({"query": "sapphire repairs", "k": 5})
    check(all("sapphire" not in r["text"] for r in ans["results"]), "deleted text still found")
    eq(d.call("GET", "/documents").json["total"], 29, "total after delete")
    r = d.call("POST", "/documents", DOCS[3])
    eq(r.json["documents"][0]["outcome"], "added", "re-added after delete")
    h = d.health()["store"]
    eq(h["index_vectors"], h["chunks"], "index in step")


@shared("pushed")
def documents_validation_and_limits(t, fx):
    d = fx["d"]
    before = d.health()["store"]
    cases = [
        ({"title": "no id", "text": "x"}, 400, "invalid_request", "id"),
        ({"id": "a", "text": "x", "markdown": "y"}, 400, "invalid_request", "exactly one"),
        ({"id": "a"}, 400, "invalid_request", "exactly one"),
        ({"id": "a", "text": 5}, 400, "invalid_request", "text"),
        ({"id": "a", "text": "x", "tags": "faq"}, 400, "invalid_request", "tags"),
        ({"id": "a", "text": "x", "metadata": [1]}, 400, "invalid_request", "metadata"),
        ({"id": "a", "text": "x", "colour": "red"}, 400, "invalid_request", "colour"),
        ([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], 400, "invalid_request",
         "duplicate"),
        ([{"id": "ok", "text": "fine"}, {"id": "b"}], 400, "invalid_request", "documents[1]"),
        # a bad id later in a batch refuses the whole batch before anything is stored
        ([{"id": "ok", "text": "fine"}, {"id": "bad\u0001", "text": "b"}], 400,
         "invalid_request", "documents[1]"),
        ({"id": "tab\there", "text": "x"}, 400, "invalid_request", "control"),
        ([], 400, "invalid_request", None),
        ({"id": "big", "text": "x" * 5000}, 413, "payload_too_large", "max_document_bytes"),
    ]
    for body, status, code, field in cases:
        expect_error(d.call("POST", "/documents", body), status, code, field, short(body, 80))
    r = d.call("POST", "/documents", raw=b"{\"id\": ")
    expect_error(r, 400, "invalid_json", what="malformed JSON")
    r = d.call("POST", "/documents", {"id": "huge", "text": "y" * 70000})
    expect_error(r, 413, "payload_too_large", what="body over max_body_bytes")
    eq(d.health()["store"], before, "store unchanged by refused pushes")
    expect_error(d.call("PUT", "/documents"), 405, "method_not_allowed", what="PUT")
    # "/documents/" is the collection, as the router says: a push there is a push
    r = d.call("POST", "/documents/", {"id": "slash", "text": "Pushed through a trailing slash."})
    eq(r.status, 200, "POST /documents/: %r" % r)
    eq(d.call("GET", "/documents/").status, 200, "GET /documents/")
    eq(d.call("DELETE", "/documents/slash").status, 200, "DELETE the slash document")


def filt(d, f, k=50, query=TOPIC):
    return d.retrieve({"query": query, "k": k, "filters": f})


@shared("pushed")
def filters_every_operator(t, fx):
    d = fx["d"]
    m = lambda x: x["metadata"]  # noqa: E731
    cases = [
        ({"type": "eq", "key": "lang", "value": "fr"}, lambda x: m(x)["lang"] == "fr"),
        ({"type": "ne", "key": "lang", "value": "fr"}, lambda x: m(x)["lang"] != "fr"),
        ({"type": "gt", "key": "year", "value": 2022}, lambda x: m(x)["year"] > 2022),
        ({"type": "gte", "key": "year", "value": 2022}, lambda x: m(x)["year"] >= 2022),
        ({"type": "lt", "key": "year", "value": 2021}, lambda x: m(x)["year"] < 2021),
        ({"type": "lte", "key": "year", "value": 2021}, lambda x: m(x)["year"] <= 2021),
        ({"type": "in", "key": "region", "value": ["eu", "apac"]},
         lambda x: m(x)["region"] in ("eu", "apac")),
        ({"type": "nin", "key": "region", "value": ["eu", "apac"]},
         lambda x: m(x)["region"] not in ("eu", "apac")),
        ({"type": "eq", "key": "draft", "value": True}, lambda x: m(x)["draft"]),
        ({"type": "eq", "key": "missing_key", "value": "x"}, lambda x: False),
        ({"type": "ne", "key": "missing_key", "value": "x"}, lambda x: True),
        ({"type": "eq", "key": "tags", "value": "legal"}, lambda x: "legal" in x["tags"]),
        ({"type": "nin", "key": "tags", "value": ["legal"]}, lambda x: "legal" not in x["tags"]),
        ({"type": "eq", "key": "source", "value": "https://kb.example/us/"},
         lambda x: "/us/" in x["source"]),
        ({"type": "and", "filters": [{"type": "eq", "key": "lang", "value": "en"},
                                     {"type": "gte", "key": "year", "value": 2023}]},
         lambda x: m(x)["lang"] == "en" and m(x)["year"] >= 2023),
        ({"type": "or", "filters": [{"type": "eq", "key": "region", "value": "apac"},
                                    {"type": "and", "filters": [
                                        {"type": "eq", "key": "lang", "value": "fr"},
                                        {"type": "lt", "key": "year", "value": 2020}]}]},
         lambda x: m(x)["region"] == "apac" or (m(x)["lang"] == "fr" and m(x)["year"] < 2020)),
    ]
    for f, pred in cases:
        want = expected(pred)
        got = ids(filt(d, f))
        eq(got, want, "filter %s" % short(f, 160))
    # filters apply before the top-k cut: k results come back when k match
    f = {"type": "eq", "key": "region", "value": "apac"}
    for k in (1, 3, 10):
        got = ids(filt(d, f, k=k))
        eq(len(got), min(k, len(expected(lambda x: x["metadata"]["region"] == "apac"))),
           "k=%d with a filter" % k)
    # the older filter shape still works beside the new one
    got = ids(d.retrieve({"query": TOPIC, "k": 50, "filters": {"tags": ["legal"]}}))
    eq(got, expected(lambda x: "legal" in x["tags"]), "legacy tags filter")


@shared("pushed")
def filters_malformed_name_the_part(t, fx):
    d = fx["d"]
    cases = [
        ({"type": "equals", "key": "a", "value": 1}, "filters.type"),
        ({"type": "eq", "value": 1}, "filters.key"),
        ({"type": "eq", "key": "a"}, "filters.value"),
        ({"type": "eq", "key": "a", "value": {"x": 1}}, "filters.value"),
        ({"type": "in", "key": "a", "value": "en"}, "filters.value"),
        ({"type": "in", "key": "a", "value": ["en", [1]]}, "filters.value[1]"),
        ({"type": "gt", "key": "a", "value": True}, "filters.value"),
        ({"type": "gt", "key": "tags", "value": "a"}, "filters.type"),
        ({"type": "and", "filters": []}, "filters.filters"),
        ({"type": "or", "filters": [{"type": "eq", "key": "a", "value": 1}, {"type": 7}]},
         "filters.filters[1].type"),
        ({"type": "and", "filters": [{"type": "eq", "key": "a", "value": 1},
                                     {"type": "or", "filters": [{"key": "b"}]}]},
         "filters.filters[1].filters[0].type"),
        ({"type": "eq", "key": "a", "value": 1, "extra": 2}, "filters.extra"),
        ({"type": "and", "filters": [{"type": "eq", "key": "a", "value": 1}, "x"]},
         "filters.filters[1]"),
    ]
    for f, part in cases:
        r = d.call("POST", "/retrieve", {"query": TOPIC, "filters": f})
        expect_error(r, 400, "invalid_request", part, short(f, 120))
    deep = {"type": "eq", "key": "a", "value": 1}
    for _ in range(10):
        deep = {"type": "and", "filters": [deep]}
    expect_error(d.call("POST", "/retrieve", {"query": TOPIC, "filters": deep}), 400,
                 "invalid_request", "nested too deep", "deep nesting")
