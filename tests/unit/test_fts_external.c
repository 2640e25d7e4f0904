/* SPDX-License-Identifier: MIT */
/*
 * test_fts_external.c - unit tests for the keyword index's two layouts (src/store_db.c fts_sql):
 * a new store's chunks_fts keeps no copy of the text (external content, read through the view
 * ragd_fts_source), a store created before schema 6 keeps its own copy. Both go through the
 * same sequence of writes (batched ingest, the same document twice in one batch, re-ingest of a
 * changed document, title changes, document and collection deletes, rollback, autocommit
 * inserts, reset), and after each step FTS5's 'integrity-check' (rank 1: the index against the
 * content it reads) must pass and keyword search must find exactly what the chunks hold. A
 * last test shows the check fails when a trigger is missing, so passing it means something.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "ragd/store.h"
#include "ragd/store_faiss.h"
#include "ragd/util.h"

#include "test_store_support.h"

static int setup(void **state)
{
    return store_fixture_setup(state, "fts-external");
}

static store_db *open_store(fixture *f)
{
    ragd_err err = {0};
    ragd_rc rc = store_db_open(f->dir, 0, &f->db, &err);
    if (rc != RAGD_OK) fprintf(stderr, "open: %s\n", err.msg);
    assert_int_equal(rc, RAGD_OK);
    assert_int_equal(store_db_model_check(f->db, "test-model", 4, &err), RAGD_OK);
    return f->db;
}

static void reopen(fixture *f)
{
    store_db_close(f->db);
    f->db = NULL;
    open_store(f);
}

static int64_t put_doc_in(store_db *db, const char *collection, const char *path,
                          const char *title)
{
    store_doc doc = {.path = (char *)path, .source = (char *)path, .title = (char *)title,
                     .checksum = "c", .collection = (char *)collection};
    int64_t id = 0;
    ragd_err err = {0};
    assert_int_equal(store_db_doc_put(db, &doc, &id, &err), RAGD_OK);
    assert_true(id > 0);
    return id;
}

static int64_t put_doc(store_db *db, const char *path, const char *title)
{
    return put_doc_in(db, NULL, path, title);
}

static int64_t put_chunk(store_db *db, int64_t doc, int ordinal, const char *heading,
                         const char *text)
{
    char sum[UTIL_SHA256_HEX_LEN + 1];
    util_sha256_hex(text, strlen(text), sum);
    store_chunk_in c = {.ordinal = ordinal, .text = text, .text_len = strlen(text),
                        .heading = heading, .tokens = 3, .checksum = sum};
    int64_t id = 0;
    ragd_err err = {0};
    assert_int_equal(store_db_chunk_put(db, doc, &c, &id, &err), RAGD_OK);
    return id;
}

/* FTS5's integrity-check with rank 1: the postings against the content FTS5 reads (the view for
 * external content, its own copy otherwise). Returns: the SQLite result code. */
static int fts_check_code(const char *dir)
{
    char path[300];
    snprintf(path, sizeof path, "%s/ragd.sqlite3", dir);
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    int code = sqlite3_exec(raw, "INSERT INTO chunks_fts(chunks_fts, rank) "
                                 "VALUES ('integrity-check', 1)", NULL, NULL, NULL);
    sqlite3_close(raw);
    return code;
}

#define FTS_CHECK(f) assert_int_equal(fts_check_code((f)->dir), SQLITE_OK)

