/* SPDX-License-Identifier: MIT */
/*
 * test_store.c - unit tests for the SQLite metadata store (src/store_db.c): round trips of
 * documents, chunks and embeddings, transactions, prefix scoping, generation, model checks,
 * read-only opens, reset, persistence, concurrent readers during writes, and corruption detection.
 * Each test works in its own mkdtemp directory and removes it.
 */
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "ragd/cfg.h"
#include "ragd/store.h"
#include "ragd/util.h"

#include "test_store_support.h"
#include "../../src/store_chunk_tokens_int.h"
#include "../../src/store_fts_tokens_int.h"
#include "../../src/store_terms_int.h"

#define RAGD_TEST_DIMS 4

static int setup(void **state)
{
    return store_fixture_setup(state, "store");
}


/* Opens the fixture's store (writable) and records the test model. */
static store_db *open_store(fixture *f)
{
    ragd_err err = {0};
    assert_int_equal(store_db_open(f->dir, 0, &f->db, &err), RAGD_OK);
    assert_int_equal(store_db_model_check(f->db, "test-model", RAGD_TEST_DIMS, &err), RAGD_OK);
    return f->db;
}

static void checksum_of(const char *text, char out[UTIL_SHA256_HEX_LEN + 1])
{
    util_sha256_hex(text, strlen(text), out);
}

static int64_t put_doc(store_db *db, const char *path, const char *title)
{
    store_doc doc = {
        .path = (char *)path,
        .source = (char *)(strrchr(path, '/') ? strrchr(path, '/') + 1 : path),
        .title = (char *)title,
        .checksum = "abc123",
        .size = 42,
        .mtime = 1700000000,
        .tags_json = "[\"t1\",\"t2\"]",
        .metadata_json = "{\"k\":\"v\"}",
    };
    int64_t id = 0;
    ragd_err err = {0};
    assert_int_equal(store_db_doc_put(db, &doc, &id, &err), RAGD_OK);
    assert_true(id > 0);
    return id;
}

static int64_t put_chunk(store_db *db, int64_t doc_id, int ordinal, const char *text)
{
    char sum[UTIL_SHA256_HEX_LEN + 1];
    checksum_of(text, sum);
    store_chunk_in c = {
        .ordinal = ordinal,
        .text = text,
        .text_len = strlen(text),
        .heading = "Intro > Part",
        .tokens = 7 + ordinal,
        .char_start = ordinal * 100,
        .char_end = ordinal * 100 + 50,
        .checksum = sum,
    };
    int64_t id = 0;
    ragd_err err = {0};
    assert_int_equal(store_db_chunk_put(db, doc_id, &c, &id, &err), RAGD_OK);
    assert_true(id > 0);
    return id;
}

static void put_embedding(store_db *db, const char *text, float base)
{
    char sum[UTIL_SHA256_HEX_LEN + 1];
    checksum_of(text, sum);
    float vec[RAGD_TEST_DIMS] = {base, base + 0.5f, -base, 0.25f};
    ragd_err err = {0};
    assert_int_equal(store_db_embedding_put(db, sum, "test-model", RAGD_TEST_DIMS, vec, &err),
                     RAGD_OK);
}

typedef struct seen_vectors {
    int64_t ids[16];
    float first[16];
    size_t n;
    size_t stop_after; /* 0 = never stop */
} seen_vectors;

static int collect_vector(void *ctx, int64_t chunk_id, const float *vec, int dims)
{
    seen_vectors *seen = ctx;
    assert_int_equal(dims, RAGD_TEST_DIMS);
    if (seen->n < 16) {
        seen->ids[seen->n] = chunk_id;
        seen->first[seen->n] = vec[0];
    }
    seen->n++;
    return seen->stop_after != 0 && seen->n >= seen->stop_after;
}

static void test_round_trip(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    ragd_err err = {0};

    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t doc_id = put_doc(db, "/docs/guide.md", "Guide");
    int64_t c0 = put_chunk(db, doc_id, 0, "first chunk text");
    int64_t c1 = put_chunk(db, doc_id, 1, "second chunk text");
    int64_t c2 = put_chunk(db, doc_id, 2, "third chunk, no embedding");
    put_embedding(db, "first chunk text", 1.0f);
    put_embedding(db, "second chunk text", 2.0f);
    put_embedding(db, "second chunk text", 9.0f); /* INSERT OR IGNORE: first one stays */
    uint64_t gen = 0;
    assert_int_equal(store_db_generation_bump(db, &gen, &err), RAGD_OK);
    assert_int_equal(gen, 1);
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    assert_true(c0 < c1 && c1 < c2);

    /* find */
    store_doc doc = {0};
    int found = -1;
    assert_int_equal(store_db_doc_find(db, "/docs/guide.md", &doc, &found, &err), RAGD_OK);
    assert_int_equal(found, 1);
    assert_int_equal(doc.id, doc_id);
    assert_string_equal(doc.path, "/docs/guide.md");
    assert_string_equal(doc.source, "guide.md");
    assert_string_equal(doc.title, "Guide");
    assert_string_equal(doc.checksum, "abc123");
    assert_int_equal(doc.size, 42);
    assert_int_equal(doc.mtime, 1700000000);
    assert_string_equal(doc.tags_json, "[\"t1\",\"t2\"]");
    assert_string_equal(doc.metadata_json, "{\"k\":\"v\"}");
    store_doc_free(&doc);
    assert_null(doc.path);
    store_doc_free(NULL);
    found = -1;
    assert_int_equal(store_db_doc_find(db, "/docs/none.md", &doc, &found, &err), RAGD_OK);
    assert_int_equal(found, 0);

    /* doc_put on the same path updates in place and keeps the id */
    assert_int_equal(put_doc(db, "/docs/guide.md", "Guide v2"), doc_id);
    assert_int_equal(store_db_doc_find(db, "/docs/guide.md", &doc, &found, &err), RAGD_OK);
    assert_string_equal(doc.title, "Guide v2");
    store_doc_free(&doc);

    /* chunks_get: order follows ids, a missing id gives chunk_id 0 */
    int64_t ids[4] = {c1, 999999, c0, c2};
    store_hit hits[4];
    memset(hits, 0x5a, sizeof hits);
    assert_int_equal(store_db_chunks_get(db, ids, 4, hits, &err), RAGD_OK);
    assert_int_equal(hits[0].chunk_id, c1);
    assert_int_equal(hits[0].document_id, doc_id);
    assert_int_equal(hits[0].ordinal, 1);
    assert_string_equal(hits[0].text, "second chunk text");
    assert_string_equal(hits[0].heading, "Intro > Part");
    assert_int_equal(hits[0].tokens, 8);
    assert_int_equal(hits[0].char_start, 100);
    assert_int_equal(hits[0].char_end, 150);
    assert_string_equal(hits[0].source, "guide.md");
    assert_string_equal(hits[0].title, "Guide v2");
    assert_string_equal(hits[0].path, "/docs/guide.md");
    assert_string_equal(hits[0].tags_json, "[\"t1\",\"t2\"]");
    assert_string_equal(hits[0].metadata_json, "{\"k\":\"v\"}");
    assert_int_equal(hits[1].chunk_id, 0);
    assert_null(hits[1].text);
    assert_int_equal(hits[2].chunk_id, c0);
    assert_string_equal(hits[2].text, "first chunk text");
    assert_int_equal(hits[3].chunk_id, c2);
    for (int i = 0; i < 4; i++) store_hit_free(&hits[i]);
    assert_null(hits[0].text);
    store_hit_free(NULL);

    /* doc_chunk_ids in ordinal order */
    int64_t *chunk_ids = NULL;
    size_t n = 0;
    assert_int_equal(store_db_doc_chunk_ids(db, doc_id, &chunk_ids, &n, &err), RAGD_OK);
    assert_int_equal(n, 3);
    assert_int_equal(chunk_ids[0], c0);
    assert_int_equal(chunk_ids[1], c1);
    assert_int_equal(chunk_ids[2], c2);
    free(chunk_ids);

    /* embedding_get */
    char sum[UTIL_SHA256_HEX_LEN + 1];
    checksum_of("second chunk text", sum);
    float vec[RAGD_TEST_DIMS] = {0};
    found = -1;
    assert_int_equal(
        store_db_embedding_get(db, sum, "test-model", RAGD_TEST_DIMS, vec, &found, &err), RAGD_OK);
    assert_int_equal(found, 1);
    assert_true(vec[0] == 2.0f && vec[1] == 2.5f && vec[2] == -2.0f && vec[3] == 0.25f);
    assert_int_equal(store_db_embedding_get(db, sum, "other-model", RAGD_TEST_DIMS, vec, &found,
                                            &err),
                     RAGD_OK);
    assert_int_equal(found, 0);

    /* vectors_each: chunk id order, the chunk without an embedding is counted as missing */
    seen_vectors seen = {0};
    size_t missing = 99;
    assert_int_equal(store_db_vectors_each(db, "test-model", RAGD_TEST_DIMS, collect_vector,
                                           &seen, &missing, &err),
                     RAGD_OK);
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen.ids[0], c0);
    assert_int_equal(seen.ids[1], c1);
    assert_true(seen.first[0] == 1.0f && seen.first[1] == 2.0f);
    assert_int_equal(missing, 1);

    /* a callback that stops makes the call fail */
    seen_vectors stopper = {.stop_after = 1};
    assert_int_equal(store_db_vectors_each(db, "test-model", RAGD_TEST_DIMS, collect_vector,
                                           &stopper, NULL, &err),
                     RAGD_ERR_INTERNAL);
    assert_int_equal(stopper.n, 1);
    ragd_err_clear(&err);

    int64_t docs = 0, chunks = 0, embeddings = 0;
    assert_int_equal(store_db_stats(db, &docs, &chunks, &embeddings, &err), RAGD_OK);
    assert_int_equal(docs, 1);
    assert_int_equal(chunks, 3);
    assert_int_equal(embeddings, 2);
    uint64_t got = 0;
    assert_int_equal(store_db_generation_get(db, &got, &err), RAGD_OK);
    assert_int_equal(got, 1);
}

static void test_prefix_scoping(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    ragd_err err = {0};
    int64_t in1 = put_doc(db, "/a/b/one.md", "one");
    int64_t in2 = put_doc(db, "/a/b/sub/two.md", "two");
    put_doc(db, "/a/bc/x.md", "x");
    put_doc(db, "/a/b_/y.md", "y"); /* '_' would match any char in LIKE */
    put_doc(db, "/z/a/b/z.md", "z");

    int64_t *ids = NULL;
    char **paths = NULL;
    size_t n = 0;
    assert_int_equal(store_db_doc_list_prefix(db, "/a/b/", &ids, &paths, &n, &err), RAGD_OK);
    assert_int_equal(n, 2);
    assert_string_equal(paths[0], "/a/b/one.md");
    assert_int_equal(ids[0], in1);
    assert_string_equal(paths[1], "/a/b/sub/two.md");
    assert_int_equal(ids[1], in2);
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
    free(ids);

    assert_int_equal(store_db_doc_list_prefix(db, "/a/", &ids, &paths, &n, &err), RAGD_OK);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
    free(ids);

    assert_int_equal(store_db_doc_list_prefix(db, "/nothing/", &ids, &paths, &n, &err), RAGD_OK);
    assert_int_equal(n, 0);
    free(paths);
    free(ids);
}

