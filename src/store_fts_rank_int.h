/* SPDX-License-Identifier: MIT */
/*
 * store_fts_rank_int.h - ragd's own BM25 for the keyword index (src/store_fts_rank.c): an FTS5
 * auxiliary function scoring exactly as FTS5's bm25() does, from phrase frequencies ragd already
 * counted and chunk lengths held in memory. Private to the SQLite store (src/store_db.c) and its
 * unit test.
 */
#ifndef RAGD_STORE_FTS_RANK_INT_H
#define RAGD_STORE_FTS_RANK_INT_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#define STORE_FTS_RANK_FUNCTION "ragd_bm25"  /* the auxiliary function's SQL name */
#define STORE_FTS_RANK_COLUMNS 3             /* chunks_fts: title, heading, text */

typedef struct store_fts_lengths store_fts_lengths;

/* One ranking query's input, bound (sqlite3_bind_pointer) as the second argument of
 * ragd_bm25(chunks_fts, ?). Caller-owned; lives until the statement is reset. */
typedef struct store_fts_rank_query {
    size_t phrases;        /* entries of df: the MATCH expression's phrases in FTS5's order */
    const int64_t *df;     /* rows matching each phrase alone, counted by the caller (exact); NULL:
                            * FTS5 counts them, as bm25() does */
    double weights[STORE_FTS_RANK_COLUMNS];
    const store_fts_lengths *lengths; /* rows' lengths (held with store_fts_lengths_hold), or NULL */
    /* filled by the function on the query's first row */
    int ready;
    int failed;    /* the first row found an error: every row reports it */
    double avgdl;  /* FTS5's mean row length */
    size_t nphrase;
    double *idf;   /* nphrase IDFs, then nphrase frequencies (one allocation, own: freed by
                    * store_fts_rank_query_done) */
} store_fts_rank_query;

/* Registers ragd_bm25 on db's FTS5. Returns: 0, or -1 when db has no FTS5 (then use bm25()). */
int store_fts_rank_register(sqlite3 *db);

/* Binds q as parameter param of st (the ragd_bm25 call's second argument). Returns: SQLite's
 * code. */
int store_fts_rank_bind(sqlite3_stmt *st, int param, store_fts_rank_query *q);

/* Releases what the function allocated into q (after its statement was reset). */
void store_fts_rank_query_done(store_fts_rank_query *q);

/* The chunks' lengths in tokens (FTS5's %_docsize, all columns summed), indexed by rowid, for
 * one store generation at a time. Thread-safe. Returns: new cache (free with
 * store_fts_lengths_free), or NULL on OOM. */
store_fts_lengths *store_fts_lengths_new(void);
/* Frees l; NULL is a no-op. */
void store_fts_lengths_free(store_fts_lengths *l);

/* Brings l to the snapshot of db's open read transaction, identified by (generation, titles:
 * meta 'fts_titles', the count of document title changes), and holds it for reading.
 * Rows added since the generation l holds are read incrementally (ids above the highest known:
 * chunk ids are AUTOINCREMENT); a title change, or ids spread over more than four times the
 * live chunks (rows_sql: a query of one row giving their number, or NULL), reloads
 * everything. A reader on an older snapshot than l's does not use it. l may be NULL.
 * Returns: 1 when l now describes this snapshot (release it with store_fts_lengths_release
 * after the query), else 0 (not held: rank without it). */
int store_fts_lengths_hold(store_fts_lengths *l, sqlite3 *db, int64_t generation, int64_t titles,
                           const char *rows_sql);
/* Ends a successful store_fts_lengths_hold. */
void store_fts_lengths_release(store_fts_lengths *l);
/* Returns: row's length in tokens, or -1 when l does not know it. l must be held. */
int store_fts_lengths_get(const store_fts_lengths *l, int64_t row);
/* The number of row slots l holds (memory: two bytes each); 0 when empty. */
size_t store_fts_lengths_slots(store_fts_lengths *l);

#endif
