# SPDX-License-Identifier: MIT
"""
test_ingest.py - POST /ingest report semantics on one daemon (shared fixture "ingest_store"),
run in order: first ingest adds, again is unchanged, a modified file is updated, a deleted file
is removed (only under the ingested dir), identical text is deduplicated, invalid files are
reported without stopping the ingest, and reset empties the store first.
"""
import os
import shutil

from corpus import REFUND_QUESTION, write_corpus
from harness import check, eq, fixture, shared, short, write

OTHER = {
    "guide.md": "# Warehouse guide\n\n## Forklift safety\n\nOnly certified staff drive the "
                "forklift; wear the orange helmet in aisle nine.\n",
    "extra/faq2.md": "# Warehouse FAQ\n\n## Pallet returns\n\nEmpty pallets go back to the "
                     "loading dock before the Thursday pickup.\n",
}


@fixture("ingest_store")
def ingest_fixture(ctx):
    docs = ctx.path("docs")
    n = write_corpus(docs)
    for rel, text in OTHER.items():
        write(ctx.path("other", rel), text)
    d = ctx.serve()
    return {"d": d, "docs": docs, "other": ctx.path("other"), "n": n, "state": {}}


def consistent_report(rep):
    docs = rep["documents"]
    eq(docs["added"] + docs["updated"] + docs["unchanged"] + docs["failed"], docs["seen"],
       "documents added+updated+unchanged+failed vs seen (%s)" % short(docs))
    eq(len(rep["errors"]), docs["failed"], "len(errors) vs documents.failed")


def store(d):
    h = d.health()
    eq(h["store"]["consistent"], True, "store.consistent")
    eq(h["store"]["index_vectors"], h["store"]["chunks"], "index_vectors vs chunks")
    return h["store"]


def check_counts(rep, what, **expected):
    for key, val in expected.items():
        group, _, name = key.partition("_")
        group = {"d": "documents", "c": "chunks"}[group]
        eq(rep[group][name], val, "%s: %s.%s" % (what, group, name))


@shared("ingest_store")
def ingest_first_adds_all(t, fx):
    d, n = fx["d"], fx["n"]
    eq(store(d)["documents"], 0, "documents before the first ingest")
    rep = d.ingest(fx["docs"])
    consistent_report(rep)
    check_counts(rep, "first ingest", d_seen=n, d_added=n, d_updated=0, d_unchanged=0,
                 d_removed=0, d_failed=0, c_removed=0)
    check(rep["chunks"]["added"] >= n and rep["chunks"]["embedded"] >= n,
          "chunks: %s" % rep["chunks"])
    s = store(d)
    eq(s["documents"], n, "documents after the first ingest")
    eq(s["chunks"], rep["chunks"]["added"], "chunks after the first ingest")
    fx["state"]["chunks"] = s["chunks"]


@shared("ingest_store")
def ingest_again_unchanged(t, fx):
    d, n = fx["d"], fx["n"]
    before = store(d)
    rep = d.ingest(fx["docs"])
    consistent_report(rep)
    check_counts(rep, "second ingest", d_seen=n, d_added=0, d_updated=0, d_unchanged=n,
                 d_removed=0, d_failed=0, c_added=0, c_removed=0, c_embedded=0)
    eq(store(d), before, "store after an unchanged ingest")


@shared("ingest_store")
def ingest_modified_file_updated(t, fx):
    d, n = fx["d"], fx["n"]
    before = store(d)
    with open(os.path.join(fx["docs"], "business/refunds.md"), "a") as f:
        f.write("\n## Late returns\n\nA zebra-striped umbrella returned late is accepted for "
                "store credit only.\n")
    rep = d.ingest(fx["docs"])
    consistent_report(rep)
    check_counts(rep, "after modifying refunds.md", d_seen=n, d_added=0, d_updated=1,
                 d_unchanged=n - 1, d_removed=0, d_failed=0)
    check(1 <= rep["chunks"]["embedded"] <= 2, "only the new section should be embedded: %s"
          % rep["chunks"])
    s = store(d)
    eq(s["documents"], n, "documents after an update")
    eq(s["chunks"], before["chunks"] + rep["chunks"]["added"] - rep["chunks"]["removed"],
       "chunks after an update vs the report")
    ans = d.retrieve({"query": "zebra-striped umbrella returned late", "k": 1})
    top = ans["results"][0]
    eq((top["source"], top["heading"]), ("business/refunds.md", "Refund policy > Late returns"),
       "the new section")
    ans = d.retrieve({"query": REFUND_QUESTION, "k": 1})
    eq(ans["results"][0]["heading"], "Refund policy > Exceptions", "old section still found")


@shared("ingest_store")
def ingest_deleted_file_removed(t, fx):
    d, n = fx["d"], fx["n"]
    before = store(d)
    os.remove(os.path.join(fx["docs"], "shipping/faq.md"))
    rep = d.ingest(fx["docs"])
    consistent_report(rep)
    check_counts(rep, "after deleting shipping/faq.md", d_seen=n - 1, d_added=0, d_updated=0,
                 d_unchanged=n - 1, d_removed=1, d_failed=0, c_added=0)
    check(rep["chunks"]["removed"] >= 3, "chunks.removed %r" % rep["chunks"]["removed"])
    s = store(d)
    eq(s["documents"], n - 1, "documents after a delete")
    eq(s["chunks"], before["chunks"] - rep["chunks"]["removed"], "chunks after a delete")
    ans = d.retrieve({"query": "international shipping customs duties", "k": 5,
                      "filters": {"source": "shipping/"}})
    eq(ans["results"], [], "results from the deleted file")