static void test_generation(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    ragd_err err = {0};
    uint64_t g = 99;
    assert_int_equal(store_db_generation_get(db, &g, &err), RAGD_OK);
    assert_int_equal(g, 0);
    assert_int_equal(store_db_generation_bump(db, &g, &err), RAGD_OK);
    assert_int_equal(g, 1);
    assert_int_equal(store_db_generation_bump(db, &g, &err), RAGD_OK);
    assert_int_equal(g, 2);
    g = 0;
    assert_int_equal(store_db_generation_get(db, &g, &err), RAGD_OK);
    assert_int_equal(g, 2);
    /* a rolled-back bump does not count */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    assert_int_equal(store_db_generation_bump(db, &g, &err), RAGD_OK);
    assert_int_equal(g, 3);
    store_db_rollback(db);
    assert_int_equal(store_db_generation_get(db, &g, &err), RAGD_OK);
    assert_int_equal(g, 2);
}

/* store_db_read_begin: the writer's lookups share one snapshot until store_db_read_end (a row
 * deleted behind the store's back stays visible inside the scope, gone after it); inside a write
 * transaction the scope is the caller's (nothing opened, nothing closed). */
static void test_read_scope(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    ragd_err err = {0};
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    put_embedding(db, "scoped text", 1.0f);
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    char sum[UTIL_SHA256_HEX_LEN + 1];
    checksum_of("scoped text", sum);
    float vec[RAGD_TEST_DIMS] = {0};
    int found = -1, owned = -1;

    assert_int_equal(store_db_read_begin(db, &owned, &err), RAGD_OK);
    assert_int_equal(owned, 1);
    assert_int_equal(
        store_db_embedding_get(db, sum, "test-model", RAGD_TEST_DIMS, vec, &found, &err), RAGD_OK);
    assert_int_equal(found, 1);
    raw_exec(f->dir, "DELETE FROM embeddings WHERE model = 'test-model'");
    assert_int_equal(
        store_db_embedding_get(db, sum, "test-model", RAGD_TEST_DIMS, vec, &found, &err), RAGD_OK);
    assert_int_equal(found, 1); /* the scope's snapshot */
    store_db_read_end(db, owned);
    assert_int_equal(
        store_db_embedding_get(db, sum, "test-model", RAGD_TEST_DIMS, vec, &found, &err), RAGD_OK);
    assert_int_equal(found, 0);

    /* inside a write transaction: not owned, and ending it leaves the transaction open */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    assert_int_equal(store_db_read_begin(db, &owned, &err), RAGD_OK);
    assert_int_equal(owned, 0);
    put_embedding(db, "scoped text", 2.0f);
    store_db_read_end(db, owned);
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    assert_int_equal(
        store_db_embedding_get(db, sum, "test-model", RAGD_TEST_DIMS, vec, &found, &err), RAGD_OK);
    assert_int_equal(found, 1);
    store_db_read_end(db, 0); /* nothing to close: no-op */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK); /* no transaction was left open */
    store_db_rollback(db);
}

/* store_db_reader_hold: the thread's reads until the release share one snapshot (a commit made
 * meanwhile is not seen by them), one hold at a time per thread; after the release each read
 * sees the latest commit again. */
static void test_reader_hold(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    ragd_err err = {0};
    int64_t doc = put_doc(db, "/docs/held.md", "held");
    int64_t c0 = put_chunk(db, doc, 0, "held 0");
    store_hit hit;
    assert_int_equal(store_db_reader_hold(db), 1);
    assert_int_equal(store_db_reader_hold(db), 0); /* one at a time */
    assert_int_equal(store_db_chunks_get(db, &c0, 1, &hit, &err), RAGD_OK);
    assert_int_equal(hit.chunk_id, c0);
    store_hit_free(&hit);
    assert_int_equal(store_db_doc_delete(db, doc, &err), RAGD_OK); /* the writer commits */
    assert_int_equal(store_db_chunks_get(db, &c0, 1, &hit, &err), RAGD_OK);
    assert_int_equal(hit.chunk_id, c0); /* the hold's snapshot */
    store_hit_free(&hit);
    int64_t docs = -1, chunks = -1;
    assert_int_equal(store_db_stats(db, &docs, &chunks, NULL, &err), RAGD_OK);
    assert_int_equal(chunks, 1); /* every read of the thread is in it */
    store_db_reader_release(db);
    store_db_reader_release(db); /* nothing held: no-op */
    assert_int_equal(store_db_chunks_get(db, &c0, 1, &hit, &err), RAGD_OK);
    assert_int_equal(hit.chunk_id, 0);
    assert_int_equal(store_db_reader_hold(db), 1);
    assert_int_equal(store_db_stats(db, &docs, &chunks, NULL, &err), RAGD_OK);
    assert_int_equal(chunks, 0);
    store_db_reader_release(db);
}

static void test_rollback_leaves_nothing(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    ragd_err err = {0};
    store_db_rollback(db); /* no transaction: no-op */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t doc_id = put_doc(db, "/docs/r.md", "R");
    int64_t first = put_chunk(db, doc_id, 0, "rolled back text");
    put_embedding(db, "rolled back text", 3.0f);
    store_db_rollback(db);

    int64_t docs = -1, chunks = -1, embeddings = -1;
    assert_int_equal(store_db_stats(db, &docs, &chunks, &embeddings, &err), RAGD_OK);
    assert_int_equal(docs, 0);
    assert_int_equal(chunks, 0);
    assert_int_equal(embeddings, 0);
    store_doc doc = {0};
    int found = -1;
    assert_int_equal(store_db_doc_find(db, "/docs/r.md", &doc, &found, &err), RAGD_OK);
    assert_int_equal(found, 0);
    /* the store still works after a rollback */
    doc_id = put_doc(db, "/docs/r.md", "R");
    assert_true(put_chunk(db, doc_id, 0, "kept text") > 0);
    (void)first;
}

static void test_doc_delete_cascades(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    ragd_err err = {0};
    int64_t keep = put_doc(db, "/docs/keep.md", "keep");
    int64_t gone = put_doc(db, "/docs/gone.md", "gone");
    put_chunk(db, keep, 0, "keep 0");
    int64_t g0 = put_chunk(db, gone, 0, "gone 0");
    put_chunk(db, gone, 1, "gone 1");

    assert_int_equal(store_db_doc_delete(db, gone, &err), RAGD_OK);
    int64_t docs = 0, chunks = 0;
    assert_int_equal(store_db_stats(db, &docs, &chunks, NULL, &err), RAGD_OK);
    assert_int_equal(docs, 1);
    assert_int_equal(chunks, 1);
    int64_t *ids = NULL;
    size_t n = 9;
    assert_int_equal(store_db_doc_chunk_ids(db, gone, &ids, &n, &err), RAGD_OK);
    assert_int_equal(n, 0);
    free(ids);
    store_hit hit;
    assert_int_equal(store_db_chunks_get(db, &g0, 1, &hit, &err), RAGD_OK);
    assert_int_equal(hit.chunk_id, 0);

    /* chunks_delete keeps the document; new chunk ids are never reused */
    assert_int_equal(store_db_doc_chunks_delete(db, keep, &err), RAGD_OK);
    assert_int_equal(store_db_stats(db, &docs, &chunks, NULL, &err), RAGD_OK);
    assert_int_equal(docs, 1);
    assert_int_equal(chunks, 0);
    assert_true(put_chunk(db, keep, 0, "keep again") > g0 + 1);
}

static void test_model_mismatch(void **state)
{
    fixture *f = *state;
    ragd_err err = {0};
    assert_int_equal(store_db_open(f->dir, 0, &f->db, &err), RAGD_OK);
    /* empty store: any model is recorded, the last one wins */
    assert_int_equal(store_db_model_check(f->db, "first-model", 512, &err), RAGD_OK);
    assert_int_equal(store_db_model_check(f->db, "mini-lm", 384, &err), RAGD_OK);
    int64_t doc_id = put_doc(f->db, "/docs/m.md", "M");
    put_chunk(f->db, doc_id, 0, "some text");
    assert_int_equal(store_db_model_check(f->db, "mini-lm", 384, &err), RAGD_OK);

    assert_int_equal(store_db_model_check(f->db, "big-model", 512, &err),
                     RAGD_ERR_MODEL_MISMATCH);
    assert_int_equal(err.rc, RAGD_ERR_MODEL_MISMATCH);
    assert_non_null(strstr(err.msg, f->dir));
    assert_non_null(strstr(err.msg, "'mini-lm' (384 dims)"));
    assert_non_null(strstr(err.msg, "'big-model' (512 dims)"));
    assert_non_null(strstr(err.msg, "ragd ingest --reset --path"));
    ragd_err_clear(&err);
    /* same model, other dims is a mismatch too */
    assert_int_equal(store_db_model_check(f->db, "mini-lm", 768, &err), RAGD_ERR_MODEL_MISMATCH);
    ragd_err_clear(&err);
    /* the failed checks recorded nothing */
    assert_int_equal(store_db_model_check(f->db, "mini-lm", 384, &err), RAGD_OK);
}

static void test_readonly(void **state)
{
    fixture *f = *state;
    ragd_err err = {0};
    store_db *ro = NULL;
    char missing[300];
    snprintf(missing, sizeof missing, "%s/nope", f->dir);
    assert_int_equal(store_db_open(missing, 1, &ro, &err), RAGD_ERR_NOT_FOUND);
    assert_null(ro);
    assert_non_null(strstr(err.msg, "no store at "));
    assert_non_null(strstr(err.msg, "nope/ragd.sqlite3"));
    assert_non_null(strstr(err.msg, "ragd ingest"));
    ragd_err_clear(&err);
    /* a read-only open creates nothing */
    assert_int_equal(store_db_open(f->dir, 1, &ro, &err), RAGD_ERR_NOT_FOUND);
    ragd_err_clear(&err);
    char db_path[300];
    snprintf(db_path, sizeof db_path, "%s/ragd.sqlite3", f->dir);
    assert_int_equal(access(db_path, F_OK), -1);

    store_db *db = open_store(f);
    int64_t doc_id = put_doc(db, "/docs/ro.md", "RO");
    int64_t chunk_id = put_chunk(db, doc_id, 0, "read only text");

    assert_int_equal(store_db_open(f->dir, 1, &ro, &err), RAGD_OK);
    store_hit hit;
    assert_int_equal(store_db_chunks_get(ro, &chunk_id, 1, &hit, &err), RAGD_OK);
    assert_string_equal(hit.text, "read only text");
    store_hit_free(&hit);
    assert_int_equal(store_db_model_check(ro, "test-model", RAGD_TEST_DIMS, &err), RAGD_OK);
    assert_int_equal(store_db_model_check(ro, "other", 8, &err), RAGD_ERR_MODEL_MISMATCH);
    ragd_err_clear(&err);
    store_doc doc = {.path = "/docs/new.md"};
    int64_t id = 0;
    assert_int_equal(store_db_doc_put(ro, &doc, &id, &err), RAGD_ERR_INVALID);
    ragd_err_clear(&err);
    assert_int_equal(store_db_reset(ro, &err), RAGD_ERR_INVALID);
    ragd_err_clear(&err);
    assert_int_equal(store_db_begin(ro, &err), RAGD_ERR_INVALID);
    store_db_close(ro);
}

