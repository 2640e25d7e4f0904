/* SPDX-License-Identifier: MIT */
/*
 * store_fts_rank.c - ragd's BM25 for the keyword index: an FTS5 auxiliary function
 * (ragd_bm25) that scores a row exactly as FTS5's bm25() does (same formula, k1 1.2, b 0.75,
 * column weights, IDF floor), without bm25()'s two per-query costs measured on the default
 * hybrid request (bench/NOTES.md, session 4 part A):
 *  - the IDFs: bm25() walks the whole doclist of every phrase of the query (xQueryPhrase) on
 *    every query to count the rows holding it; ragd already counts them (src/store_terms.c,
 *    cached per store generation) and passes the counts in, bound as a pointer;
 *  - the row lengths: bm25() reads each matching row's size from chunks_fts_docsize, one B-tree
 *    seek through a statement per row (the largest share of the keyword side's CPU); ragd keeps
 *    the lengths of every chunk in memory (two bytes per chunk id), read once and then only for
 *    chunks added since (ids are AUTOINCREMENT: new chunks have higher ids), all over again
 *    when a document's title changed (a trigger on the writer counts title changes in meta
 *    'fts_titles', in the very transaction that makes them).
 * Whatever the cache cannot answer (a row outside it, a length over 65534 tokens, a reader on an
 * older snapshot, an expression whose phrases ragd did not count) is asked of FTS5, as bm25()
 * does: the scores stay bm25()'s. The unit test compares both, score for score.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store_fts_rank_int.h"
#include "store_fts_tokens_int.h"

#define RANK_POINTER_TYPE "ragd_fts_rank_query"
#define LENGTH_UNKNOWN UINT16_MAX

struct store_fts_lengths {
    pthread_rwlock_t lock;
    uint16_t *len; /* len[row - lo] for rows lo..hi; LENGTH_UNKNOWN: ask FTS5 */
    int64_t lo, hi; /* hi < lo: no slots */
    int64_t generation, titles; /* the snapshot described; generation -1: none */
};

/* ---- the auxiliary function ----------------------------------------------------------------- */

/* xQueryPhrase's callback: counts the rows (as bm25()'s fts5CountCb). */
static int count_rows(const Fts5ExtensionApi *api, Fts5Context *fts, void *user)
{
    (void)api;
    (void)fts;
    (*(int64_t *)user)++;
    return SQLITE_OK;
}

/* The query's constants, on its first row: FTS5's mean row length and each phrase's IDF, from
 * q->df when it names the expression's phrases, else counted through FTS5 as bm25() does.
 * Returns: SQLITE_OK or an SQLite error code. */
static int rank_prepare(const Fts5ExtensionApi *api, Fts5Context *fts, store_fts_rank_query *q)
{
    int np = api->xPhraseCount(fts);
    q->nphrase = np > 0 ? (size_t)np : 0;
    q->idf = calloc(q->nphrase * 2 + 1, sizeof *q->idf);
    if (q->idf == NULL) return SQLITE_NOMEM;
    sqlite3_int64 rows = 0, tokens = 0;
    int rc = api->xRowCount(fts, &rows);
    if (rc == SQLITE_OK) rc = api->xColumnTotalSize(fts, -1, &tokens);
    if (rc == SQLITE_OK) q->avgdl = (double)tokens / (double)rows;
    const int64_t *df = q->df != NULL && q->phrases == q->nphrase ? q->df : NULL;
    for (size_t i = 0; rc == SQLITE_OK && i < q->nphrase; i++) {
        int64_t hits = 0;
        if (df != NULL) hits = df[i];
        else rc = api->xQueryPhrase(fts, (int)i, &hits, count_rows);
        /* bm25()'s IDF, floored at 1e-6 for a phrase in more than half the rows */
        double idf = log(((double)rows - (double)hits + 0.5) / ((double)hits + 0.5));
        q->idf[i] = idf <= 0.0 ? 1e-6 : idf;
    }
    q->ready = 1;
    return rc;
}

