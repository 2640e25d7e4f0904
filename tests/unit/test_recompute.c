/* SPDX-License-Identifier: MIT */
/*
 * test_recompute.c - the local embedder's vectors recomputed, not stored (src/store_db.c
 * embeddings section, src/embed_provider.c embed_chunk_recompute): a local-model row keeps its key
 * but no bytes and reads back as the vector ingest computed; a remote model's row keeps its bytes;
 * a row whose chunk is gone is reported as unstored; a chunk text that does not hash to its
 * checksum, or a zero-length row of a model that cannot recompute, is an error, never a vector; a
 * schema 4 store whose local rows hold bytes is migrated and read as before, searched and rebuilt
 * through the faiss backend. Each test works in its own mkdtemp directory.
 */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
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
#include "ragd/embed.h"
#include "ragd/store.h"
#include "ragd/store_faiss.h"
#include "ragd/util.h"

#include "test_store_support.h"

#define DIMS 64
#define HEADING "Guide > Valves"

static const char *const texts[] = {
    "The relief valve opens at four bar and closes again below three.",
    "Lever positions are counted from the hinge side of the panel.",
    "Replace the gasket whenever the valve body has been opened.",
};
#define NTEXTS (sizeof texts / sizeof texts[0])

static int setup(void **state)
{
    return store_fixture_setup(state, "recompute");
}


static store_db *open_db(fixture *f, const char *model)
{
    ragd_err err = {0};
    assert_int_equal(store_db_open(f->dir, 0, &f->db, &err), RAGD_OK);
    assert_int_equal(store_db_model_check(f->db, model, DIMS, &err), RAGD_OK);
    return f->db;
}

/* The embedding input of texts[i] and its checksum, as ingest makes them. */
static void input_of(size_t i, char sum[UTIL_SHA256_HEX_LEN + 1], float *vec)
{
    char *in = embed_chunk_input(HEADING, texts[i], strlen(texts[i]));
    assert_non_null(in);
    util_sha256_hex(in, strlen(in), sum);
    if (vec != NULL) embed_local_vector(in, strlen(in), DIMS, vec);
    free(in);
}

/* Stores texts[i] as chunk i of doc (and, with_embedding, its embedding first, as ingest does).
 * Returns: the chunk id. */
static int64_t put_text(store_db *db, int64_t doc, size_t i, const char *model, int with_embedding)
{
    char sum[UTIL_SHA256_HEX_LEN + 1];
    float vec[DIMS];
    input_of(i, sum, vec);
    ragd_err err = {0};
    if (with_embedding)
        assert_int_equal(store_db_embedding_put(db, sum, model, DIMS, vec, &err), RAGD_OK);
    store_chunk_in c = {.ordinal = (int)i,
                        .text = texts[i],
                        .text_len = strlen(texts[i]),
                        .heading = HEADING,
                        .tokens = 12,
                        .checksum = sum};
    int64_t id = 0;
    assert_int_equal(store_db_chunk_put(db, doc, &c, &id, &err), RAGD_OK);
    return id;
}

static int64_t put_doc(store_db *db, const char *path)
{
    store_doc d = {.path = (char *)path, .source = (char *)path, .title = "Valves",
                   .checksum = "d1", .tags_json = "[]", .metadata_json = "{}"};
    int64_t id = 0;
    ragd_err err = {0};
    assert_int_equal(store_db_doc_put(db, &d, &id, &err), RAGD_OK);
    return id;
}

typedef struct collected {
    int64_t ids[NTEXTS];
    float vecs[NTEXTS][DIMS];
    size_t n;
} collected;

static int collect(void *ctx, int64_t chunk_id, const float *vec, int dims)
{
    collected *c = ctx;
    assert_int_equal(dims, DIMS);
    assert_true(c->n < NTEXTS);
    c->ids[c->n] = chunk_id;
    memcpy(c->vecs[c->n], vec, sizeof(float) * DIMS);
    c->n++;
    return 0;
}