static void test_reset(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    ragd_err err = {0};
    int64_t doc_id = put_doc(db, "/docs/a.md", "A");
    int64_t old_chunk = put_chunk(db, doc_id, 0, "reset me");
    put_embedding(db, "reset me", 1.0f);
    uint64_t g = 0;
    assert_int_equal(store_db_generation_bump(db, &g, &err), RAGD_OK);
    assert_int_equal(g, 1);

    assert_int_equal(store_db_reset(db, &err), RAGD_OK);
    int64_t docs = -1, chunks = -1, embeddings = -1;
    assert_int_equal(store_db_stats(db, &docs, &chunks, &embeddings, &err), RAGD_OK);
    assert_int_equal(docs + chunks, 0);
    assert_int_equal(embeddings, 1); /* kept for re-use; pruned when no chunk uses them */
    int64_t pruned = -1;
    assert_int_equal(store_db_embeddings_prune(db, "test-model", RAGD_TEST_DIMS, &pruned, &err),
                     RAGD_OK);
    assert_int_equal(pruned, 1);
    assert_int_equal(store_db_stats(db, &docs, &chunks, &embeddings, &err), RAGD_OK);
    assert_int_equal(embeddings, 0);
    assert_int_equal(store_db_generation_get(db, &g, &err), RAGD_OK);
    assert_int_equal(g, 2);
    /* the model was forgotten: another one is accepted, even once chunks exist again */
    assert_int_equal(store_db_model_check(db, "new-model", 16, &err), RAGD_OK);
    doc_id = put_doc(db, "/docs/a.md", "A");
    assert_true(put_chunk(db, doc_id, 0, "after reset") > old_chunk);
    assert_int_equal(store_db_model_check(db, "test-model", RAGD_TEST_DIMS, &err),
                     RAGD_ERR_MODEL_MISMATCH);
}

static void test_reopen_persists(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    ragd_err err = {0};
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t doc_id = put_doc(db, "/docs/p.md", "P");
    int64_t chunk_id = put_chunk(db, doc_id, 0, "persisted text");
    put_embedding(db, "persisted text", 5.0f);
    assert_int_equal(store_db_generation_bump(db, NULL, &err), RAGD_OK);
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    store_db_close(db);
    f->db = NULL;

    assert_int_equal(store_db_open(f->dir, 0, &f->db, &err), RAGD_OK);
    db = f->db;
    assert_int_equal(store_db_model_check(db, "test-model", RAGD_TEST_DIMS, &err), RAGD_OK);
    assert_int_equal(store_db_model_check(db, "test-model", 8, &err), RAGD_ERR_MODEL_MISMATCH);
    ragd_err_clear(&err);
    uint64_t g = 0;
    assert_int_equal(store_db_generation_get(db, &g, &err), RAGD_OK);
    assert_int_equal(g, 1);
    store_hit hit;
    assert_int_equal(store_db_chunks_get(db, &chunk_id, 1, &hit, &err), RAGD_OK);
    assert_int_equal(hit.chunk_id, chunk_id);
    assert_string_equal(hit.text, "persisted text");
    assert_string_equal(hit.title, "P");
    store_hit_free(&hit);
    seen_vectors seen = {0};
    assert_int_equal(store_db_vectors_each(db, "test-model", RAGD_TEST_DIMS, collect_vector,
                                           &seen, NULL, &err),
                     RAGD_OK);
    assert_int_equal(seen.n, 1);
    assert_true(seen.first[0] == 5.0f);
}

typedef struct reader_ctx {
    store_db *db;
    atomic_int *stop;
    int errors;
    int non_monotonic;
    int bad_hits;
    long rounds;
} reader_ctx;

static void *reader_main(void *arg)
{
    reader_ctx *r = arg;
    int64_t last_chunks = 0, last_docs = 0;
    while (!atomic_load(r->stop) || r->rounds < 5) {
        ragd_err err = {0};
        int64_t docs = 0, chunks = 0;
        if (store_db_stats(r->db, &docs, &chunks, NULL, &err) != RAGD_OK) {
            r->errors++;
            break;
        }
        if (chunks < last_chunks || docs < last_docs) r->non_monotonic++;
        last_chunks = chunks;
        last_docs = docs;
        /* chunk ids start at 1 and are dense here; every id up to the count must be readable */
        int64_t ids[3] = {1, chunks > 0 ? chunks : 1, chunks + 1000};
        store_hit hits[3];
        if (store_db_chunks_get(r->db, ids, 3, hits, &err) != RAGD_OK) {
            r->errors++;
            break;
        }
        if (chunks > 0 && (hits[0].chunk_id != 1 || hits[1].chunk_id != chunks ||
                           hits[1].text == NULL || strncmp(hits[1].text, "chunk ", 6) != 0))
            r->bad_hits++;
        if (hits[2].chunk_id != 0) r->bad_hits++;
        for (int i = 0; i < 3; i++) store_hit_free(&hits[i]);
        r->rounds++;
    }
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    ragd_err err = {0};
    atomic_int stop = 0;
    reader_ctx readers[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        readers[i] = (reader_ctx){.db = db, .stop = &stop};
        assert_int_equal(pthread_create(&threads[i], NULL, reader_main, &readers[i]), 0);
    }
    char text[64];
    for (int d = 0; d < 40; d++) {
        assert_int_equal(store_db_begin(db, &err), RAGD_OK);
        snprintf(text, sizeof text, "/docs/c%02d.md", d);
        int64_t doc_id = put_doc(db, text, "C");
        for (int c = 0; c < 5; c++) {
            snprintf(text, sizeof text, "chunk %d of doc %d", c, d);
            put_chunk(db, doc_id, c, text);
        }
        assert_int_equal(store_db_generation_bump(db, NULL, &err), RAGD_OK);
        assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        assert_int_equal(readers[i].errors, 0);
        assert_int_equal(readers[i].non_monotonic, 0);
        assert_int_equal(readers[i].bad_hits, 0);
        assert_true(readers[i].rounds >= 5);
    }
    int64_t chunks = 0;
    assert_int_equal(store_db_stats(db, NULL, &chunks, NULL, &err), RAGD_OK);
    assert_int_equal(chunks, 200);
}

static void test_corrupt_embedding(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    ragd_err err = {0};
    int64_t doc_id = put_doc(db, "/docs/bad.md", "bad");
    put_chunk(db, doc_id, 0, "bad vector");
    put_embedding(db, "bad vector", 1.0f);

    /* damage the blob behind the store's back */
    char path[300];
    snprintf(path, sizeof path, "%s/ragd.sqlite3", f->dir);
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    sqlite3_stmt *mode = NULL; /* the store switched the file to WAL for good */
    assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &mode, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(mode), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(mode, 0), "wal");
    sqlite3_finalize(mode);
    assert_int_equal(sqlite3_exec(raw, "UPDATE embeddings SET vector = x'01020304050607'", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);

    char sum[UTIL_SHA256_HEX_LEN + 1];
    checksum_of("bad vector", sum);
    float vec[RAGD_TEST_DIMS];
    int found = -1;
    assert_int_equal(
        store_db_embedding_get(db, sum, "test-model", RAGD_TEST_DIMS, vec, &found, &err),
        RAGD_ERR_STORE);
    assert_int_equal(found, -1);
    assert_non_null(strstr(err.msg, "corrupt embedding"));
    ragd_err_clear(&err);
    seen_vectors seen = {0};
    assert_int_equal(store_db_vectors_each(db, "test-model", RAGD_TEST_DIMS, collect_vector,
                                           &seen, NULL, &err),
                     RAGD_ERR_STORE);
    assert_non_null(strstr(err.msg, "corrupt embedding"));
    assert_int_equal(seen.n, 0);
}

static void test_newer_schema_refused(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    store_db_close(db);
    f->db = NULL;
    char path[300];
    snprintf(path, sizeof path, "%s/ragd.sqlite3", f->dir);
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "UPDATE meta SET value = '7' WHERE key = 'schema_version'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(raw);

    ragd_err err = {0};
    store_db *again = NULL;
    assert_int_equal(store_db_open(f->dir, 0, &again, &err), RAGD_ERR_STORE);
    assert_null(again);
    assert_non_null(strstr(err.msg, "schema version 7"));
    ragd_err_clear(&err);
    assert_int_equal(store_db_open(f->dir, 1, &again, &err), RAGD_ERR_STORE);
    assert_null(again);
}

/* A store written by ragd with schema 1 (no chunk page numbers) is migrated on a read-write open:
 * its chunks keep their rows with page 0, new chunks carry pages, read-only opens of a version-1
 * store refuse with a message saying how to migrate. */
static void test_schema_1_migrated(void **state)
{
    fixture *f = *state;
    char path[300];
    snprintf(path, sizeof path, "%s/ragd.sqlite3", f->dir);
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    static const char v1[] =
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE documents (id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL UNIQUE,"
        " source TEXT NOT NULL, title TEXT NOT NULL, checksum TEXT NOT NULL, size INTEGER NOT NULL,"
        " mtime INTEGER NOT NULL, tags TEXT NOT NULL DEFAULT '[]', metadata TEXT NOT NULL DEFAULT"
        " '{}', ingested_at INTEGER NOT NULL);"
        "CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, document_id INTEGER NOT NULL"
        " REFERENCES documents(id) ON DELETE CASCADE, ordinal INTEGER NOT NULL, text TEXT NOT NULL,"
        " heading TEXT NOT NULL, tokens INTEGER NOT NULL, char_start INTEGER NOT NULL,"
        " char_end INTEGER NOT NULL, checksum TEXT NOT NULL, UNIQUE (document_id, ordinal));"
        "CREATE TABLE embeddings (checksum TEXT NOT NULL, model TEXT NOT NULL, dims INTEGER NOT"
        " NULL, vector BLOB NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (checksum, model,"
        " dims)) WITHOUT ROWID;"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        "INSERT INTO documents VALUES (1, '/d/a.md', 'a.md', 'A', 'c', 1, 1, '[]', '{}', 1);"
        "INSERT INTO chunks VALUES (1, 1, 0, 'old text', '', 2, 0, 8, 'k');";
    assert_int_equal(sqlite3_exec(raw, v1, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);

    ragd_err err = {0};
    store_db *ro = NULL;
    assert_int_equal(store_db_open(f->dir, 1, &ro, &err), RAGD_ERR_STORE);
    assert_non_null(strstr(err.msg, "migrates"));
    ragd_err_clear(&err);
    assert_int_equal(store_db_open(f->dir, 0, &f->db, &err), RAGD_OK);
    int64_t id = 1;
    store_hit h = {0};
    assert_int_equal(store_db_chunks_get(f->db, &id, 1, &h, &err), RAGD_OK);
    assert_string_equal(h.text, "old text");
    assert_int_equal(h.page, 0);
    store_hit_free(&h);
    store_chunk_in in = {.ordinal = 1, .text = "page three", .text_len = 10, .heading = "",
                         .tokens = 2, .char_start = 9, .char_end = 19, .checksum = "k2",
                         .page = 3};
    int64_t nid = 0;
    assert_int_equal(store_db_chunk_put(f->db, 1, &in, &nid, &err), RAGD_OK);
    assert_int_equal(store_db_chunks_get(f->db, &nid, 1, &h, &err), RAGD_OK);
    assert_int_equal(h.page, 3);
    store_hit_free(&h);
    store_db_close(f->db);
    f->db = NULL;
    /* migrated once: opens again, read-only too */
    assert_int_equal(store_db_open(f->dir, 1, &ro, &err), RAGD_OK);
    store_db_close(ro);
}

static void test_not_a_database(void **state)
{
    fixture *f = *state;
    char path[300];
    snprintf(path, sizeof path, "%s/ragd.sqlite3", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 200; i++) fputs("this is not a sqlite database\n", fp);
    assert_int_equal(fclose(fp), 0);
    ragd_err err = {0};
    store_db *db = NULL;
    assert_int_equal(store_db_open(f->dir, 0, &db, &err), RAGD_ERR_STORE);
    assert_null(db);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "not a database"));
}

/* Asserts store_db_stats reports these counts. */
static void stats_expect(store_db *db, int64_t docs, int64_t chunks, int64_t embeddings)
{
    int64_t d = -1, c = -1, e = -1;
    ragd_err err = {0};
    assert_int_equal(store_db_stats(db, &d, &c, &e, &err), RAGD_OK);
    assert_int_equal(d, docs);
    assert_int_equal(c, chunks);
    assert_int_equal(e, embeddings);
}

/* The counts /health shows are maintained, not counted: they follow inserts, cascading deletes,
 * a reset and a prune; a store written without them (an older ragd) is back-filled at the next
 * writable open; and stats read the maintained rows (a forged row shows through). */