/* One store's history, checked after each step. */
static void exercise(fixture *f)
{
    ragd_err err = {0};
    store_db *db = f->db;

    /* a batch of two documents */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t a = put_doc(db, "/d/a.md", "Aardvark guide");
    put_chunk(db, a, 0, "Intro", "burrows dug at night");
    put_chunk(db, a, 1, "Intro > Food", "termites and ants");
    int64_t b = put_doc(db, "/d/b.md", "Badger notes");
    put_chunk(db, b, 0, "Setts", "burrows shared by families");
    put_chunk(db, b, 1, "Diet", "earthworms mostly");
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    FTS_CHECK(f);
    assert_int_equal(fts_hits(db, "\"burrows\""), 2);
    assert_int_equal(fts_hits(db, "\"aardvark\""), 2);

    /* the same document twice in one batch: its first chunks are not indexed yet when the
     * second pass deletes them and renames the document */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t c = put_doc(db, "/d/c.md", "Capybara");
    put_chunk(db, c, 0, "Water", "swims well");
    put_chunk(db, c, 1, "Water", "grazes on grass");
    assert_int_equal(store_db_doc_chunks_delete(db, c, &err), RAGD_OK);
    assert_int_equal(put_doc(db, "/d/c.md", "Capybara revised"), c);
    put_chunk(db, c, 0, "Water", "swims and dives");
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    FTS_CHECK(f);
    assert_int_equal(fts_hits(db, "\"grazes\""), 0);
    assert_int_equal(fts_hits(db, "\"dives\""), 1);
    assert_int_equal(fts_hits(db, "\"revised\""), 1);

    /* a title change with chunks of the document still pending, then without them */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    put_chunk(db, c, 1, "Land", "runs fast");
    assert_int_equal(put_doc(db, "/d/c.md", "Capybara third"), c);
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    FTS_CHECK(f);
    assert_int_equal(fts_hits(db, "\"third\""), 2);
    assert_int_equal(fts_hits(db, "\"revised\""), 0);
    assert_int_equal(put_doc(db, "/d/b.md", "Honey badger notes"), b);
    FTS_CHECK(f);
    assert_int_equal(fts_hits(db, "\"honey\""), 2);
    assert_int_equal(put_doc(db, "/d/b.md", "Honey badger notes"), b); /* same title */
    FTS_CHECK(f);

    /* re-ingest of a changed document: its old chunks go, new ones come, one transaction */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    assert_int_equal(store_db_doc_chunks_delete(db, a, &err), RAGD_OK);
    assert_int_equal(put_doc(db, "/d/a.md", "Aardvark field guide"), a);
    put_chunk(db, a, 0, "Intro", "nocturnal diggers");
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    FTS_CHECK(f);
    assert_int_equal(fts_hits(db, "\"termites\""), 0);
    assert_int_equal(fts_hits(db, "\"field\""), 1);

    /* a rolled-back batch that inserted, deleted and renamed: nothing of it stays */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t gone = put_doc(db, "/d/gone.md", "Dodo");
    put_chunk(db, gone, 0, "Extinct", "flightless");
    assert_int_equal(store_db_doc_chunks_delete(db, b, &err), RAGD_OK);
    assert_int_equal(put_doc(db, "/d/b.md", "Renamed in vain"), b);
    store_db_rollback(db);
    FTS_CHECK(f);
    assert_int_equal(fts_hits(db, "\"flightless\""), 0);
    assert_int_equal(fts_hits(db, "\"earthworms\""), 1);
    assert_int_equal(fts_hits(db, "\"vain\""), 0);

    /* outside a transaction: indexed with the insert, then the document deleted (its chunks
     * with it) */
    int64_t e = put_doc(db, "/d/e.md", "Echidna");
    put_chunk(db, e, 0, "Spines", "lays eggs");
    FTS_CHECK(f);
    assert_int_equal(fts_hits(db, "\"eggs\""), 1);
    assert_int_equal(store_db_doc_delete(db, e, &err), RAGD_OK);
    FTS_CHECK(f);
    assert_int_equal(fts_hits(db, "\"eggs\""), 0);
    assert_int_equal(fts_hits(db, "\"echidna\""), 0);

    /* a document deleted in the batch that inserted its chunks */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t g = put_doc(db, "/d/g.md", "Gecko");
    put_chunk(db, g, 0, "Feet", "climbs glass");
    assert_int_equal(store_db_doc_delete(db, g, &err), RAGD_OK);
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    FTS_CHECK(f);
    assert_int_equal(fts_hits(db, "\"climbs\""), 0);

    /* a collection (with chunks pending in the same batch) */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t t1 = put_doc_in(db, "team", "/d/a.md", "Team aardvark");
    put_chunk(db, t1, 0, "Team", "shared burrows");
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t t2 = put_doc_in(db, "team", "/d/t.md", "Team tapir");
    put_chunk(db, t2, 0, "Team", "tapir burrows");
    int64_t removed = 0;
    assert_int_equal(store_db_collection_delete(db, "team", &removed, &err), RAGD_OK);
    assert_int_equal(removed, 2);
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    FTS_CHECK(f);
    assert_int_equal(fts_hits(db, "\"burrows\""), 1);
    assert_int_equal(fts_hits(db, "\"team\""), 0);

    /* the indexed columns read back by rowid, as snippets and the term statistics do */
    reopen(f);
    db = f->db;
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM chunks c JOIN documents d ON "
                                     "d.id = c.document_id JOIN chunks_fts x ON x.rowid = c.id "
                                     "WHERE x.title = d.title AND x.heading = c.heading AND "
                                     "x.text = c.text"),
                     raw_int(f->dir, "SELECT count(*) FROM chunks"));

    /* reset, with a chunk pending in the same transaction; then the store is used again */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t h = put_doc(db, "/d/h.md", "Hedgehog");
    put_chunk(db, h, 0, "Spines", "rolls up");
    assert_int_equal(store_db_reset(db, &err), RAGD_OK);
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    FTS_CHECK(f);
    assert_int_equal(fts_hits(db, "\"burrows\""), 0);
    assert_int_equal(fts_hits(db, "\"rolls\""), 0);
    int64_t i = put_doc(db, "/d/i.md", "Ibex");
    put_chunk(db, i, 0, "Cliffs", "burrows never");
    FTS_CHECK(f);
    assert_int_equal(fts_hits(db, "\"burrows\""), 1);
}

