/* SPDX-License-Identifier: MIT */
/*
 * test_store_support.h - helpers shared by the unit tests of the SQLite store (test_store.c,
 * test_recompute.c, test_fts_external.c): a fixture holding a fresh directory and the store
 * opened in it, raw SQLite access to the store's file behind the store's back, keyword hits. Header-only, as test_support.h.
 * Include after <cmocka.h>, <sqlite3.h> and "ragd/store.h".
 */
#ifndef RAGD_TEST_STORE_SUPPORT_H
#define RAGD_TEST_STORE_SUPPORT_H

#include "test_support.h"

typedef struct fixture {
    char dir[256];
    store_db *db;
} fixture;

/* cmocka setup: a fixture with a new directory $TMPDIR/ragd-<name>-XXXXXX and no store yet.
 * Returns: 0, or -1. */
static inline int store_fixture_setup(void **state, const char *name)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL) return -1;
    if (test_tmpdir_make(f->dir, sizeof f->dir, name) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

/* cmocka teardown: closes the fixture's store (if opened) and removes its directory. */
static inline int store_fixture_teardown(void **state)
{
    fixture *f = *state;
    store_db_close(f->db);
    int rc = test_tree_remove(f->dir);
    free(f);
    return rc;
}

/* Runs sql with a raw connection on the store's file (outside the store's API). */
static inline void raw_exec(const char *dir, const char *sql)
{
    char path[300];
    snprintf(path, sizeof path, "%s/ragd.sqlite3", dir);
    sqlite3 *raw = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
}

/* Reads one integer with a raw connection (the store's file, outside the store's API). */
static inline int64_t raw_int(const char *dir, const char *sql)
{
    char path[300];
    snprintf(path, sizeof path, "%s/ragd.sqlite3", dir);
    sqlite3 *raw = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(raw, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(raw);
    return v;
}

/* Keyword hits of match (an FTS5 expression), at most 16. */
static inline size_t fts_hits(store_db *db, const char *match)
{
    int64_t ids[16];
    double scores[16];
    size_t n = 0;
    ragd_err err = {0};
    assert_int_equal(store_db_fts_search(db, match, 16, ids, scores, &n, &err), RAGD_OK);
    return n;
}

#endif