static void test_counts_maintained(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    ragd_err err = {0};
    stats_expect(db, 0, 0, 0);
    int64_t a = put_doc(db, "/docs/a.md", "A");
    put_chunk(db, a, 0, "alpha one");
    put_chunk(db, a, 1, "alpha two");
    int64_t b = put_doc(db, "/docs/b.md", "B");
    put_chunk(db, b, 0, "beta one");
    put_embedding(db, "alpha one", 0.1f);
    put_embedding(db, "alpha one", 0.1f); /* INSERT OR IGNORE: no second row */
    put_embedding(db, "beta one", 0.2f);
    stats_expect(db, 2, 3, 2);
    assert_int_equal(store_db_doc_delete(db, a, &err), RAGD_OK); /* cascades to its chunks */
    stats_expect(db, 1, 1, 2);
    int64_t removed = 0;
    assert_int_equal(store_db_embeddings_prune(db, "test-model", RAGD_TEST_DIMS, &removed, &err),
                     RAGD_OK);
    stats_expect(db, 1, 1, 2 - removed);
    assert_int_equal(store_db_reset(db, &err), RAGD_OK);
    stats_expect(db, 0, 0, 2 - removed);
    put_chunk(db, put_doc(db, "/docs/c.md", "C"), 0, "gamma");
    store_db_close(db);
    f->db = NULL;

    /* An older store: no counts table; the next writable open counts once. */
    raw_exec(f->dir, "DROP TRIGGER ragd_counts_doc_insert;"
                     "DROP TRIGGER ragd_counts_doc_delete;"
                     "DROP TRIGGER ragd_counts_chunk_insert;"
                     "DROP TRIGGER ragd_counts_chunk_delete;"
                     "DROP TRIGGER ragd_counts_embedding_insert;"
                     "DROP TRIGGER ragd_counts_embedding_delete;"
                     "DROP TABLE ragd_counts;"
                     "INSERT INTO documents (id, path, source, title, checksum, size,"
                     " mtime, tags, metadata, ingested_at) VALUES (99, '/d/z.md',"
                     " 'z.md', 'Z', 'c', 1, 1, '[]', '{}', 1);");
    store_db *ro = NULL;
    assert_int_equal(store_db_open(f->dir, 1, &ro, &err), RAGD_OK);
    stats_expect(ro, 2, 1, 2 - removed); /* read-only, no table: counted */
    store_db_close(ro);
    db = open_store(f);
    stats_expect(db, 2, 1, 2 - removed);
    put_chunk(db, 99, 0, "zeta");
    stats_expect(db, 2, 2, 2 - removed);
    store_db_close(db);
    f->db = NULL;
    raw_exec(f->dir, "UPDATE ragd_counts SET n = 12345 WHERE name = 'chunks'");
    db = open_store(f);
    stats_expect(db, 2, 12345, 2 - removed);
}

/* ---- bounded keyword search ------------------------------------------------------------- */

#define FTS_CHUNKS 300

/* Fills the store with FTS_CHUNKS one-line chunks: every one says "common", every 3rd "other",
 * every 5th "zeta", every 60th "rare". ids[i] is chunk i's id. */
static void fts_fill(store_db *db, int64_t *ids)
{
    ragd_err err = {0};
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t doc = put_doc(db, "/docs/words.md", "Words");
    for (int i = 0; i < FTS_CHUNKS; i++) {
        char text[128];
        snprintf(text, sizeof text, "common filler n%d%s%s%s", i, i % 3 == 0 ? " other" : "",
                 i % 5 == 0 ? " zeta" : "", i % 60 == 0 ? " rare" : "");
        ids[i] = put_chunk(db, doc, i, text);
    }
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
}

/* Returns: the chunk index of id, or -1. */
static int fts_index_of(const int64_t *ids, int64_t id)
{
    for (int i = 0; i < FTS_CHUNKS; i++)
        if (ids[i] == id) return i;
    return -1;
}

/* The budget bounds BM25's work: a common word that would make every chunk a match is left out
 * when rarer terms fit; under the budget the answer is the unbounded one, score for score. */
/* SQLite's memory statistics are off (set before the first connection): with them on, every
 * sqlite3_malloc/free takes one process-wide mutex that concurrent keyword searches queue on.
 * With them on, an open connection's memory shows in sqlite3_memory_used(). */
static void test_sqlite_memory_statistics_off(void **state)
{
    store_db *db = open_store(*state);
    ragd_err err = {0};
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    put_chunk(db, put_doc(db, "/docs/mem.md", "Mem"), 0, "memory statistics stay off");
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    int64_t chunks = 0;
    assert_int_equal(store_db_stats(db, NULL, &chunks, NULL, &err), RAGD_OK);
    assert_int_equal(chunks, 1);
    assert_int_equal(sqlite3_memory_used(), 0);
    assert_int_equal(sqlite3_memory_highwater(0), 0);
}

static void test_fts_bounded_rare_terms(void **state)
{
    store_db *db = open_store(*state);
    int64_t ids[FTS_CHUNKS], got[40];
    double scores[40];
    fts_fill(db, ids);
    ragd_err err = {0};
    size_t found = 0;
    const char *q = "\"rare\" OR \"common\"";
    assert_int_equal(store_db_fts_search_bounded(db, q, 10, 0, got, scores, &found, &err),
                     RAGD_OK);
    assert_int_equal(found, 10); /* unbounded: the 5 rare chunks, then common ones */
    /* Scores are BM25 negated (higher is better), best first. */
    for (size_t i = 0; i < found; i++) {
        assert_true(scores[i] > 0.0);
        if (i > 0) assert_true(scores[i] <= scores[i - 1]);
    }
    assert_true(scores[0] > scores[found - 1]); /* rare chunks outscore common ones */
    assert_int_equal(store_db_fts_search_bounded(db, q, 10, 50, got, scores, &found, &err),
                     RAGD_OK);
    assert_int_equal(found, 5); /* bounded: "common" (300 chunks) does not fit 50 */
    for (size_t i = 0; i < found; i++) assert_int_equal(fts_index_of(ids, got[i]) % 60, 0);
    /* A term with lexical variants is one parenthesised unit of the plan (retrieve_lexical.c). */
    const char *grouped = "(\"rare\" OR \"ra re\") OR (\"common\" OR \"com mon\")";
    assert_int_equal(store_db_fts_search_bounded(db, grouped, 10, 50, got, scores, &found, &err),
                     RAGD_OK);
    assert_int_equal(found, 5);
    for (size_t i = 0; i < found; i++) assert_int_equal(fts_index_of(ids, got[i]) % 60, 0);
    /* A budget the whole query fits: exactly the unbounded result. */
    int64_t ref[40];
    double ref_scores[40];
    size_t ref_found = 0;
    assert_int_equal(store_db_fts_search(db, "\"zeta\" OR \"rare\"", 40, ref, ref_scores,
                                         &ref_found, &err), RAGD_OK);
    assert_int_equal(store_db_fts_search_bounded(db, "\"zeta\" OR \"rare\"", 40, 1000, got,
                                                 scores, &found, &err), RAGD_OK);
    assert_int_equal(found, ref_found);
    for (size_t i = 0; i < found; i++) {
        assert_int_equal(got[i], ref[i]);
        assert_true(scores[i] == ref_scores[i]);
    }
}

/* Every term common: the chunks holding all of them rank when they fit the budget, else the
 * newest budget of them. Another shape of MATCH expression is searched as it is. */
static void test_fts_bounded_common_terms(void **state)
{
    store_db *db = open_store(*state);
    int64_t ids[FTS_CHUNKS], got[40];
    double scores[40];
    fts_fill(db, ids);
    ragd_err err = {0};
    size_t found = 0;
    /* zeta 60, other 100: neither fits 55; both: every 15th chunk, 20 of them. */
    assert_int_equal(store_db_fts_search_bounded(db, "\"zeta\" OR \"other\"", 40, 55, got,
                                                 scores, &found, &err), RAGD_OK);
    assert_int_equal(found, 20);
    for (size_t i = 0; i < found; i++) assert_int_equal(fts_index_of(ids, got[i]) % 15, 0);
    /* common and other: 100 chunks hold both; budget 30: the newest 30 of them. */
    assert_int_equal(store_db_fts_search_bounded(db, "\"common\" OR \"other\"", 20, 30, got,
                                                 scores, &found, &err), RAGD_OK);
    assert_int_equal(found, 20);
    for (size_t i = 0; i < found; i++) {
        int at = fts_index_of(ids, got[i]);
        assert_int_equal(at % 3, 0);
        assert_true(at >= FTS_CHUNKS - 90);
    }
    /* A budget under the limit is raised to it. */
    assert_int_equal(store_db_fts_search_bounded(db, "\"common\"", 12, 3, got, scores, &found,
                                                 &err), RAGD_OK);
    assert_int_equal(found, 12);
    /* Not an OR of phrases: searched unchanged. */
    assert_int_equal(store_db_fts_search_bounded(db, "\"zeta\" AND \"rare\"", 40, 1, got, scores,
                                                 &found, &err), RAGD_OK);
    assert_int_equal(found, 5);
}

/* Term statistics count a frequency exactly up to 4000 chunks and extrapolate past it, without
 * walking a common word's doclist to its end. */
static void test_fts_terms_common_estimate(void **state)
{
    store_db *db = open_store(*state);
    enum { N = 6000 };
    ragd_err err = {0};
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t doc = put_doc(db, "/docs/big.md", "Big");
    int64_t first = 0;
    for (int i = 0; i < N; i++) {
        char text[64];
        snprintf(text, sizeof text, "alpha w%d%s", i, i % 2 ? " beta" : "");
        int64_t id = put_chunk(db, doc, i, text);
        if (i == 0) first = id;
    }
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    const char *phrases[] = {"\"alpha\"", "\"beta\"", "\"gamma\""};
    int64_t df[3], total = 0, top[1] = {first};
    uint32_t mask[3];
    assert_int_equal(store_db_fts_terms(db, phrases, 3, top, 1, df, mask, &total, &err), RAGD_OK);
    assert_int_equal(total, N);
    assert_int_equal(df[0], N);     /* estimated: ids are dense, so exact here */
    assert_int_equal(df[1], N / 2); /* under 4000: counted */
    assert_int_equal(df[2], 0);
    assert_int_equal(mask[0], 1u);
    assert_int_equal(mask[1], 0u);
}

/* The term statistics cache: entries belong to one generation; a newer reader empties it, an
 * older one neither reads nor fills it; a count stopped at its cap answers smaller caps only,
 * an exact one (below its cap) any cap. */
static void test_terms_cache(void **state)
{
    (void)state;
    store_terms *c = store_terms_new(4);
    assert_non_null(c);
    store_term_stat st = {0}, exact = {.count = 10, .edge = 99, .cap = 4000},
                    capped = {.count = 4000, .edge = 500, .cap = 4000};
    assert_int_equal(store_terms_get(c, 1, "\"a\"", 3, 4000, &st), 0);
    store_terms_put(c, 1, "\"a\"", 3, &exact);
    store_terms_put(c, 1, "\"b\"", 3, &capped);
    assert_int_equal(store_terms_get(c, 1, "\"a\"", 3, 9000, &st), 1); /* exact: any cap */
    assert_int_equal(st.count, 10);
    assert_int_equal(st.edge, 99);
    assert_int_equal(store_terms_get(c, 1, "\"b\"", 3, 4000, &st), 1);
    assert_int_equal(store_terms_get(c, 1, "\"b\"", 3, 4001, &st), 0); /* counted too little */
    assert_int_equal(store_terms_get(c, 0, "\"a\"", 3, 10, &st), 0);   /* an older snapshot */
    store_terms_put(c, 0, "\"c\"", 3, &exact);                         /* ignored */
    assert_int_equal(store_terms_get(c, 1, "\"c\"", 3, 10, &st), 0);
    assert_int_equal(store_terms_get(c, 2, "\"a\"", 3, 10, &st), 0);   /* a write: emptied */
    assert_int_equal(store_terms_get(c, 1, "\"a\"", 3, 10, &st), 0);   /* and 1 is now old */
    /* bounded: more phrases than it holds empties it and keeps going */
    for (int i = 0; i < 100; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "\"w%d\"", i);
        store_terms_put(c, 2, key, (size_t)n, &exact);
        assert_int_equal(store_terms_get(c, 2, key, (size_t)n, 10, &st), 1);
    }
    uint64_t hits = 0, misses = 0;
    size_t entries = 0;
    store_terms_counters(c, &hits, &misses, &entries);
    assert_true(entries > 0 && entries <= 16);
    assert_true(hits >= 100);
    store_terms_free(c);
    store_terms_free(NULL);
}