static void rank_function(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx,
                          int nval, sqlite3_value **val)
{
    store_fts_rank_query *q = nval > 0 ? sqlite3_value_pointer(val[0], RANK_POINTER_TYPE) : NULL;
    if (q == NULL) {
        sqlite3_result_error(ctx, STORE_FTS_RANK_FUNCTION ": no query bound", -1);
        return;
    }
    int rc = SQLITE_OK;
    if (!q->ready && (rc = rank_prepare(api, fts, q)) != SQLITE_OK) q->failed = rc;
    if (q->failed) {
        sqlite3_result_error_code(ctx, q->failed);
        return;
    }
    const double k1 = 1.2, b = 0.75;
    double *freq = q->idf + q->nphrase;
    memset(freq, 0, q->nphrase * sizeof *freq);
    int ninst = 0;
    rc = api->xInstCount(fts, &ninst);
    for (int i = 0; rc == SQLITE_OK && i < ninst; i++) {
        int phrase = 0, column = 0, offset = 0;
        rc = api->xInst(fts, i, &phrase, &column, &offset);
        if (rc == SQLITE_OK && phrase >= 0 && (size_t)phrase < q->nphrase)
            freq[phrase] += column >= 0 && column < STORE_FTS_RANK_COLUMNS ? q->weights[column]
                                                                           : 1.0;
    }
    int length = q->lengths ? store_fts_lengths_get(q->lengths, api->xRowid(fts)) : -1;
    if (rc == SQLITE_OK && length < 0) rc = api->xColumnSize(fts, -1, &length);
    if (rc != SQLITE_OK) {
        sqlite3_result_error_code(ctx, rc);
        return;
    }
    double d = (double)length, score = 0.0;
    for (size_t i = 0; i < q->nphrase; i++)
        score += q->idf[i] * ((freq[i] * (k1 + 1.0)) / (freq[i] + k1 * (1 - b + b * d / q->avgdl)));
    sqlite3_result_double(ctx, -1.0 * score); /* bm25()'s sign: lower is better */
}

int store_fts_rank_register(sqlite3 *db)
{
    fts5_api *api = store_fts_api(db);
    if (api == NULL) return -1;
    return api->xCreateFunction(api, STORE_FTS_RANK_FUNCTION, NULL, rank_function, NULL) ==
                   SQLITE_OK
               ? 0
               : -1;
}

int store_fts_rank_bind(sqlite3_stmt *st, int param, store_fts_rank_query *q)
{
    return sqlite3_bind_pointer(st, param, q, RANK_POINTER_TYPE, NULL);
}

void store_fts_rank_query_done(store_fts_rank_query *q)
{
    free(q->idf);
    q->idf = NULL;
    q->ready = 0;
}

/* ---- chunk lengths -------------------------------------------------------------------------- */