static void test_local_rows_hold_no_bytes(void **state)
{
    fixture *f = *state;
    store_db *db = open_db(f, RAGD_EMBED_LOCAL_MODEL);
    ragd_err err = {0};
    int64_t doc = put_doc(db, "/d/valves.md");
    int64_t ids[NTEXTS];
    for (size_t i = 0; i < NTEXTS; i++) ids[i] = put_text(db, doc, i, RAGD_EMBED_LOCAL_MODEL, 1);
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM embeddings"), (int64_t)NTEXTS);
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM embeddings WHERE length(vector) = 0"),
                     (int64_t)NTEXTS);
    assert_int_equal(raw_int(f->dir, "SELECT value FROM meta WHERE key = 'schema_version'"), 6);

    for (size_t i = 0; i < NTEXTS; i++) {
        char sum[UTIL_SHA256_HEX_LEN + 1];
        float want[DIMS], got[DIMS];
        input_of(i, sum, want);
        int found = 0;
        assert_int_equal(store_db_embedding_get(db, sum, RAGD_EMBED_LOCAL_MODEL, DIMS, got,
                                                &found, &err), RAGD_OK);
        assert_int_equal(found, 1);
        assert_memory_equal(got, want, sizeof want);
    }
    collected c = {0};
    size_t missing = 99;
    assert_int_equal(store_db_vectors_each(db, RAGD_EMBED_LOCAL_MODEL, DIMS, collect, &c,
                                           &missing, &err), RAGD_OK);
    assert_int_equal(c.n, NTEXTS);
    assert_int_equal(missing, 0);
    for (size_t i = 0; i < NTEXTS; i++) {
        float want[DIMS];
        char sum[UTIL_SHA256_HEX_LEN + 1];
        input_of(i, sum, want);
        assert_int_equal(c.ids[i], ids[i]);
        assert_memory_equal(c.vecs[i], want, sizeof want);
    }
}

static void test_remote_rows_keep_bytes(void **state)
{
    fixture *f = *state;
    store_db *db = open_db(f, "text-embedding-3-small");
    int64_t doc = put_doc(db, "/d/valves.md");
    for (size_t i = 0; i < NTEXTS; i++) put_text(db, doc, i, "text-embedding-3-small", 1);
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM embeddings WHERE length(vector) = 256"),
                     (int64_t)NTEXTS);
    assert_null(embed_recompute_for("text-embedding-3-small"));
    assert_non_null(embed_recompute_for(RAGD_EMBED_LOCAL_MODEL));
    /* out NULL: known (1), nothing decoded */
    char sum[UTIL_SHA256_HEX_LEN + 1];
    input_of(0, sum, NULL);
    int found = -1;
    ragd_err err = {0};
    assert_int_equal(store_db_embedding_get(db, sum, "text-embedding-3-small", DIMS, NULL, &found,
                                            &err), RAGD_OK);
    assert_int_equal(found, 1);
}

/* A row kept after its chunks went (a reset): known, not filled; the caller's text recomputes
 * it. */
static void test_row_without_chunk_is_unstored(void **state)
{
    fixture *f = *state;
    store_db *db = open_db(f, RAGD_EMBED_LOCAL_MODEL);
    ragd_err err = {0};
    char sum[UTIL_SHA256_HEX_LEN + 1];
    float want[DIMS], got[DIMS];
    input_of(1, sum, want);
    assert_int_equal(store_db_embedding_put(db, sum, RAGD_EMBED_LOCAL_MODEL, DIMS, want, &err),
                     RAGD_OK);
    int found = 0;
    for (int k = 0; k < DIMS; k++) got[k] = -7.0f;
    assert_int_equal(store_db_embedding_get(db, sum, RAGD_EMBED_LOCAL_MODEL, DIMS, got, &found,
                                            &err), RAGD_OK);
    assert_int_equal(found, RAGD_EMBEDDING_UNSTORED);
    assert_true(got[0] == -7.0f); /* not filled */
    assert_int_equal(embed_chunk_recompute(RAGD_EMBED_LOCAL_MODEL, DIMS, sum, HEADING, texts[1],
                                           strlen(texts[1]), got, &err), RAGD_OK);
    assert_memory_equal(got, want, sizeof want);
    /* another text under that checksum is refused */
    assert_int_equal(embed_chunk_recompute(RAGD_EMBED_LOCAL_MODEL, DIMS, sum, HEADING, texts[2],
                                           strlen(texts[2]), got, &err), RAGD_ERR_STORE);
    assert_non_null(strstr(err.msg, "hashes to"));
}

/* A store with one document holding texts[0] as a chunk with its (local) embedding, whose
 * stored text was then overwritten: it no longer hashes to its checksum. Returns: the store,
 * reopened (owned by f). */