/* The in-memory term check answers exactly what FTS5 MATCH answers, on a table tokenized like
 * chunks_fts: stems, diacritics, case, phrases of several tokens (consecutive, in one column),
 * groups of variants, quotes inside a phrase, every column. */
static void test_fts_tokens_match_fts5(void **state)
{
    (void)state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE VIRTUAL TABLE t USING fts5(title, heading, text, "
                                      "tokenize = 'porter unicode61 remove_diacritics 2')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    const char *rows[][3] = {
        {"Backups", "Operations > Nightly", "We back up the files every night at 2am."},
        {"Caf\xc3\xa9 menu", "", "The running total of \"quoted\" items; e-mail us."},
        {"", "Back", "up is not consecutive with back here: back then up."},
        {"Index", "Rebuilding", "Rebuild the vector index after a crash; rebuilt indexes."},
    };
    enum { ROWS = sizeof rows / sizeof rows[0] };
    for (int i = 0; i < ROWS; i++) {
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t(rowid, title, heading, text) "
                                                "VALUES (?1, ?2, ?3, ?4)", -1, &st, NULL),
                         SQLITE_OK);
        sqlite3_bind_int(st, 1, i + 1);
        for (int c = 0; c < 3; c++) sqlite3_bind_text(st, c + 2, rows[i][c], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
    }
    const char *phrases[] = {
        "\"file\"", "\"backup\"", "\"back up\"", "(\"backup\" OR \"back up\")",
        "\"cafe\"", "\"CAF\xc3\x89\"", "\"run\"", "\"e mail\"", "\"email\"",
        "\"\"\"quoted\"\"\"", "\"nightly\"", "\"operations nightly\"", "\"rebuild\"",
        "\"indexes\"", "\"vector index\"", "\"index vector\"", "\"crash\"", "\"absent\"",
        "\"2am\"", "\"back then\"",
    };
    enum { N = sizeof phrases / sizeof phrases[0] };
    store_fts_tokenizer *tok = store_fts_tokenizer_new(db);
    assert_non_null(tok);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM t WHERE t MATCH ?1 AND "
                                            "rowid = ?2", -1, &q, NULL),
                     SQLITE_OK);
    int matched = 0;
    for (int i = 0; i < ROWS; i++) {
        int in[N];
        assert_int_equal(store_fts_phrases_in(tok, phrases, N, rows[i], 3, in), 0);
        for (int p = 0; p < N; p++) {
            sqlite3_bind_text(q, 1, phrases[p], -1, SQLITE_STATIC);
            sqlite3_bind_int(q, 2, i + 1);
            assert_int_equal(sqlite3_step(q), SQLITE_ROW);
            int want = sqlite3_column_int(q, 0);
            sqlite3_reset(q);
            if (in[p] != want) fail_msg("row %d phrase %s: in memory %d, FTS5 %d", i + 1,
                                        phrases[p], in[p], want);
            matched += want;
        }
    }
    assert_true(matched >= 15); /* the cases are not all misses */
    sqlite3_finalize(q);
    store_fts_tokenizer_free(tok);
    store_fts_tokenizer_free(NULL);
    sqlite3_close(db);
}

/* Term statistics are cached per generation: after a write that bumps it, the counts and the
 * top results' terms are those of the new store, not the cached ones. */
static void test_fts_terms_follow_generation(void **state)
{
    store_db *db = open_store(*state);
    ragd_err err = {0};
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t doc = put_doc(db, "/docs/g.md", "Gen");
    int64_t first = put_chunk(db, doc, 0, "delta epsilon");
    assert_int_equal(store_db_generation_bump(db, NULL, &err), RAGD_OK);
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    const char *phrases[] = {"\"delta\"", "\"epsilon\"", "\"zeta\""};
    int64_t df[3], total = 0, top[1] = {first};
    uint32_t mask[3];
    for (int pass = 0; pass < 2; pass++) { /* the second pass answers from the cache */
        assert_int_equal(store_db_fts_terms(db, phrases, 3, top, 1, df, mask, &total, &err),
                         RAGD_OK);
        assert_int_equal(df[0], 1);
        assert_int_equal(df[2], 0);
        assert_int_equal(mask[0], 1u);
        assert_int_equal(mask[2], 0u);
    }
    int64_t ids[4];
    double scores[4];
    size_t found = 0;
    assert_int_equal(store_db_fts_search_bounded(db, "\"delta\" OR \"zeta\"", 4, 4000, ids,
                                                 scores, &found, &err),
                     RAGD_OK);
    assert_int_equal(found, 1);
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    put_chunk(db, doc, 1, "delta zeta");
    put_chunk(db, doc, 2, "zeta");
    assert_int_equal(store_db_generation_bump(db, NULL, &err), RAGD_OK);
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    assert_int_equal(store_db_fts_terms(db, phrases, 3, top, 1, df, mask, &total, &err), RAGD_OK);
    assert_int_equal(total, 3);
    assert_int_equal(df[0], 2);
    assert_int_equal(df[1], 1);
    assert_int_equal(df[2], 2);
    assert_int_equal(mask[1], 1u);
    assert_int_equal(store_db_fts_search_bounded(db, "\"delta\" OR \"zeta\"", 4, 4000, ids,
                                                 scores, &found, &err),
                     RAGD_OK);
    assert_int_equal(found, 3);
}

/* The reference: FTS5's own bm25() with ragd's weights, on a connection of the test's own.
 * Returns: the rows found (ids and -bm25() into ids/scores, best first, rowid breaking ties). */
