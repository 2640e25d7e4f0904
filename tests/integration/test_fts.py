# SPDX-License-Identifier: MIT
"""
test_fts.py - the FTS5 keyword index in the store: kept in step with the chunks by every ingest
(changed, removed and reset documents leave no stale keyword hits), and created and back-filled
when a store written before it existed is opened for writing; its ranking (ragd's own BM25,
src/store_fts_rank.c) gives FTS5 bm25()'s scores as the store changes.
"""
import os
import sqlite3

from corpus import write_corpus, write_generated
from harness import check, eq, faiss_only, test, write


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
    # FTS5's own check of the postings against the content it reads (for the keyword index
    # without its own copy of the text: the chunks and titles, through a view); raises if not
    db.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")
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


def bm25_of(data_dir, match, k):
    """FTS5's own bm25() with ragd's weights, read beside the running daemon: [(id, score)]."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data_dir, "ragd.sqlite3"), uri=True)
    rows = db.execute("SELECT rowid, -bm25(chunks_fts, 2.0, 2.0, 1.0) AS s FROM chunks_fts "
                      "WHERE chunks_fts MATCH ? ORDER BY s DESC, rowid LIMIT ?",
                      (match, k)).fetchall()
    db.close()
    return rows


def scores_equal_bm25(d, query, match, what):
    got = [(r["chunk_id"], r["keyword_score"]) for r in keyword(d, query)]
    want = bm25_of(d.data_dir, match, 20)
    check(want, "%s: bm25() found nothing for %s" % (what, match))
    eq([i for i, _ in got], [i for i, _ in want], "%s: keyword ranking of %r" % (what, query))
    for (i, a), (_, b) in zip(got, want):
        check(abs(a - b) <= 1e-9 * abs(b), "%s: chunk %d scores %r, bm25() %r" % (what, i, a, b))


@faiss_only
@test
def fts_scores_equal_bm25(t):
    """The keyword scores of /retrieve are FTS5 bm25()'s (weights 2, 2, 1) on the same store,
    after a first ingest, after more documents (their lengths read incrementally) and after
    removals."""
    corpus = t.path("corpus")
    write_generated(corpus, 40, seed=3)
    d = t.serve()
    queries = [("basalt", '"basalt"'), ("cedar harbor", '"cedar" OR "harbor"'),
               ("zqx0003kw granite lagoon", '"zqx0003kw" OR "granite" OR "lagoon"')]
    d.ingest(corpus)
    for q, m in queries:
        scores_equal_bm25(d, q, m, "first ingest")
    write_generated(corpus, 25, seed=9, prefix="more")
    d.ingest(corpus)
    for q, m in queries:
        scores_equal_bm25(d, q, m, "after adding documents")
    for i in range(0, 40, 3):
        os.remove(os.path.join(corpus, "gen/d%02d/file%04d.md" % (i % 10, i)))
    d.ingest(corpus)
    for q, m in queries[1:]:
        scores_equal_bm25(d, q, m, "after removals")
