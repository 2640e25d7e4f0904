/* SPDX-License-Identifier: MIT */
/*
 * store_terms.c - the keyword index's term statistics cache: for each FTS5 phrase (a query term,
 * or its group of lexical variants), how many chunks match it (counted up to a cap) and the
 * highest chunk id among those counted. The keyword search's plan (which terms to rank, IDF
 * order) and the confidence estimate (IDF weights) both need these numbers for every query term,
 * and counting a common word walks thousands of entries of its doclist: cached, a word costs
 * that walk once per store generation instead of twice per request.
 *
 * Validity. Entries belong to one store generation (meta 'generation', bumped by every write
 * transaction that changes documents or chunks, in that transaction). A reader passes the
 * generation of its own snapshot: a newer one empties the cache and starts it afresh; an older
 * one (a reader still on a snapshot from before a write) neither reads nor fills it. The cache
 * is bounded: when full it is emptied (the next requests refill it with the words in use).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store_terms_int.h"

typedef struct term_entry {
    char *key; /* owned; NULL = empty slot */
    size_t len;
    store_term_stat stat;
} term_entry;

struct store_terms {
    pthread_mutex_t mu;
    term_entry *slots;
    size_t cap;  /* slots, a power of two */
    size_t used;
    int64_t generation; /* the generation the entries belong to; -1 = none yet */
    uint64_t hits, misses;
};

store_terms *store_terms_new(size_t entries)
{
    size_t cap = 16;
    while (cap < entries * 2) cap *= 2; /* at most half full: short probe runs */
    store_terms *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->slots = calloc(cap, sizeof *c->slots);
    if (c->slots == NULL || pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c->slots);
        free(c);
        return NULL;
    }
    c->cap = cap;
    c->generation = -1;
    return c;
}

/* Empties the table. Caller holds c->mu. */
static void terms_clear(store_terms *c)
{
    for (size_t i = 0; i < c->cap; i++) {
        free(c->slots[i].key);
        c->slots[i].key = NULL;
    }
    c->used = 0;
}

void store_terms_free(store_terms *c)
{
    if (c == NULL) return;
    terms_clear(c);
    free(c->slots);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Returns: FNV-1a of key[0..len). */
static uint64_t terms_hash(const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Returns: the slot holding key, or the empty slot where it would go. Caller holds c->mu. */
static term_entry *terms_slot(store_terms *c, const char *key, size_t len)
{
    size_t i = (size_t)terms_hash(key, len) & (c->cap - 1);
    for (;;) {
        term_entry *e = &c->slots[i];
        if (e->key == NULL || (e->len == len && memcmp(e->key, key, len) == 0)) return e;
        i = (i + 1) & (c->cap - 1);
    }
}

/* Moves the cache to generation when it is newer. Returns: 1 when the cache serves generation.
 * Caller holds c->mu. */
static int terms_generation(store_terms *c, int64_t generation)
{
    if (generation > c->generation) {
        terms_clear(c);
        c->generation = generation;
    }
    return generation == c->generation;
}

int store_terms_get(store_terms *c, int64_t generation, const char *key, size_t len, int64_t cap,
                    store_term_stat *out)
{
    if (c == NULL) return 0;
    int found = 0;
    pthread_mutex_lock(&c->mu);
    if (terms_generation(c, generation)) {
        term_entry *e = terms_slot(c, key, len);
        /* Counted up to e->stat.cap: exact when it stopped short of it, else a lower bound
         * that answers any cap up to its own. */
        if (e->key != NULL && (e->stat.count < e->stat.cap || e->stat.cap >= cap)) {
            *out = e->stat;
            found = 1;
        }
    }
    if (found) c->hits++;
    else c->misses++;
    pthread_mutex_unlock(&c->mu);
    return found;
}

void store_terms_put(store_terms *c, int64_t generation, const char *key, size_t len,
                     const store_term_stat *stat)
{
    if (c == NULL) return;
    pthread_mutex_lock(&c->mu);
    if (terms_generation(c, generation)) {
        term_entry *e = terms_slot(c, key, len);
        if (e->key == NULL) {
            if (c->used + 1 > c->cap / 2) { /* full: start afresh */
                terms_clear(c);
                e = terms_slot(c, key, len);
            }
            e->key = malloc(len + 1);
            if (e->key != NULL) {
                memcpy(e->key, key, len);
                e->key[len] = '\0';
                e->len = len;
                c->used++;
            }
        }
        if (e->key != NULL) e->stat = *stat;
    }
    pthread_mutex_unlock(&c->mu);
}

void store_terms_counters(store_terms *c, uint64_t *hits, uint64_t *misses, size_t *entries)
{
    *hits = *misses = 0;
    *entries = 0;
    if (c == NULL) return;
    pthread_mutex_lock(&c->mu);
    *hits = c->hits;
    *misses = c->misses;
    *entries = c->used;
    pthread_mutex_unlock(&c->mu);
}