@shared("ingest_store")
def ingest_other_dir_keeps_first(t, fx):
    d, n = fx["d"], fx["n"]
    rep = d.ingest(fx["other"])
    consistent_report(rep)
    check_counts(rep, "ingest of a second dir", d_seen=2, d_added=2, d_removed=0)
    eq(store(d)["documents"], n - 1 + 2, "documents after ingesting a second dir")
    rep = d.ingest(fx["docs"])
    check_counts(rep, "re-ingest of the first dir", d_unchanged=n - 1, d_removed=0, d_added=0)
    eq(store(d)["documents"], n - 1 + 2, "documents: re-ingesting the first dir removed the "
       "second dir's documents")
    ans = d.retrieve({"query": "forklift safety orange helmet", "k": 1})
    eq(ans["results"][0]["source"], "guide.md", "second dir's source (relative to its root)")


@shared("ingest_store")
def ingest_duplicate_text_deduplicated(t, fx):
    d, n = fx["d"], fx["n"]
    before = store(d)
    shutil.copy(os.path.join(fx["docs"], "account/passwords.md"),
                os.path.join(fx["docs"], "account/passwords-copy.md"))
    rep = d.ingest(fx["docs"])
    consistent_report(rep)
    check_counts(rep, "ingest of an identical copy", d_added=1, d_unchanged=n - 1, d_removed=0,
                 c_embedded=0)
    check(rep["chunks"]["added"] >= 2, "chunks.added %r" % rep["chunks"]["added"])
    eq(rep["chunks"]["deduplicated"], rep["chunks"]["added"], "chunks.deduplicated")
    s = store(d)
    eq(s["embeddings"], before["embeddings"], "embeddings after adding identical text")
    eq(s["chunks"], before["chunks"] + rep["chunks"]["added"], "chunks after the copy")
    ans = d.retrieve({"query": "forgot password reset link", "k": 4})
    srcs = {r["source"] for r in ans["results"]}
    check({"account/passwords.md", "account/passwords-copy.md"} <= srcs,
          "both copies should be found: %s" % srcs)
    # The copy's chunks were known (deduplicated): their vectors, computed from the copy's own
    # text, are the original's, so both copies score alike in vector mode.
    ans = d.retrieve({"query": "forgot password reset link", "k": 20, "mode": "vector"})
    scores = {}
    for r in ans["results"]:
        scores.setdefault(r["source"], []).append(round(r["score"], 6))
    check(scores.get("account/passwords.md"), "vector mode finds the original: %s" % scores)
    eq(sorted(scores.get("account/passwords-copy.md", [])),
       sorted(scores.get("account/passwords.md", [])), "vector scores of the copy's chunks")


@shared("ingest_store")
def ingest_invalid_files_reported(t, fx):
    d = fx["d"]
    before = store(d)
    write(os.path.join(fx["docs"], "bad.md"), b"# Bad\n\nthis is not UTF-8: \xff\xfe\xc3(\n")
    write(os.path.join(fx["docs"], "binary.md"), b"# Binary\n\nabc\x00def\x00\x01\x02\n")
    write(os.path.join(fx["docs"], "late/new.md"), "# Newcomer\n\n## Parking\n\nVisitors park "
          "behind the greenhouse next to the quince tree.\n")
    for attempt in ("first", "second"):
        rep = d.ingest(fx["docs"])
        consistent_report(rep)
        check_counts(rep, "%s ingest with two bad files" % attempt, d_failed=2,
                     d_added=1 if attempt == "first" else 0, d_removed=0)
        errs = sorted(rep["errors"], key=lambda e: e.get("source", ""))
        eq([e.get("source") for e in errs], ["bad.md", "binary.md"], "errors[].source")
        for e in errs:
            eq(e.get("code"), "invalid", "errors[].code for %s" % e.get("source"))
            check(isinstance(e.get("message"), str) and e["message"].strip(),
                  "errors[].message for %s: %r" % (e.get("source"), e.get("message")))
    eq(store(d)["documents"], before["documents"] + 1, "documents: only the valid file added")
    ans = d.retrieve({"query": "visitors park behind the greenhouse quince tree", "k": 1})
    eq(ans["results"][0]["source"], "late/new.md", "the valid file ingested beside bad ones")
    fx["state"]["valid_docs"] = len([1 for dp, _, fs in os.walk(fx["docs"]) for f in fs]) - 2


@shared("ingest_store")
def ingest_reset_empties_first(t, fx):
    d = fx["d"]
    valid = fx["state"].get("valid_docs")
    check(valid, "previous test did not record the number of valid files")
    rep = d.ingest(fx["docs"], reset=True)
    consistent_report(rep)
    eq(rep["reset"], True, "report reset")
    check_counts(rep, "reset ingest", d_added=valid, d_unchanged=0, d_updated=0, d_failed=2)
    s = store(d)
    eq(s["documents"], valid, "documents after reset (the second dir's must be gone)")
    ans = d.retrieve({"query": "forklift safety orange helmet", "k": 5,
                      "filters": {"source": "guide.md"}})
    eq(ans["results"], [], "second dir's document after reset")
    ans = d.retrieve({"query": REFUND_QUESTION, "k": 1})
    eq(ans["results"][0]["heading"], "Refund policy > Exceptions", "retrieval after reset")
