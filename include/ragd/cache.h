/* SPDX-License-Identifier: MIT */
/*
 * cache.h - the query-embedding cache: a small in-process LRU in front of an optional Redis
 * (hiredis), so a repeated question costs no embedding request. Entries are keyed by provider,
 * model, dims and the normalised query text, and hold the vector as raw floats. Redis is never
 * required: when it is unreachable or slow (bounded timeouts) lookups simply miss it, the state
 * says why, and a background thread reconnects by itself.
 */
#ifndef RAGD_CACHE_H
#define RAGD_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "ragd/cfg.h"
#include "ragd/ragd.h"

typedef struct cache_query cache_query;

/* Where a lookup found its vector. */
typedef enum cache_layer {
    RAGD_CACHE_MISS = 0,
    RAGD_CACHE_MEMORY,
    RAGD_CACHE_REDIS
} cache_layer;

/* Returns: "miss", "memory" or "redis"; static storage. */
const char *cache_layer_name(cache_layer layer);

/* Counters and state, for /health and /metrics. */
typedef struct cache_stats {
    uint64_t memory_hits, memory_misses;
    uint64_t redis_hits, redis_misses;
    uint64_t redis_errors;     /* failed commands and failed (re)connects */
    uint64_t redis_rejected;   /* values refused by cache_value_check (also counted as misses) */
    uint64_t redis_reconnects; /* successful connects after the first */
    size_t memory_entries, memory_capacity;
    int redis_configured;      /* a redis_url is set */
    int redis_up;              /* connected and answering */
    int64_t redis_down_since;  /* unix seconds; 0 when up or not configured */
    char redis_where[160];     /* host:port/db or unix:path; never the password */
    char redis_reason[256];    /* why it is down; "" when up */
} cache_stats;

/* Creates the cache for one embedder (provider name, model, dims) from cfg's [cache] keys: the
 * LRU of cache.memory_entries, and Redis when cache.redis_url is set (one connect attempt now,
 * bounded by cache.connect_timeout_ms; if it fails ragd starts anyway and reconnects later).
 * Strings are copied. Returns: RAGD_OK and *out (new, free with cache_query_free);
 * RAGD_ERR_CONFIG for a malformed redis_url. */
ragd_rc cache_query_new(const ragd_cfg *cfg, const char *provider, const char *model, int dims,
                        cache_query **out, ragd_err *err);

/* Marks c's values as scores rather than embeddings (the reranker's (query, chunk) scores): a
 * Redis value is still bound to its key and must be finite, but need not be of unit length.
 * Call once, before c is shared between threads. c may be NULL. */
void cache_query_scores(cache_query *c);

/* Stops the reconnect thread, closes Redis, frees c. c may be NULL. */
void cache_query_free(cache_query *c);

/* Looks text[0..len) up: the LRU first, then Redis (a Redis hit is copied into the LRU).
 * out holds dims floats, written only on a hit. Thread-safe. Returns: the layer that hit. */
cache_layer cache_query_get(cache_query *c, const char *text, size_t len, float *out);

/* Stores the vector of text[0..len) in the LRU and in Redis (with the TTL). Redis failures are
 * counted and reported in the state, never returned. Thread-safe. */
void cache_query_put(cache_query *c, const char *text, size_t len, const float *vec);

/* Fills *out (zeroed when c is NULL). Thread-safe. */
void cache_stats_get(cache_query *c, cache_stats *out);

/* Returns: 1 when a lookup may ask Redis (a redis_url is set), 0 for the in-process LRU alone or
 * c NULL. Thread-safe. */
int cache_query_remote(const cache_query *c);

#endif