/* A new store: external content (no chunks_fts_content), schema 6; the history stays
 * consistent. */
static void test_fts_external_new_store(void **state)
{
    fixture *f = *state;
    open_store(f);
    assert_int_equal(raw_int(f->dir, "SELECT value FROM meta WHERE key = 'schema_version'"), 6);
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM sqlite_master WHERE name = "
                                     "'chunks_fts_content'"), 0);
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM sqlite_master WHERE type = 'view' "
                                     "AND name = 'ragd_fts_source'"), 1);
    exercise(f);
    /* the text is stored once: the index's tables hold no column of it */
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM sqlite_master WHERE name LIKE "
                                     "'chunks_fts_%' AND name NOT IN ('chunks_fts_data', "
                                     "'chunks_fts_idx', 'chunks_fts_docsize', "
                                     "'chunks_fts_config', 'chunks_fts_delete', "
                                     "'chunks_fts_title', 'chunks_fts_document_delete')"), 0);
}

/* A store made by a ragd before schema 6 (its index keeps its own copy; the triggers of that
 * time): migrated to schema 6 in place, it keeps its layout and stays consistent through the
 * same history; a read-only open works too. */
static void test_fts_own_copy_store_kept(void **state)
{
    fixture *f = *state;
    open_store(f);
    store_db_close(f->db);
    f->db = NULL;
    raw_exec(f->dir,
             "DROP TRIGGER chunks_fts_delete; DROP TRIGGER chunks_fts_title;"
             "DROP TRIGGER chunks_fts_document_delete; DROP TABLE chunks_fts;"
             "DROP VIEW ragd_fts_source;"
             "CREATE VIRTUAL TABLE chunks_fts USING fts5(title, heading, text, "
             " tokenize = 'porter unicode61 remove_diacritics 2');"
             "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN"
             " DELETE FROM chunks_fts WHERE rowid = old.id; END;"
             "CREATE TRIGGER chunks_fts_title AFTER UPDATE OF title ON documents BEGIN"
             " UPDATE chunks_fts SET title = new.title WHERE rowid IN"
             " (SELECT id FROM chunks WHERE document_id = new.id); END;"
             "UPDATE meta SET value = '5' WHERE key = 'schema_version';");
    open_store(f);
    assert_int_equal(raw_int(f->dir, "SELECT value FROM meta WHERE key = 'schema_version'"), 6);
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM sqlite_master WHERE name = "
                                     "'chunks_fts_content'"), 1);
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM sqlite_master WHERE name IN "
                                     "('ragd_fts_source', 'chunks_fts_document_delete')"), 0);
    exercise(f);
    store_db_close(f->db);
    f->db = NULL;
    store_db *ro = NULL;
    ragd_err err = {0};
    assert_int_equal(store_db_open(f->dir, 1, &ro, &err), RAGD_OK);
    assert_int_equal(fts_hits(ro, "\"burrows\""), 1);
    store_db_close(ro);
}

/* The check is not vacuous: without the document trigger a document delete leaves postings
 * FTS5 cannot account for, without the title trigger a rename leaves the old title's, and
 * integrity-check reports both. */
static void test_fts_external_check_detects(void **state)
{
    fixture *f = *state;
    ragd_err err = {0};
    store_db *db = open_store(f);
    int64_t a = put_doc(db, "/d/a.md", "Aardvark");
    put_chunk(db, a, 0, "Intro", "burrows");
    int64_t b = put_doc(db, "/d/b.md", "Badger");
    put_chunk(db, b, 0, "Intro", "setts");
    FTS_CHECK(f);
    store_db_close(f->db); /* the raw connection's schema change needs it closed */
    f->db = NULL;
    raw_exec(f->dir, "DROP TRIGGER chunks_fts_title");
    db = open_store(f);
    assert_int_equal(put_doc(db, "/d/b.md", "Brock"), b);
    assert_int_not_equal(fts_check_code(f->dir), SQLITE_OK);
    /* a 'rebuild' repairs it; then the document trigger goes */
    store_db_close(f->db);
    f->db = NULL;
    raw_exec(f->dir, "INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')");
    FTS_CHECK(f);
    raw_exec(f->dir, "DROP TRIGGER chunks_fts_document_delete");
    db = open_store(f);
    assert_int_equal(store_db_doc_delete(db, a, &err), RAGD_OK);
    assert_int_not_equal(fts_check_code(f->dir), SQLITE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fts_external_new_store, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_fts_own_copy_store_kept, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_fts_external_check_detects, setup,
                                        store_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
