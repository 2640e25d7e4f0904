/* SPDX-License-Identifier: MIT */
/*
 * store_chunk_tokens.c - the chunks' token counts held in memory, for the hybrid request's length
 * pivot (store_chunk_tokens: the 50 vector candidates' `tokens`). Read from SQLite they cost a
 * B-tree seek each, ~0.2 ms per hybrid request at 100k chunks (bench/NOTES.md, session 5 part A).
 *
 * A chunk row is never updated and chunk ids are AUTOINCREMENT, never handed out again (a store
 * reset keeps sqlite_sequence; a rolled-back insert was never visible to a reader), so the count
 * read once for an id stays true for as long as the store exists: entries are filled as readers
 * read them from committed rows and never invalidated. A deleted chunk's entry stays; no search
 * returns its id again.
 *
 * Layout: 2 bytes per id (count + 1; 0 = unknown) in blocks of 65536 ids allocated on first use,
 * under a fixed top table covering ids below 2^28; slots and block pointers are atomics, so
 * readers never lock. Memory follows the id ranges the searches touch: 128 KiB per block.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "store_chunk_tokens_int.h"

#define BLOCK_BITS 16
#define BLOCK_SLOTS ((int64_t)1 << BLOCK_BITS)
#define TOP_BLOCKS 4096 /* ids below 2^28 */

struct store_chunk_tokens_cache {
    _Atomic(_Atomic uint16_t *) blocks[TOP_BLOCKS];
};

store_chunk_tokens_cache *store_chunk_tokens_cache_new(void)
{
    store_chunk_tokens_cache *c = malloc(sizeof *c);
    if (c == NULL) return NULL;
    for (size_t i = 0; i < TOP_BLOCKS; i++) atomic_init(&c->blocks[i], NULL);
    return c;
}

void store_chunk_tokens_cache_free(store_chunk_tokens_cache *c)
{
    if (c == NULL) return;
    for (size_t i = 0; i < TOP_BLOCKS; i++) free((void *)atomic_load(&c->blocks[i]));
    free(c);
}

int64_t store_chunk_tokens_cache_get(store_chunk_tokens_cache *c, int64_t id)
{
    if (c == NULL || id < 0 || id >= TOP_BLOCKS * BLOCK_SLOTS) return -1;
    _Atomic uint16_t *b = atomic_load_explicit(&c->blocks[id >> BLOCK_BITS], memory_order_acquire);
    if (b == NULL) return -1;
    uint16_t v = atomic_load_explicit(&b[id & (BLOCK_SLOTS - 1)], memory_order_relaxed);
    return v == 0 ? -1 : (int64_t)v - 1;
}

void store_chunk_tokens_cache_put(store_chunk_tokens_cache *c, int64_t id, int64_t tokens)
{
    if (c == NULL || id < 0 || id >= TOP_BLOCKS * BLOCK_SLOTS || tokens < 0 ||
        tokens >= UINT16_MAX)
        return;
    _Atomic(_Atomic uint16_t *) *top = &c->blocks[id >> BLOCK_BITS];
    _Atomic uint16_t *b = atomic_load_explicit(top, memory_order_acquire);
    if (b == NULL) {
        _Atomic uint16_t *fresh = calloc((size_t)BLOCK_SLOTS, sizeof *fresh); /* zero: unknown */
        if (fresh == NULL) return;
        _Atomic uint16_t *expected = NULL;
        if (atomic_compare_exchange_strong_explicit(top, &expected, fresh, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            b = fresh;
        } else { /* another thread's block came first */
            free((void *)fresh);
            b = expected;
        }
    }
    atomic_store_explicit(&b[id & (BLOCK_SLOTS - 1)], (uint16_t)(tokens + 1),
                          memory_order_relaxed);
}
