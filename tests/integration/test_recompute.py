# SPDX-License-Identifier: MIT
"""
test_recompute.py - the offline (local) embedder's vectors are recomputed from the chunks' text,
not stored: an ingest keeps one embeddings row per distinct chunk (counts and dedupe as before)
but no vector bytes; with index.faiss deleted, a restart rebuilds an index whose results equal
the original's, in both index types; identical chunks are still deduplicated; and a store whose
local rows still hold bytes (schema 4, before this change) is migrated, searched from its stored
bytes, and rebuilt from them.
"""
import os
import shutil
import sqlite3
import struct

from corpus import FILES, REFUND_QUESTION, write_corpus
from harness import check, eq, test, write

QUERIES = (REFUND_QUESTION, "how long does shipping take", "reset my password",
           "invoice address change", "office opening hours")


def db_rows(data, sql):
    con = sqlite3.connect(os.path.join(data, "ragd.sqlite3"))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def answers(d, mode="vector"):
    """Each query's top 8: (chunk_id, source, score rounded to 5 places)."""
    out = []
    for q in QUERIES:
        ans = d.retrieve({"query": q, "k": 8, "mode": mode})
        out.append([(r["chunk_id"], r["source"], round(r["score"], 5)) for r in ans["results"]])
    return out


def drop_index(data):
    for name in ("index.faiss", "index.faiss.meta"):
        p = os.path.join(data, name)
        if os.path.exists(p):
            os.remove(p)


@test
def recompute_local_vectors_not_stored_and_rebuilt(t):
    docs, data = t.path("docs"), t.path("data")
    for factory in ("Flat", "HNSW16"):
        shutil.rmtree(docs, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
        write_corpus(docs)
        env = {"RAGD_STORE_INDEX_FACTORY": factory}
        d = t.serve(data, env=env)
        first = d.ingest(docs)["chunks"]
        eq(first["embedded"], first["added"], "first ingest: every chunk embedded")
        # an identical copy of a stored file: its chunks are deduplicated against the stored
        # rows (their vectors recomputed from the stored chunks' text), not embedded again
        write(os.path.join(docs, "copy", "refunds.md"), FILES["business/refunds.md"])
        rep = d.ingest(docs)
        ch = rep["chunks"]
        eq(ch["embedded"] + ch["deduplicated"], ch["added"], "embedded + deduplicated vs added")
        copies = db_rows(data, "SELECT count(*) FROM chunks c JOIN documents d ON "
                               "d.id = c.document_id WHERE d.path LIKE '%copy/refunds.md'")[0][0]
        check(copies > 0 and ch["deduplicated"] >= copies,
              "the copy's %d chunks deduplicated: %r" % (copies, ch))
        s = d.health()["store"]
        eq(ch["embedded"], 0, "the copy: nothing embedded")
        eq(s["embeddings"], first["embedded"], "one embeddings row per embedded chunk")
        rows = db_rows(data, "SELECT count(*), sum(length(vector) = 0), sum(typeof(vector) = "
                             "'blob') FROM embeddings")[0]
        eq(rows, (s["embeddings"], s["embeddings"], s["embeddings"]),
           "embeddings rows: count, without vector bytes, blobs")
        eq(db_rows(data, "SELECT value FROM meta WHERE key = 'schema_version'")[0][0], "6",
           "schema_version")
        before = answers(d)
        hybrid = answers(d, "hybrid")
        check(before[0] and before[0][0][1] in ("business/refunds.md", "copy/refunds.md"),
              "refund question top hit: %r" % before[0])
        d.stop()

        drop_index(data)
        d = t.serve(data, env=env, args=("--log-level", "info"))
        check("rebuilt vector index" in d.stderr_text(), "%s: index rebuilt from SQLite" % factory)
        s = d.health()["store"]
        eq(s["index_vectors"], s["chunks"], "index_vectors vs chunks after the rebuild")
        eq(answers(d), before, "%s: vector results after the rebuild" % factory)
        eq(answers(d, "hybrid"), hybrid, "%s: hybrid results after the rebuild" % factory)
        # an unchanged re-ingest embeds nothing
        rep = d.ingest(docs)
        eq(rep["chunks"]["embedded"], 0, "re-ingest embeds nothing")
        d.stop()


@test
def recompute_store_with_vector_bytes_still_served(t):
    """A store written before this change: local rows with 4-byte floats, schema 4. Its bytes
    are read as they are (here: each row the unit vector u or -u, so the results, the rows the
    query has a positive cosine with, all score the same), not recomputed, in searches and in a
    rebuild; new rows are stored without bytes."""
    docs, data = t.path("docs"), t.path("data")
    write_corpus(docs)
    d = t.serve(data, env={"RAGD_EMBED_DIMS": "64"})
    d.ingest(docs)
    d.stop()
    con = sqlite3.connect(os.path.join(data, "ragd.sqlite3"))
    plus = struct.pack("<64f", *([0.125] * 64))  # a unit vector, u
    minus = struct.pack("<64f", *([-0.125] * 64))  # -u
    con.execute("UPDATE embeddings SET vector = CASE rowid % 2 WHEN 0 THEN ? ELSE ? END",
                (plus, minus))
    con.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    drop_index(data)
    d = t.serve(data, env={"RAGD_EMBED_DIMS": "64"}, args=("--log-level", "info"))
    err = d.stderr_text()
    check("migrating schema 4 -> 5" in err, "schema 4 migrated")
    check("rebuilt vector index" in err, "index rebuilt")
    eq(db_rows(data, "SELECT value FROM meta WHERE key = 'schema_version'")[0][0], "6",
       "schema_version after the migration")
    ans = d.retrieve({"query": REFUND_QUESTION, "k": 5, "mode": "vector"})
    scores = {round(r["score"], 5) for r in ans["results"]}
    eq(len(ans["results"]), 5, "results from the stored vectors: %s" % str(ans)[:600])
    eq(len(scores), 1, "all chunks hold the same stored vector: one score %r" % scores)
    eq(db_rows(data, "SELECT count(*) FROM embeddings WHERE length(vector) = 0")[0][0], 0,
       "old rows keep their bytes")
    write(os.path.join(docs, "new.md"), "# New\n\nA fresh note about tide tables and moorings.\n")
    rep = d.ingest(docs)
    eq(rep["documents"]["added"], 1, "one new document")
    check(db_rows(data, "SELECT count(*) FROM embeddings WHERE length(vector) = 0")[0][0] >= 1,
          "the new rows are stored without bytes")
    d.stop()
