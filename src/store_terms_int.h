/* SPDX-License-Identifier: MIT */
/*
 * store_terms_int.h - the keyword index's term statistics cache (src/store_terms.c), private to
 * the SQLite store (src/store_db.c) and its unit test.
 */
#ifndef RAGD_STORE_TERMS_INT_H
#define RAGD_STORE_TERMS_INT_H

#include <stddef.h>
#include <stdint.h>

/* One phrase's statistics: the chunks matching it, counted in id order up to cap (count ==
 * cap: at least that many), and the highest chunk id among those counted. */
typedef struct store_term_stat {
    int64_t count;
    int64_t edge;
    int64_t cap;
} store_term_stat;

typedef struct store_terms store_terms;

/* Returns: new cache for about `entries` phrases (free with store_terms_free), or NULL on OOM.
 * Thread-safe. */
store_terms *store_terms_new(size_t entries);
/* Frees c; NULL is a no-op. */
void store_terms_free(store_terms *c);
/* Looks up key[0..len) for a reader whose snapshot is at generation, needing a count up to cap.
 * Returns: 1 and *out when cached (exact, or counted at least as far as cap), else 0. c may be
 * NULL (then 0). */
int store_terms_get(store_terms *c, int64_t generation, const char *key, size_t len, int64_t cap,
                    store_term_stat *out);
/* Stores key's statistics as counted by a reader at generation (ignored when the cache has
 * moved past that generation). c may be NULL. */
void store_terms_put(store_terms *c, int64_t generation, const char *key, size_t len,
                     const store_term_stat *stat);
/* The lookups that hit and missed since c was made, and the phrases held now. */
void store_terms_counters(store_terms *c, uint64_t *hits, uint64_t *misses, size_t *entries);

#endif