static store_db *one_damaged_chunk(fixture *f)
{
    store_db *db = open_db(f, RAGD_EMBED_LOCAL_MODEL);
    put_text(db, put_doc(db, "/d/valves.md"), 0, RAGD_EMBED_LOCAL_MODEL, 1);
    store_db_close(db);
    f->db = NULL;
    raw_exec(f->dir, "UPDATE chunks SET text = 'something else entirely'");
    return open_db(f, RAGD_EMBED_LOCAL_MODEL);
}

/* A chunk text that no longer matches its checksum, and a zero-length row of a model that
 * cannot recompute: errors, never a vector. */
static void test_mismatch_and_unrecomputable_are_errors(void **state)
{
    fixture *f = *state;
    store_db *db = one_damaged_chunk(f);
    ragd_err err = {0};
    char sum[UTIL_SHA256_HEX_LEN + 1];
    float got[DIMS];
    input_of(0, sum, NULL);
    int found = -1;
    assert_int_equal(store_db_embedding_get(db, sum, RAGD_EMBED_LOCAL_MODEL, DIMS, got, &found,
                                            &err), RAGD_ERR_STORE);
    assert_non_null(strstr(err.msg, "hashes to"));
    assert_int_equal(found, -1); /* untouched on an error */
    ragd_err_clear(&err);
    collected c = {0};
    assert_int_equal(store_db_vectors_each(db, RAGD_EMBED_LOCAL_MODEL, DIMS, collect, &c, NULL,
                                           &err), RAGD_ERR_STORE);
    assert_int_equal(c.n, 0);
    store_db_close(db);
    f->db = NULL;

    /* the same zero-length row under a model whose vectors are stored: damage */
    raw_exec(f->dir, "UPDATE embeddings SET model = 'test-model';"
                     "UPDATE meta SET value = 'test-model' WHERE key = 'embed_model'");
    ragd_err_clear(&err);
    assert_int_equal(store_db_open(f->dir, 0, &f->db, &err), RAGD_OK);
    c.n = 0;
    assert_int_equal(store_db_vectors_each(f->db, "test-model", DIMS, collect, &c, NULL, &err),
                     RAGD_ERR_STORE);
    assert_non_null(strstr(err.msg, "cannot recompute"));
    assert_int_equal(c.n, 0);
}

/* A store written before vectors were recomputed (schema 4, local rows with bytes) opens,
 * migrates to schema 5, reads its bytes as before (not a recompute: the stored vectors here differ
 * from the recomputed ones), rebuilds its index from them and searches; rows added afterwards are
 * stored without bytes beside the old ones. */