static size_t bm25_reference(const char *dir, const char *match, size_t limit, int64_t *ids,
                             double *scores)
{
    char path[512];
    snprintf(path, sizeof path, "%s/ragd.sqlite3", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT rowid, bm25(chunks_fts, 2.0, 2.0, 1.0) AS r "
                                            "FROM chunks_fts WHERE chunks_fts MATCH ?1 "
                                            "ORDER BY r, rowid LIMIT ?2", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    size_t n = 0;
    while (n < limit && sqlite3_step(st) == SQLITE_ROW) {
        ids[n] = sqlite3_column_int64(st, 0);
        scores[n] = -sqlite3_column_double(st, 1);
        n++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

#define RANK_LIMIT 400

/* Asserts that store_db_fts_search ranks match exactly as FTS5's bm25() does: the same rows in
 * the same order, the same scores (to rounding). */
static void rank_matches_bm25(fixture *f, const char *match)
{
    static int64_t want[RANK_LIMIT], got[RANK_LIMIT];
    static double want_s[RANK_LIMIT], got_s[RANK_LIMIT];
    size_t n_want = bm25_reference(f->dir, match, RANK_LIMIT, want, want_s);
    size_t n_got = 0;
    ragd_err err = {0};
    assert_int_equal(store_db_fts_search(f->db, match, RANK_LIMIT, got, got_s, &n_got, &err),
                     RAGD_OK);
    if (n_got != n_want) fail_msg("%s: %zu rows, bm25() %zu", match, n_got, n_want);
    assert_true(n_want > 0);
    for (size_t i = 0; i < n_want; i++) {
        if (got[i] != want[i] || fabs(got_s[i] - want_s[i]) > 1e-9 * fabs(want_s[i]))
            fail_msg("%s: row %zu: %lld %.17g, bm25() %lld %.17g", match, i, (long long)got[i],
                     got_s[i], (long long)want[i], want_s[i]);
    }
}

/* Writes n chunks of pseudo-random words (lengths 3..60 tokens, some headings long) into a new
 * document titled title, in one transaction that bumps the generation as the backend does.
 * Returns: the document id. */
static int64_t rank_corpus_add(store_db *db, const char *path, const char *title, int n,
                               unsigned seed)
{
    static const char *words[] = {"alpha", "beta", "gamma", "delta", "backup", "back", "up",
                                  "index", "rebuild", "query", "vector", "keyword", "filler",
                                  "common", "ranking", "zebra"};
    ragd_err err = {0};
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t doc = put_doc(db, path, title);
    for (int i = 0; i < n; i++) {
        char text[1024] = "", heading[128];
        seed = seed * 1103515245u + 12345u;
        int len = 3 + (int)((seed >> 16) % 58);
        for (int w = 0; w < len; w++) {
            seed = seed * 1103515245u + 12345u;
            /* skewed: the last four words in half the positions, the others rarer */
            unsigned r = (seed >> 16) % 256;
            unsigned k = r < 128 ? 12 + r % 4 : r < 224 ? r % 12 : 14 + r % 2;
            strcat(text, words[k % 16]);
            strcat(text, " ");
        }
        snprintf(heading, sizeof heading, "%s%s", i % 4 ? "Part" : "Index > rebuild the vector",
                 i % 7 ? "" : " > backup");
        char sum[UTIL_SHA256_HEX_LEN + 1];
        checksum_of(text, sum);
        store_chunk_in c = {.ordinal = i, .text = text, .text_len = strlen(text),
                            .heading = heading, .tokens = len, .checksum = sum};
        int64_t id = 0;
        assert_int_equal(store_db_chunk_put(db, doc, &c, &id, &err), RAGD_OK);
    }
    assert_int_equal(store_db_generation_bump(db, NULL, &err), RAGD_OK);
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    return doc;
}

static const char *const rank_queries[] = {
    "\"zebra\"",
    "\"alpha\" OR \"zebra\"",
    "\"common\" OR \"filler\" OR \"ranking\"",
    "(\"backup\" OR \"back up\") OR \"rebuild\" OR \"index\"",
    "\"alpha\" AND \"beta\"",
    "\"vector\" OR \"keyword query\"",
};

static void rank_all_match_bm25(fixture *f)
{
    for (size_t i = 0; i < sizeof rank_queries / sizeof rank_queries[0]; i++)
        rank_matches_bm25(f, rank_queries[i]);
}

/* ragd's BM25 (ragd_bm25: ragd's phrase counts, chunk lengths in memory) ranks as FTS5's bm25()
 * does, score for score: on a first store, after chunks are added (lengths read for the new
 * ids only), after a document's title changes under its existing chunks (their lengths change:
 * read again), after a document is deleted, and after a reopen. */
static void test_fts_rank_equals_bm25(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    int64_t d1 = rank_corpus_add(db, "/docs/a.md", "Alpha guide", 150, 7u);
    rank_corpus_add(db, "/docs/b.md", "Backup", 120, 11u);
    rank_all_match_bm25(f);
    size_t slots = store_db_fts_lengths_slots(db);
    assert_int_equal(slots, 270); /* the lengths are held: the ranking used them */
    rank_corpus_add(db, "/docs/c.md", "Zebra notes", 90, 13u);
    rank_all_match_bm25(f);
    assert_int_equal(store_db_fts_lengths_slots(db), 360);
    /* A longer title for a.md, its chunks kept: each of its rows grows by four tokens. */
    ragd_err err = {0};
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    assert_int_equal(put_doc(db, "/docs/a.md", "Alpha guide with a much longer title"), d1);
    assert_int_equal(store_db_generation_bump(db, NULL, &err), RAGD_OK);
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    assert_int_equal(raw_int(f->dir, "SELECT value FROM meta WHERE key = 'fts_titles'"), 1);
    /* a document without chunks changes no keyword row: not counted */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t bare = put_doc(db, "/docs/bare.md", "Bare");
    assert_int_equal(put_doc(db, "/docs/bare.md", "Bare, renamed"), bare);
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    assert_int_equal(raw_int(f->dir, "SELECT value FROM meta WHERE key = 'fts_titles'"), 1);
    rank_all_match_bm25(f);
    rank_matches_bm25(f, "\"alpha\" OR \"guide\" OR \"title\"");
    /* a.md gone: its rows no longer match (their slots stay until a reload), b and c rank */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    assert_int_equal(store_db_doc_delete(db, d1, &err), RAGD_OK);
    assert_int_equal(store_db_generation_bump(db, NULL, &err), RAGD_OK);
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    rank_all_match_bm25(f);
    store_db_close(db);
    f->db = NULL;
    db = open_store(f);
    rank_all_match_bm25(f);
    assert_int_equal(store_db_fts_lengths_slots(db), 210);
    /* a store without a generation (nothing to key the counts and lengths on): bm25() ranks */
    raw_exec(f->dir, "DELETE FROM meta WHERE key = 'generation'");
    rank_all_match_bm25(f);
}

/* The token counts alone (the hybrid length pivot's read): as written, 0 for a missing id. */
static void test_chunk_tokens(void **state)
{
    store_db *db = open_store(*state);
    ragd_err err = {0};
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t doc = put_doc(db, "/docs/t.md", "Tokens");
    int64_t ids[4] = {put_chunk(db, doc, 0, "one"), put_chunk(db, doc, 3, "two"), 999999,
                      put_chunk(db, doc, 9, "three")};
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    int64_t tokens[4] = {-1, -1, -1, -1};
    assert_int_equal(store_db_chunk_tokens(db, ids, 4, tokens, &err), RAGD_OK);
    assert_int_equal(tokens[0], 7); /* put_chunk: 7 + ordinal */
    assert_int_equal(tokens[1], 10);
    assert_int_equal(tokens[2], 0);
    assert_int_equal(tokens[3], 16);
    assert_int_equal(store_db_chunk_tokens(db, ids, 0, tokens, &err), RAGD_OK);
    /* Read once, a count comes from memory (src/store_chunk_tokens.c: chunk rows are never
     * updated, ids never reused): a row changed behind the store's back does not show, a
     * chunk added since is read from its row, a missing id still reads 0. */
    raw_exec(((fixture *)*state)->dir, "UPDATE chunks SET tokens = 500");
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    ids[2] = put_chunk(db, doc, 20, "four");
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    int64_t missing = 999999;
    memset(tokens, 0xff, sizeof tokens);
    assert_int_equal(store_db_chunk_tokens(db, ids, 4, tokens, &err), RAGD_OK);
    assert_int_equal(tokens[0], 7);
    assert_int_equal(tokens[1], 10);
    assert_int_equal(tokens[2], 27);
    assert_int_equal(tokens[3], 16);
    assert_int_equal(store_db_chunk_tokens(db, &missing, 1, tokens, &err), RAGD_OK);
    assert_int_equal(tokens[0], 0);
    /* after a reset the ids go on from the highest ever handed out: no old count applies */
    assert_int_equal(store_db_reset(db, &err), RAGD_OK);
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    doc = put_doc(db, "/docs/u.md", "Tokens again");
    int64_t fresh = put_chunk(db, doc, 1, "five");
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    assert_true(fresh > ids[2]);
    assert_int_equal(store_db_chunk_tokens(db, &fresh, 1, tokens, &err), RAGD_OK);
    assert_int_equal(tokens[0], 8);
}

/* The token-count cache itself: unknown until put; counts it cannot hold left out; threads
 * racing to create one block all keep their entries. */
typedef struct tokens_race {
    store_chunk_tokens_cache *c;
    int64_t first;
} tokens_race;

static void *tokens_race_run(void *arg)
{
    tokens_race *t = arg;
    for (int64_t id = t->first; id < t->first + 4096; id += 4)
        store_chunk_tokens_cache_put(t->c, id, id % 1000);
    return NULL;
}

static void test_chunk_tokens_cache(void **state)
{
    (void)state;
    assert_int_equal(store_chunk_tokens_cache_get(NULL, 1), -1);
    store_chunk_tokens_cache_put(NULL, 1, 5); /* no-op */
    store_chunk_tokens_cache *c = store_chunk_tokens_cache_new();
    assert_non_null(c);
    assert_int_equal(store_chunk_tokens_cache_get(c, 1), -1);
    store_chunk_tokens_cache_put(c, 1, 0);
    store_chunk_tokens_cache_put(c, 2, 65534);
    store_chunk_tokens_cache_put(c, 3, 65535);          /* too large for a slot */
    store_chunk_tokens_cache_put(c, 4, -1);             /* not a count */
    store_chunk_tokens_cache_put(c, (int64_t)1 << 28, 5); /* past the range */
    store_chunk_tokens_cache_put(c, -7, 5);
    store_chunk_tokens_cache_put(c, 70000, 12);         /* another block */
    assert_int_equal(store_chunk_tokens_cache_get(c, 1), 0);
    assert_int_equal(store_chunk_tokens_cache_get(c, 2), 65534);
    assert_int_equal(store_chunk_tokens_cache_get(c, 3), -1);
    assert_int_equal(store_chunk_tokens_cache_get(c, 4), -1);
    assert_int_equal(store_chunk_tokens_cache_get(c, (int64_t)1 << 28), -1);
    assert_int_equal(store_chunk_tokens_cache_get(c, -7), -1);
    assert_int_equal(store_chunk_tokens_cache_get(c, 70000), 12);
    assert_int_equal(store_chunk_tokens_cache_get(c, 70001), -1);
    /* four threads fill interleaved ids of one fresh block (ids 1 << 20 ...) at once */
    pthread_t th[4];
    tokens_race race[4];
    for (int i = 0; i < 4; i++) {
        race[i] = (tokens_race){.c = c, .first = ((int64_t)1 << 20) + i};
        assert_int_equal(pthread_create(&th[i], NULL, tokens_race_run, &race[i]), 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int64_t id = (int64_t)1 << 20; id < ((int64_t)1 << 20) + 4096; id++)
        assert_int_equal(store_chunk_tokens_cache_get(c, id), id % 1000);
    store_chunk_tokens_cache_free(c);
    store_chunk_tokens_cache_free(NULL);
}

/* The bounded plan ranks its rare terms with ragd_bm25 too: where the whole query fits the
 * budget its answer is bm25()'s, score for score; where it does not, the rows it returns carry
 * the bm25() scores of the rare terms' own query. */
static void test_fts_rank_bounded_equals_bm25(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    rank_corpus_add(db, "/docs/a.md", "Alpha guide", 200, 5u);
    ragd_err err = {0};
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t doc = put_doc(db, "/docs/q.md", "Quokka");
    put_chunk(db, doc, 0, "a quokka in the common grass");
    put_chunk(db, doc, 1, "quokka quokka, rarely seen, common filler words around it all day");
    put_chunk(db, doc, 2, "no marsupial here, common words only");
    assert_int_equal(store_db_generation_bump(db, NULL, &err), RAGD_OK);
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    int64_t ids[50], want[50];
    double scores[50], want_s[50];
    size_t found = 0;
    /* quokka is rare, common is in most rows: a budget of 60 ranks quokka alone */
    assert_int_equal(store_db_fts_search_bounded(db, "\"common\" OR \"quokka\"", 50, 60, ids,
                                                 scores, &found, &err), RAGD_OK);
    size_t n = bm25_reference(f->dir, "\"quokka\"", 50, want, want_s);
    assert_int_equal(found, n);
    assert_int_equal(n, 3); /* the title holds it too */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ids[i], want[i]);
        assert_true(fabs(scores[i] - want_s[i]) <= 1e-9 * want_s[i]);
    }
    assert_int_equal(store_db_fts_search_bounded(db, "\"common\" OR \"quokka\"", 50, 100000,
                                                 ids, scores, &found, &err), RAGD_OK);
    n = bm25_reference(f->dir, "\"common\" OR \"quokka\"", 50, want, want_s);
    assert_int_equal(found, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ids[i], want[i]);
        assert_true(fabs(scores[i] - want_s[i]) <= 1e-9 * want_s[i]);
    }
}

/* A schema-2 store (documents unique by path, keyword index with its title trigger) is migrated
 * in place to schema 3: ids, chunks and the keyword index survive, every document lands in the
 * "default" collection, the title trigger still follows renames, and one path may then live in
 * two collections. */
static void test_schema_2_migrated(void **state)
{
    fixture *f = *state;
    char path[300];
    snprintf(path, sizeof path, "%s/ragd.sqlite3", f->dir);
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    static const char v2[] =
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE documents (id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL UNIQUE,"
        " source TEXT NOT NULL, title TEXT NOT NULL, checksum TEXT NOT NULL, size INTEGER NOT NULL,"
        " mtime INTEGER NOT NULL, tags TEXT NOT NULL DEFAULT '[]', metadata TEXT NOT NULL DEFAULT"
        " '{}', ingested_at INTEGER NOT NULL);"
        "CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, document_id INTEGER NOT NULL"
        " REFERENCES documents(id) ON DELETE CASCADE, ordinal INTEGER NOT NULL, text TEXT NOT NULL,"
        " heading TEXT NOT NULL, tokens INTEGER NOT NULL, char_start INTEGER NOT NULL,"
        " char_end INTEGER NOT NULL, checksum TEXT NOT NULL, page INTEGER NOT NULL DEFAULT 0,"
        " UNIQUE (document_id, ordinal));"
        "CREATE TABLE embeddings (checksum TEXT NOT NULL, model TEXT NOT NULL, dims INTEGER NOT"
        " NULL, vector BLOB NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (checksum, model,"
        " dims)) WITHOUT ROWID;"
        "CREATE VIRTUAL TABLE chunks_fts USING fts5(title, heading, text,"
        " tokenize = 'porter unicode61 remove_diacritics 2');"
        "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN"
        " INSERT INTO chunks_fts(rowid, title, heading, text) VALUES (new.id,"
        " coalesce((SELECT title FROM documents WHERE id = new.document_id), ''), new.heading,"
        " new.text); END;"
        "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN"
        " DELETE FROM chunks_fts WHERE rowid = old.id; END;"
        "CREATE TRIGGER chunks_fts_title AFTER UPDATE OF title ON documents BEGIN"
        " UPDATE chunks_fts SET title = new.title WHERE rowid IN"
        " (SELECT id FROM chunks WHERE document_id = new.id); END;"
        "INSERT INTO meta VALUES ('schema_version', '2');"
        "INSERT INTO documents VALUES (7, '/d/a.md', 'a.md', 'Alpha', 'c', 1, 1, '[]', '{}', 1);"
        "INSERT INTO chunks VALUES (12, 7, 0, 'old text', '', 2, 0, 8, 'k', 3);"
        /* the maintained counts of a schema-2 store written by a recent ragd */
        "CREATE TABLE ragd_counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;"
        "INSERT INTO ragd_counts VALUES ('documents', 1), ('chunks', 1), ('embeddings', 0);"
        "CREATE TRIGGER ragd_counts_doc_insert AFTER INSERT ON documents BEGIN"
        " UPDATE ragd_counts SET n = n + 1 WHERE name = 'documents'; END;"
        "CREATE TRIGGER ragd_counts_doc_delete AFTER DELETE ON documents BEGIN"
        " UPDATE ragd_counts SET n = n - 1 WHERE name = 'documents'; END;"
        "CREATE TRIGGER ragd_counts_chunk_insert AFTER INSERT ON chunks BEGIN"
        " UPDATE ragd_counts SET n = n + 1 WHERE name = 'chunks'; END;"
        "CREATE TRIGGER ragd_counts_chunk_delete AFTER DELETE ON chunks BEGIN"
        " UPDATE ragd_counts SET n = n - 1 WHERE name = 'chunks'; END;";
    assert_int_equal(sqlite3_exec(raw, v2, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);

    ragd_err err = {0};
    ragd_rc orc = store_db_open(f->dir, 0, &f->db, &err);
    if (orc != RAGD_OK) fprintf(stderr, "open: %s\n", err.msg);
    assert_int_equal(orc, RAGD_OK);
    store_doc doc = {0};
    int found = 0;
    assert_int_equal(store_db_doc_find(f->db, "/d/a.md", &doc, &found, &err), RAGD_OK);
    assert_int_equal(found, 1);
    assert_int_equal(doc.id, 7);
    assert_string_equal(doc.collection, "default");
    store_doc_free(&doc);
    int64_t id = 12;
    store_hit h = {0};
    assert_int_equal(store_db_chunks_get(f->db, &id, 1, &h, &err), RAGD_OK);
    assert_string_equal(h.text, "old text");
    assert_int_equal(h.page, 3);
    assert_string_equal(h.collection, "default");
    store_hit_free(&h);
    /* the title trigger was created again: a rename reaches the keyword index */
    store_doc renamed = {.path = "/d/a.md", .source = "a.md", .title = "Zanzibar",
                         .checksum = "c"};
    int64_t same = 0;
    assert_int_equal(store_db_doc_put(f->db, &renamed, &same, &err), RAGD_OK);
    assert_int_equal(same, 7);
    int64_t ids[4];
    double scores[4];
    size_t n = 0;
    assert_int_equal(store_db_fts_search(f->db, "\"zanzibar\"", 4, ids, scores, &n, &err),
                     RAGD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 12);
    /* one path, two collections; deletes stay per collection */
    store_doc other = {.path = "/d/a.md", .source = "a.md", .title = "Other", .checksum = "d",
                       .collection = "team"};
    int64_t other_id = 0;
    assert_int_equal(store_db_doc_put(f->db, &other, &other_id, &err), RAGD_OK);
    assert_true(other_id != 7);
    stats_expect(f->db, 2, 1, 0); /* the counts' document triggers survived the rebuild */
    assert_int_equal(store_db_doc_find_in(f->db, "team", "/d/a.md", &doc, &found, &err), RAGD_OK);
    assert_int_equal(found, 1);
    assert_int_equal(doc.id, other_id);
    store_doc_free(&doc);
    store_collection *list = NULL;
    size_t nc = 0;
    assert_int_equal(store_db_collections(f->db, &list, &nc, &err), RAGD_OK);
    assert_int_equal(nc, 2);
    assert_string_equal(list[0].name, "default");
    assert_int_equal(list[0].chunks, 1);
    assert_string_equal(list[1].name, "team");
    assert_int_equal(list[1].chunks, 0);
    store_collections_free(list, nc);
    int64_t removed = 0;
    assert_int_equal(store_db_collection_delete(f->db, "team", &removed, &err), RAGD_OK);
    assert_int_equal(removed, 1);
    stats_expect(f->db, 1, 1, 0);
    assert_int_equal(store_db_doc_find(f->db, "/d/a.md", &doc, &found, &err), RAGD_OK);
    assert_int_equal(found, 1);
    store_doc_free(&doc);
    store_db_close(f->db);
    f->db = NULL;
    /* migrated once: opens again, read-only too */
    store_db *ro = NULL;
    assert_int_equal(store_db_open(f->dir, 1, &ro, &err), RAGD_OK);
    store_db_close(ro);
}

/* Schema 4: the keyword index rows of a transaction's chunks are added by its commit (one
 * statement), not by a trigger per chunk. A schema 3 store (with the trigger) is migrated: the
 * trigger goes (else the commit's statement would index each chunk a second time and fail on
 * the duplicate rowid); chunks inserted in a transaction are found once committed, a rolled
 * back transaction leaves no index rows, and a chunk inserted outside a transaction is indexed
 * at once. */
static void test_fts_rows_per_transaction(void **state)
{
    fixture *f = *state;
    ragd_err err = {0};
    store_db *db = open_store(f);
    int64_t doc = put_doc(db, "/d/old.md", "Old");
    put_chunk(db, doc, 0, "quokka written before the migration");
    store_db_close(db);
    f->db = NULL;
    /* what a schema 3 ragd left: the per-chunk trigger */
    raw_exec(f->dir, "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN"
                     " INSERT INTO chunks_fts(rowid, title, heading, text) VALUES (new.id,"
                     " coalesce((SELECT title FROM documents WHERE id = new.document_id), ''),"
                     " new.heading, new.text); END;"
                     "UPDATE meta SET value = '3' WHERE key = 'schema_version';");

    db = open_store(f);
    assert_int_equal(raw_int(f->dir, "SELECT value FROM meta WHERE key = 'schema_version'"), 6);
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
                                     "AND name = 'chunks_fts_insert'"), 0);
    assert_int_equal(fts_hits(db, "\"quokka\""), 1);

    /* several documents in one transaction: indexed at its commit, each chunk once */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t a = put_doc(db, "/d/a.md", "Alpha");
    put_chunk(db, a, 0, "wombat one");
    put_chunk(db, a, 1, "wombat two");
    int64_t b = put_doc(db, "/d/b.md", "Beta");
    put_chunk(db, b, 0, "wombat three");
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    assert_int_equal(fts_hits(db, "\"wombat\""), 3);
    assert_int_equal(fts_hits(db, "\"beta\""), 1); /* the title, as the trigger gave it */

    /* rolled back: neither chunks nor index rows; the next transaction starts clean */
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    int64_t c = put_doc(db, "/d/c.md", "Gamma");
    put_chunk(db, c, 0, "numbat gone");
    store_db_rollback(db);
    assert_int_equal(fts_hits(db, "\"numbat\""), 0);
    assert_int_equal(store_db_begin(db, &err), RAGD_OK);
    c = put_doc(db, "/d/c.md", "Gamma");
    put_chunk(db, c, 0, "bilby kept");
    assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    assert_int_equal(fts_hits(db, "\"bilby\""), 1);
    assert_int_equal(fts_hits(db, "\"numbat\""), 0);

    /* outside a transaction: indexed with the insert */
    int64_t d = put_doc(db, "/d/d.md", "Delta");
    put_chunk(db, d, 0, "dingo alone");
    assert_int_equal(fts_hits(db, "\"dingo\""), 1);
    assert_int_equal(raw_int(f->dir, "SELECT (SELECT count(*) FROM chunks_fts) = "
                                     "(SELECT count(*) FROM chunks)"), 1);
    /* the postings against the content (with external content the count above reads the
     * chunks themselves) */
    raw_exec(f->dir, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)");
}

/* Puts two vectors for one text (the second ignored), one for another, a chunk for each, and
 * checks what get, vectors_each and the counts see. */
static void embeddings_round_trip(fixture *f)
{
    ragd_err err = {0};
    store_db *db = open_store(f);
    put_embedding(db, "layout one", 1.0f);
    put_embedding(db, "layout one", 9.0f); /* same checksum, model, dims: kept the first */
    put_embedding(db, "layout two", 2.0f);
    int64_t doc = put_doc(db, "/d/layout.md", "Layout");
    int64_t one = put_chunk(db, doc, 0, "layout one");
    int64_t two = put_chunk(db, doc, 1, "layout two");
    char sum[UTIL_SHA256_HEX_LEN + 1];
    checksum_of("layout one", sum);
    float got[RAGD_TEST_DIMS] = {0};
    int found = 0;
    assert_int_equal(store_db_embedding_get(db, sum, "test-model", RAGD_TEST_DIMS, got, &found,
                                            &err), RAGD_OK);
    assert_true(found);
    assert_true(got[0] == 1.0f && got[1] == 1.5f && got[2] == -1.0f && got[3] == 0.25f);
    assert_int_equal(store_db_embedding_get(db, sum, "test-model", RAGD_TEST_DIMS + 1, got,
                                            &found, &err), RAGD_OK);
    assert_false(found);
    seen_vectors seen = {0};
    size_t missing = 99;
    assert_int_equal(store_db_vectors_each(db, "test-model", RAGD_TEST_DIMS, collect_vector,
                                           &seen, &missing, &err), RAGD_OK);
    assert_int_equal(seen.n, 2);
    assert_int_equal(missing, 0);
    assert_true(seen.ids[0] == one && seen.first[0] == 1.0f);
    assert_true(seen.ids[1] == two && seen.first[1] == 2.0f);
    stats_expect(db, 1, 2, 2);
}

/* A new store's embeddings are a rowid table with a unique index (rows appended in insertion
 * order); a store created with the WITHOUT ROWID table keyed by checksum (ragd before session 4)
 * keeps it, and both behave alike. */
static void test_embeddings_layouts(void **state)
{
    fixture *f = *state;
    embeddings_round_trip(f);
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM sqlite_master WHERE name = "
                                     "'embeddings' AND sql LIKE '%WITHOUT ROWID%'"), 0);
    assert_int_equal(raw_int(f->dir, "SELECT max(rowid) FROM embeddings"), 2);
    store_db_close(f->db);
    f->db = NULL;
    assert_int_equal(test_tree_remove(f->dir), 0);
    assert_int_equal(test_tmpdir_make(f->dir, sizeof f->dir, "store"), 0);

    /* the older layout, as an older ragd created it */
    raw_exec(f->dir, "CREATE TABLE embeddings (checksum TEXT NOT NULL, model TEXT NOT NULL, "
                     "dims INTEGER NOT NULL, vector BLOB NOT NULL, created_at INTEGER NOT NULL, "
                     "PRIMARY KEY (checksum, model, dims)) WITHOUT ROWID;");
    embeddings_round_trip(f);
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM sqlite_master WHERE name = "
                                     "'embeddings' AND sql LIKE '%WITHOUT ROWID%'"), 1);
}

