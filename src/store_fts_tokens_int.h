/* SPDX-License-Identifier: MIT */
/*
 * store_fts_tokens_int.h - query terms matched against chunk text in memory with the keyword
 * index's own FTS5 tokenizer (src/store_fts_tokens.c), private to the SQLite store
 * (src/store_db.c) and its unit test.
 */
#ifndef RAGD_STORE_FTS_TOKENS_INT_H
#define RAGD_STORE_FTS_TOKENS_INT_H

#include <stddef.h>

#include <sqlite3.h>

#define STORE_FTS_COLS_MAX 4

typedef struct store_fts_tokenizer store_fts_tokenizer;

/* Returns: db's fts5_api (borrowed: lives as long as db), or NULL when SQLite has no FTS5. */
fts5_api *store_fts_api(sqlite3 *db);

/* Returns: new tokenizer of chunks_fts ('porter unicode61 remove_diacritics 2') taken from db's
 * FTS5 (free with store_fts_tokenizer_free before db closes), or NULL when db has no FTS5 or
 * on OOM. Use it from one thread at a time. */
store_fts_tokenizer *store_fts_tokenizer_new(sqlite3 *db);
/* Frees t; NULL is a no-op. */
void store_fts_tokenizer_free(store_fts_tokenizer *t);

/* For each of the n FTS5 phrases (a quoted phrase "a b", or a group of them ("a" OR "a b"), as
 * retrieve_fts_term() writes them), sets in[i] to 1 when it occurs in one of the ncols column
 * texts (NULL: empty) as FTS5 MATCH would find it, else 0. Returns: 0, or -1 on OOM or a
 * tokenizer error (in is then undefined). */
int store_fts_phrases_in(store_fts_tokenizer *t, const char *const *phrases, size_t n,
                         const char *const *cols, size_t ncols, int *in);

#endif