static void test_schema_4_bytes_read_as_before(void **state)
{
    fixture *f = *state;
    store_db *db = open_db(f, RAGD_EMBED_LOCAL_MODEL);
    int64_t doc = put_doc(db, "/d/valves.md");
    int64_t first = put_text(db, doc, 0, RAGD_EMBED_LOCAL_MODEL, 0);
    store_db_close(db);
    f->db = NULL;
    /* what a schema 4 ragd wrote: 4 KiB of float32 for the local model; a unit vector e0 */
    char sum[UTIL_SHA256_HEX_LEN + 1];
    input_of(0, sum, NULL);
    char sql[600];
    snprintf(sql, sizeof sql,
             "INSERT INTO embeddings(checksum, model, dims, vector, created_at) VALUES "
             "('%s', '%s', %d, CAST(x'0000803f' || zeroblob(%d) AS BLOB), 1);"
             "UPDATE meta SET value = '4' WHERE key = 'schema_version';",
             sum, RAGD_EMBED_LOCAL_MODEL, DIMS, (DIMS - 1) * 4);
    raw_exec(f->dir, sql);
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM embeddings WHERE typeof(vector) = "
                                     "'blob' AND length(vector) = 256"), 1);

    ragd_err err = {0};
    ragd_cfg cfg;
    assert_int_equal(cfg_defaults_set(&cfg, &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&cfg, "store", "data_dir", f->dir, "test", &err), RAGD_OK);
    assert_int_equal(cfg_key_set(&cfg, "store", "index_factory", "Flat", "test", &err), RAGD_OK);
    store *st = NULL;
    assert_int_equal(store_open(&cfg, 0, &st, &err), RAGD_OK);
    assert_int_equal(raw_int(f->dir, "SELECT value FROM meta WHERE key = 'schema_version'"), 6);
    assert_int_equal(store_model_check(st, RAGD_EMBED_LOCAL_MODEL, DIMS, &err), RAGD_OK);
    assert_int_equal(store_vectors_open(st, RAGD_EMBED_LOCAL_MODEL, DIMS, 0, &err), RAGD_OK);
    assert_int_equal(store_vector_count(st), 1);
    float e0[DIMS] = {1.0f};
    float got[DIMS];
    int found = 0;
    assert_int_equal(store_embedding_get(st, sum, RAGD_EMBED_LOCAL_MODEL, DIMS, got, &found, &err),
                     RAGD_OK);
    assert_int_equal(found, 1);
    assert_memory_equal(got, e0, sizeof e0);
    int64_t ids[2];
    float scores[2];
    size_t n = 0;
    assert_int_equal(store_vector_search(st, NULL, e0, 2, ids, scores, &n, &err), RAGD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], first);
    assert_true(scores[0] > 0.999f); /* the stored e0, not the recomputed text vector */

    /* a new chunk after the migration: stored without bytes, searchable, beside the old row */
    char sum2[UTIL_SHA256_HEX_LEN + 1];
    float v2[DIMS];
    input_of(2, sum2, v2);
    store_chunk_in in = {.ordinal = 1, .text = texts[2], .text_len = strlen(texts[2]),
                         .heading = HEADING, .checksum = sum2};
    int64_t second = 0;
    assert_int_equal(store_begin(st, &err), RAGD_OK);
    assert_int_equal(store_embedding_put(st, sum2, RAGD_EMBED_LOCAL_MODEL, DIMS, v2, &err),
                     RAGD_OK);
    assert_int_equal(store_chunk_put(st, doc, &in, v2, DIMS, &second, &err), RAGD_OK);
    assert_int_equal(store_commit(st, &err), RAGD_OK);
    assert_int_equal(store_flush(st, &err), RAGD_OK);
    store_close(st);
    assert_int_equal(raw_int(f->dir, "SELECT count(*) FROM embeddings WHERE length(vector) = 0"),
                     1);

    /* the index file gone: the rebuild reads the old bytes and recomputes the new row */
    char path[400];
    snprintf(path, sizeof path, "%s/index.faiss", f->dir);
    assert_int_equal(unlink(path), 0);
    st = NULL;
    assert_int_equal(store_open(&cfg, 0, &st, &err), RAGD_OK);
    assert_int_equal(store_model_check(st, RAGD_EMBED_LOCAL_MODEL, DIMS, &err), RAGD_OK);
    assert_int_equal(store_vectors_open(st, RAGD_EMBED_LOCAL_MODEL, DIMS, 0, &err), RAGD_OK);
    assert_int_equal(store_vector_count(st), 2);
    assert_int_equal(store_vector_search(st, NULL, e0, 1, ids, scores, &n, &err), RAGD_OK);
    assert_int_equal(ids[0], first);
    assert_int_equal(store_vector_search(st, NULL, v2, 1, ids, scores, &n, &err), RAGD_OK);
    assert_int_equal(ids[0], second);
    assert_true(scores[0] > 0.999f);
    store_close(st);
    cfg_free(&cfg);
}

/* out NULL: only whether the embedding is known; nothing is decoded, nothing is read back or
 * recomputed (a chunk text that no longer matches is not even looked at). */
static void test_known_without_vector(void **state)
{
    fixture *f = *state;
    /* the stored text damaged: with out, an error (test_mismatch_and_unrecomputable_are_errors);
     * without, known, since nothing is read */
    store_db *db = one_damaged_chunk(f);
    ragd_err err = {0};
    char sum[UTIL_SHA256_HEX_LEN + 1], other[UTIL_SHA256_HEX_LEN + 1];
    input_of(0, sum, NULL);
    input_of(1, other, NULL);
    int found = -1;
    assert_int_equal(store_db_embedding_get(db, sum, RAGD_EMBED_LOCAL_MODEL, DIMS, NULL, &found,
                                            &err), RAGD_OK);
    assert_int_equal(found, RAGD_EMBEDDING_UNSTORED);
    found = -1;
    assert_int_equal(store_db_embedding_get(db, other, RAGD_EMBED_LOCAL_MODEL, DIMS, NULL, &found,
                                            &err), RAGD_OK);
    assert_int_equal(found, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_local_rows_hold_no_bytes, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_remote_rows_keep_bytes, setup, store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_row_without_chunk_is_unstored, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_mismatch_and_unrecomputable_are_errors, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_schema_4_bytes_read_as_before, setup,
                                        store_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_known_without_vector, setup, store_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
