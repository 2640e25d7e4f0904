# SPDX-License-Identifier: MIT
"""
test_fts.py - the FTS5 keyword index in the store: kept in step with the chunks by every ingest
(changed, removed and reset documents leave no stale keyword hits), and created and back-filled
when a store written before it existed is opened for writing.
"""
import os
import sqlite3

from corpus import write_corpus
from harness import check, eq, test, write


def keyword(d, query, **kw):
    body = {"query": query, "k": 20, "mode": "keyword"}
    body.update(kw)
    return d.retrieve(body)["results"]


@test
def fts_follows_ingest(t):
    corpus = t.path("corpus")
    write_corpus(corpus)
    d = t.serve()
    d.ingest(corpus)
    check(keyword(d, "descaled"), "no keyword hit for a word of notes/office.txt")
    extra = os.path.join(corpus, "extra.md")
    write(extra, "# Zebra crossings\n\nThe quagga protocol governs zebra crossings.\n")
    d.ingest(corpus)
    hits = keyword(d, "quagga")
    eq([r["source"] for r in hits], ["extra.md"], "keyword hits for a new word")
    eq(hits[0]["title"], "Zebra crossings", "title of the new document")
    write(extra, "# Zebra crossings\n\nThe okapi rule replaced it.\n")
    d.ingest(corpus)
    eq(keyword(d, "quagga"), [], "keyword hits for a word the update removed")
    eq([r["source"] for r in keyword(d, "okapi")], ["extra.md"], "keyword hits after update")
    os.remove(extra)
    d.ingest(corpus)
    eq(keyword(d, "okapi"), [], "keyword hits for a removed document")
    d.ingest(corpus, reset=True)
    eq(keyword(d, "okapi"), [], "keyword hits after reset")
    check(keyword(d, "descaled"), "keyword hits after reset and re-ingest")
    # the FTS rows match the chunks one to one
    d.stop()
    db = sqlite3.connect(os.path.join(d.data_dir, "ragd.sqlite3"))
    n_chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    n_fts = db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]
    bad = db.execute("SELECT count(*) FROM chunks c LEFT JOIN chunks_fts f ON f.rowid = c.id "
                     "WHERE f.rowid IS NULL OR f.text <> c.text").fetchone()[0]
    db.close()
    eq((n_fts, bad), (n_chunks, 0), "FTS rows vs chunks")


@test
def fts_backfilled_on_old_store(t):
    corpus = t.path("corpus")
    write_corpus(corpus)
    d = t.serve()
    d.ingest(corpus)
    before = [r["chunk_id"] for r in keyword(d, "refund money back")]
    check(before, "no keyword results before the downgrade")
    d.stop()
    # make it look like a store from before the keyword index
    db = sqlite3.connect(os.path.join(d.data_dir, "ragd.sqlite3"))
    for trig in ("chunks_fts_insert", "chunks_fts_delete", "chunks_fts_title"):
        db.execute("DROP TRIGGER IF EXISTS %s" % trig)  # no insert trigger since schema 4
    db.execute("DROP TABLE chunks_fts")
    db.commit()
    db.close()
    # read-only (ragd eval) cannot create it: keyword mode finds nothing, vector still works
    qa = t.path("qa.jsonl")
    write(qa, '{"question": "refund money back", "expected": ["business/refunds.md"]}\n')
    r = t.cli("eval", "--qa", qa, "--data-dir", d.data_dir, "--mode", "keyword", "--json")
    eq((r.rc, r.json()["recall@10"]), (0, 0.0), "keyword eval on a store without the index")
    r = t.cli("eval", "--qa", qa, "--data-dir", d.data_dir, "--mode", "hybrid", "--json")
    eq((r.rc, r.json()["recall@1"]), (0, 1.0), "hybrid falls back to vectors")
    # a writable open creates and back-fills it
    d2 = t.serve(data_dir=d.data_dir)
    check("keyword index (FTS5) created" in d2.stderr_text(), "no migration log line")
    after = [r["chunk_id"] for r in keyword(d2, "refund money back")]
    eq(after, before, "keyword results after the back-fill")