/* Commits n documents of one chunk each, a transaction each (one keyword segment each). */
static void fts_commit_docs(store_db *db, int from, int n)
{
    ragd_err err = {0};
    for (int i = from; i < from + n; i++) {
        char path[64], text[64];
        snprintf(path, sizeof path, "/d/merge-%d.md", i);
        snprintf(text, sizeof text, "platypus number %d", i);
        assert_int_equal(store_db_begin(db, &err), RAGD_OK);
        put_chunk(db, put_doc(db, path, "Merge"), 0, text);
        assert_int_equal(store_db_commit(db, &err), RAGD_OK);
    }
}

/* The keyword index's merge settings (FTS5 keeps them in chunks_fts_config and merges by them):
 * 8 segments a level (FTS5's default: 4), crisis merge at 32 (16), in new stores and in stores
 * written with other settings (set at the next writable open, never by a read-only one); the
 * index finds every row across transactions before and after. */
static void test_fts_merge_settings(void **state)
{
    fixture *f = *state;
    store_db *db = open_store(f);
    assert_int_equal(raw_int(f->dir, "SELECT v FROM chunks_fts_config WHERE k = 'automerge'"), 8);
    assert_int_equal(raw_int(f->dir, "SELECT v FROM chunks_fts_config WHERE k = 'crisismerge'"),
                     32);
    fts_commit_docs(db, 0, 8);
    assert_int_equal(fts_hits(db, "\"platypus\""), 8);
    store_db_close(db);
    f->db = NULL;

    /* a store with FTS5's defaults (an older ragd's) gets the settings at a writable open */
    raw_exec(f->dir, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('automerge', 4);"
                     "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('crisismerge', 16)");
    store_db *ro = NULL;
    ragd_err err = {0};
    assert_int_equal(store_db_open(f->dir, 1, &ro, &err), RAGD_OK); /* read-only: untouched */
    store_db_close(ro);
    assert_int_equal(raw_int(f->dir, "SELECT v FROM chunks_fts_config WHERE k = 'automerge'"), 4);
    db = open_store(f);
    assert_int_equal(raw_int(f->dir, "SELECT v FROM chunks_fts_config WHERE k = 'automerge'"), 8);
    assert_int_equal(raw_int(f->dir, "SELECT v FROM chunks_fts_config WHERE k = 'crisismerge'"),
                     32);
    fts_commit_docs(db, 8, 4);
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH "
                                     "'platypus'"), 12);
    raw_exec(f->dir, "INSERT INTO chunks_fts(chunks_fts) VALUES ('integrity-check')");
}

