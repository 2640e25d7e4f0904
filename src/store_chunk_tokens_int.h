/* SPDX-License-Identifier: MIT */
/*
 * store_chunk_tokens_int.h - the chunks' token counts held in memory (src/store_chunk_tokens.c)
 * for the hybrid request's length pivot (store_chunk_tokens). Private to the SQLite store
 * (src/store_db.c) and its unit test.
 */
#ifndef RAGD_STORE_CHUNK_TOKENS_INT_H
#define RAGD_STORE_CHUNK_TOKENS_INT_H

#include <stdint.h>

typedef struct store_chunk_tokens_cache store_chunk_tokens_cache;

/* Returns: new empty cache (free with store_chunk_tokens_cache_free), or NULL on OOM. */
store_chunk_tokens_cache *store_chunk_tokens_cache_new(void);
/* Frees c; NULL is a no-op. No other thread may use it then. */
void store_chunk_tokens_cache_free(store_chunk_tokens_cache *c);
/* Returns: chunk id's token count as recorded by store_chunk_tokens_cache_put, or -1 when c
 * does not know it (c NULL, never put, or out of c's range). Thread-safe, lock-free. */
int64_t store_chunk_tokens_cache_get(store_chunk_tokens_cache *c, int64_t id);
/* Records chunk id's token count as read from a committed chunk row. Counts c cannot hold (ids
 * past its range, counts of 65535 and more, negative) are left out. Thread-safe, lock-free. */
void store_chunk_tokens_cache_put(store_chunk_tokens_cache *c, int64_t id, int64_t tokens);

#endif