store_fts_lengths *store_fts_lengths_new(void)
{
    store_fts_lengths *l = calloc(1, sizeof *l);
    if (l == NULL) return NULL;
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* updates are rare and short; a stream of ranking queries must not starve them */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int bad = pthread_rwlock_init(&l->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (bad) {
        free(l);
        return NULL;
    }
    l->lo = 1;
    l->hi = 0;
    l->generation = -1;
    return l;
}

void store_fts_lengths_free(store_fts_lengths *l)
{
    if (l == NULL) return;
    pthread_rwlock_destroy(&l->lock);
    free(l->len);
    free(l);
}

/* Returns: the sum of the varints (SQLite's encoding, as FTS5 writes %_docsize.sz: one per
 * column) in blob[0..n), or LENGTH_UNKNOWN when it does not fit or the blob is malformed. */
static uint16_t docsize_sum(const unsigned char *blob, int n)
{
    uint64_t sum = 0;
    int i = 0;
    while (i < n) {
        uint64_t v = 0;
        int k = 0;
        for (;; k++) {
            if (i + k >= n) return LENGTH_UNKNOWN;
            if (k == 8) {
                v = (v << 8) | blob[i + k];
                break;
            }
            v = (v << 7) | (blob[i + k] & 0x7f);
            if (!(blob[i + k] & 0x80)) break;
        }
        i += k + 1;
        sum += v;
        if (sum >= LENGTH_UNKNOWN) return LENGTH_UNKNOWN;
    }
    return (uint16_t)sum;
}

/* Runs sql (one row of two integers, NULL as 0) on db. Returns: 0 and *a, *b, or -1. */
static int query_pair(sqlite3 *db, const char *sql, int64_t *a, int64_t *b)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    int code = sqlite3_step(st);
    if (code == SQLITE_ROW) {
        *a = sqlite3_column_int64(st, 0);
        if (b != NULL) *b = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return code == SQLITE_ROW ? 0 : -1;
}

/* Reads the lengths of rows above `after` (all rows: after < lo) into l, growing or (all rows)
 * replacing its slots. Caller holds the write lock. Returns: 0, or -1 (l is then emptied). */
static int lengths_load(store_fts_lengths *l, sqlite3 *db, int64_t after, int all)
{
    int64_t lo = 0, hi = 0;
    if (query_pair(db, "SELECT coalesce(min(id), 1), coalesce(max(id), 0) FROM "
                       "chunks_fts_docsize", &lo, &hi) != 0)
        goto fail;
    if (!all) lo = l->lo;
    if (hi >= lo) {
        size_t old = all || l->hi < l->lo ? 0 : (size_t)(l->hi - l->lo + 1);
        size_t slots = (size_t)(hi - lo + 1);
        uint16_t *len = realloc(all ? NULL : l->len, slots * sizeof *len);
        if (len == NULL) goto fail;
        if (all) free(l->len);
        for (size_t i = old; i < slots; i++) len[i] = LENGTH_UNKNOWN;
        l->len = len;
    }
    l->lo = lo;
    l->hi = hi;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT id, sz FROM chunks_fts_docsize WHERE id > ?1", -1, &st,
                           NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_int64(st, 1, all ? INT64_MIN : after);
    int code;
    while ((code = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        if (id < l->lo || id > l->hi) continue; /* cannot happen in one snapshot */
        const unsigned char *sz = sqlite3_column_blob(st, 1);
        l->len[id - l->lo] = sz ? docsize_sum(sz, sqlite3_column_bytes(st, 1)) : LENGTH_UNKNOWN;
    }
    sqlite3_finalize(st);
    if (code == SQLITE_DONE) return 0;
fail:
    free(l->len);
    l->len = NULL;
    l->lo = 1;
    l->hi = 0;
    return -1;
}

int store_fts_lengths_hold(store_fts_lengths *l, sqlite3 *db, int64_t generation, int64_t titles,
                           const char *rows_sql)
{
    if (l == NULL || generation < 0) return 0;
    pthread_rwlock_rdlock(&l->lock);
    if (l->generation == generation && l->titles == titles) return 1;
    int newer = generation > l->generation;
    pthread_rwlock_unlock(&l->lock);
    if (!newer) return 0; /* an older snapshot than the cache's: FTS5 answers */
    pthread_rwlock_wrlock(&l->lock);
    if (generation > l->generation) {
        int64_t rows = -1;
        if (rows_sql != NULL && query_pair(db, rows_sql, &rows, NULL) != 0) rows = -1;
        /* Everything again: the first time, after a title change (rows of existing chunks
         * changed length), or when deletes left the slots mostly empty (ids spread far wider
         * than the chunks that live). */
        int all = l->generation < 0 || titles != l->titles || l->hi < l->lo ||
                  (rows >= 0 && l->hi - l->lo + 1 > 4 * rows + 65536);
        int bad = lengths_load(l, db, l->hi, all);
        l->generation = bad ? -1 : generation;
        l->titles = titles;
    }
    pthread_rwlock_unlock(&l->lock);
    pthread_rwlock_rdlock(&l->lock);
    if (l->generation == generation && l->titles == titles) return 1;
    pthread_rwlock_unlock(&l->lock);
    return 0;
}

void store_fts_lengths_release(store_fts_lengths *l)
{
    pthread_rwlock_unlock(&l->lock);
}

int store_fts_lengths_get(const store_fts_lengths *l, int64_t row)
{
    if (row < l->lo || row > l->hi) return -1;
    uint16_t v = l->len[row - l->lo];
    return v == LENGTH_UNKNOWN ? -1 : (int)v;
}

size_t store_fts_lengths_slots(store_fts_lengths *l)
{
    if (l == NULL) return 0;
    pthread_rwlock_rdlock(&l->lock);
    size_t n = l->hi < l->lo ? 0 : (size_t)(l->hi - l->lo + 1);
    pthread_rwlock_unlock(&l->lock);
    return n;
}