/* Size of the fixture store's WAL file in bytes (0 when absent). */
static long long wal_bytes(const fixture *f)
{
    char path[300];
    snprintf(path, sizeof path, "%s/ragd.sqlite3-wal", f->dir);
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

/* The writer checkpoints every 4096 WAL pages, not every 1000 (SQLite's default): a WAL of
 * more than 8 MiB builds up before the first checkpoint, and the checkpoints still bound it
 * (about 16 MiB plus one transaction). */
static void test_wal_checkpoint_interval(void **state)
{
    fixture *f = *state;
    ragd_err err = {0};
    store_db *db = open_store(f);
    enum { dims = 1024, per_tx = 250 };
    static float vec[dims];
    long long peak = 0, after_12 = 0;
    for (int tx = 0; tx < 28; tx++) { /* ~1 MiB of vectors a transaction */
        assert_int_equal(store_db_begin(db, &err), RAGD_OK);
        for (int i = 0; i < per_tx; i++) {
            char sum[32];
            snprintf(sum, sizeof sum, "wal-%d-%d", tx, i);
            for (int d = 0; d < dims; d++) vec[d] = (float)(tx * per_tx + i + d);
            assert_int_equal(store_db_embedding_put(db, sum, "wal-model", dims, vec, &err),
                             RAGD_OK);
        }
        assert_int_equal(store_db_commit(db, &err), RAGD_OK);
        long long now = wal_bytes(f);
        if (now > peak) peak = now;
        if (tx == 11) after_12 = now;
    }
    assert_true(after_12 > 8LL * 1024 * 1024); /* 1000 pages would have checkpointed at ~4 MiB */
    assert_true(peak < 20LL * 1024 * 1024);    /* ... and 4096 pages still do */
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM embeddings WHERE model = 'wal-model'"),
                     28 * per_tx);
}

/* Writes n embeddings of 1024 dims (4 KiB each, ~2 pages with their overflow) in one transaction
 * on the fixture's store. Returns: the high-water mark of SQLite's page-cache memory meanwhile
 * (process-wide: the writer is the only connection working). */
static long long page_cache_peak_writing(fixture *f, const char *prefix, int n)
{
    enum { dims = 1024 };
    static float vec[dims];
    ragd_err err = {0};
    sqlite3_int64 cur = 0, peak = 0;
    assert_int_equal(sqlite3_status64(SQLITE_STATUS_PAGECACHE_OVERFLOW, &cur, &peak, 1),
                     SQLITE_OK);
    assert_int_equal(store_db_begin(f->db, &err), RAGD_OK);
    for (int i = 0; i < n; i++) {
        char sum[32];
        snprintf(sum, sizeof sum, "%s-%d", prefix, i);
        for (int d = 0; d < dims; d++) vec[d] = (float)(i + d);
        assert_int_equal(store_db_embedding_put(f->db, sum, "cache-model", dims, vec, &err),
                         RAGD_OK);
    }
    assert_int_equal(store_db_commit(f->db, &err), RAGD_OK);
    assert_int_equal(sqlite3_status64(SQLITE_STATUS_PAGECACHE_OVERFLOW, &cur, &peak, 0),
                     SQLITE_OK);
    return peak;
}

/* The writer's page cache is bounded by store_writer_cache_set's size, 8 MiB by default (the
 * daemon's RSS budget while it ingests), 16 MiB when a batch process asks for it: a write of
 * ~30 MiB of pages fills whichever bound holds, and not more. */
static void test_writer_cache_bounded(void **state)
{
    fixture *f = *state;
    const long long mib = 1024 * 1024;
    store_writer_cache_set(0);
    open_store(f);
    long long peak = page_cache_peak_writing(f, "daemon", 4000);
    assert_true(peak > 6 * mib);  /* filled: the bound is what stopped it */
    assert_true(peak < 10 * mib); /* 8 MiB and SQLite's page headers */
    store_db_close(f->db);
    f->db = NULL;
    store_writer_cache_set(RAGD_STORE_WRITER_CACHE_BATCH_KIB);
    open_store(f);
    peak = page_cache_peak_writing(f, "batch", 4000);
    store_writer_cache_set(0);
    assert_true(peak > 13 * mib);
    assert_true(peak < 19 * mib);
}

/* ---- the store interface (ragd/store.h) ------------------------------------------------------ */

/* Every backend in the table fills every entry of store_ops, and names resolve both ways. */
static void test_backend_table(void **state)
{
    (void)state;
    const char *names[] = {"faiss"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const store_ops *ops = store_backend_find(names[i]);
        assert_non_null(ops);
        assert_string_equal(ops->name, names[i]);
        /* store_ops is a struct of one name then function pointers only */
        const void *const *fn = (const void *const *)((const char *)ops + sizeof(const char *));
        size_t count = (sizeof *ops - sizeof(const char *)) / sizeof(void *);
        for (size_t k = 0; k < count; k++) assert_non_null(fn[k]);
    }
    assert_null(store_backend_find("nosuch"));
    assert_null(store_backend_find(NULL));
}

/* Through the interface on the faiss backend: a committed transaction's chunk vectors become
 * searchable at commit; a rolled-back one leaves neither rows nor vectors; a reopen finds the
 * saved index. */
static void test_interface_faiss_commit(void **state)
{
    fixture *f = *state;
    ragd_err err = {0};
    ragd_cfg cfg;
    assert_int_equal(cfg_defaults_set(&cfg, &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&cfg, "store", "data_dir", f->dir, "test", &err), RAGD_OK);
    store *st = NULL;
    assert_int_equal(store_open(&cfg, 0, &st, &err), RAGD_OK);
    assert_int_equal(store_model_check(st, "m", RAGD_TEST_DIMS, &err), RAGD_OK);
    assert_int_equal(store_vectors_open(st, "m", RAGD_TEST_DIMS, 0, &err), RAGD_OK);
    float v[RAGD_TEST_DIMS] = {1, 0, 0, 0};
    store_doc doc = {.path = "/a.md", .source = "a.md", .title = "A", .checksum = "c1"};
    store_chunk_in in = {.text = "alpha", .text_len = 5, .heading = "", .checksum = "k1",
                         .tokens = 5};
    int64_t doc_id = 0, chunk_id = 0;
    assert_int_equal(store_begin(st, &err), RAGD_OK);
    assert_int_equal(store_doc_put(st, &doc, &doc_id, &err), RAGD_OK);
    assert_int_equal(store_chunk_put(st, doc_id, &in, v, RAGD_TEST_DIMS, &chunk_id, &err),
                     RAGD_OK);
    assert_int_equal(store_vector_count(st), 0); /* not before the commit */
    assert_int_equal(store_commit(st, &err), RAGD_OK);
    assert_int_equal(store_vector_count(st), 1);
    int64_t ids[4];
    float scores[4];
    size_t found = 0;
    assert_int_equal(store_vector_search(st, NULL, v, 4, ids, scores, &found, &err), RAGD_OK);
    assert_int_equal(found, 1);
    assert_int_equal(ids[0], chunk_id);

    store_doc doc2 = {.path = "/b.md", .source = "b.md", .title = "B", .checksum = "c2"};
    int64_t doc2_id = 0, chunk2_id = 0;
    assert_int_equal(store_begin(st, &err), RAGD_OK);
    assert_int_equal(store_doc_put(st, &doc2, &doc2_id, &err), RAGD_OK);
    assert_int_equal(store_chunk_put(st, doc2_id, &in, v, RAGD_TEST_DIMS, &chunk2_id, &err),
                     RAGD_OK);
    size_t removed = 0;
    assert_int_equal(store_doc_delete(st, doc_id, &removed, &err), RAGD_OK);
    assert_int_equal(removed, 1);
    store_rollback(st);
    store_stats stats = {0};
    assert_int_equal(store_stats_get(st, &stats, &err), RAGD_OK);
    assert_int_equal(stats.documents, 1);
    assert_int_equal(stats.chunks, 1);
    assert_int_equal(stats.vectors, 1);
    assert_int_equal(store_vector_search(st, NULL, v, 4, ids, scores, &found, &err), RAGD_OK);
    assert_int_equal(found, 1);
    assert_int_equal(ids[0], chunk_id);

    /* token counts alone: through the backend's op, and read through chunks_get without it */
    int64_t want_ids[2] = {chunk_id, 424242}, tokens[2] = {-1, -1};
    assert_true(store_chunk_tokens_cheap(st));
    assert_int_equal(store_chunk_tokens(st, want_ids, 2, tokens, &err), RAGD_OK);
    assert_int_equal(tokens[0], 5);
    assert_int_equal(tokens[1], 0);
    const store_ops *ops = st->ops;
    store_ops without = *ops;
    without.chunk_tokens = NULL;
    st->ops = &without;
    tokens[0] = tokens[1] = -1;
    assert_false(store_chunk_tokens_cheap(st));
    assert_int_equal(store_chunk_tokens(st, want_ids, 2, tokens, &err), RAGD_OK);
    assert_int_equal(tokens[0], 5);
    assert_int_equal(tokens[1], 0);
    st->ops = ops;

    /* a delete that commits takes the vector with it */
    assert_int_equal(store_begin(st, &err), RAGD_OK);
    assert_int_equal(store_doc_delete(st, doc_id, &removed, &err), RAGD_OK);
    assert_int_equal(store_commit(st, &err), RAGD_OK);
    assert_int_equal(store_vector_count(st), 0);
    assert_int_equal(store_flush(st, &err), RAGD_OK);
    store_close(st);
    cfg_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sqlite_memory_statistics_off, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_prefix_scoping, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_generation, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_read_scope, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reader_hold, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rollback_leaves_nothing, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_doc_delete_cascades, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_model_mismatch, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_readonly, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_persists, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_readers, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_embedding, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_schema_1_migrated, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_counts_maintained, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_fts_bounded_rare_terms, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_fts_bounded_common_terms, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_fts_terms_common_estimate, setup,
                                        store_fixture_teardown),
        cmocka_unit_test(test_terms_cache),
        cmocka_unit_test(test_fts_tokens_match_fts5),
        cmocka_unit_test_setup_teardown(test_fts_terms_follow_generation, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_fts_rank_equals_bm25, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_fts_rank_bounded_equals_bm25, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_chunk_tokens, setup, store_fixture_teardown),
        cmocka_unit_test(test_chunk_tokens_cache),
        cmocka_unit_test_setup_teardown(test_schema_2_migrated, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_fts_rows_per_transaction, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_wal_checkpoint_interval, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_writer_cache_bounded, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_fts_merge_settings, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_embeddings_layouts, setup, store_fixture_teardown),
        cmocka_unit_test(test_backend_table),
        cmocka_unit_test_setup_teardown(test_interface_faiss_commit, setup, store_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
