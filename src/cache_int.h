/* SPDX-License-Identifier: MIT */
/*
 * cache_int.h - declarations private to the cache module, for its unit tests: the Redis URL
 * parser, the query-text normalisation and key derivation, and the in-process LRU.
 * Not a public contract.
 */
#ifndef RAGD_CACHE_INT_H
#define RAGD_CACHE_INT_H

#include <stddef.h>

#include "ragd/ragd.h"
#include "ragd/util.h"

/* A parsed redis_url. */
typedef struct cache_redis_url {
    int is_unix;
    char host[256];   /* TCP host (brackets of an IPv6 literal removed) */
    int port;         /* default 6379 */
    char path[256];   /* unix socket path */
    char user[128];   /* "" for the default user */
    char password[256];
    int db;           /* 0..(whatever the server allows); default 0 */
} cache_redis_url;

/* Parses "redis://[[user]:password@]host[:port][/db]" or "unix:/path[?db=N&password=P]" (also
 * "unix:///path" and "redis+unix:..."). Percent-escapes in user and password are decoded.
 * Returns: RAGD_OK and *out, or RAGD_ERR_CONFIG with a message that never contains the password. */
ragd_rc cache_url_parse(const char *url, cache_redis_url *out, ragd_err *err);

/* Writes where u points, without credentials ("host:port/db", "unix:/path/db"). */
void cache_url_where(const cache_redis_url *u, char *out, size_t size);

/* The normalised form of a query: surrounding whitespace removed, every run of whitespace made
 * one space. Returns: new string (free()) and *out_len, or NULL on OOM. */
char *cache_text_normalise(const char *text, size_t len, size_t *out_len);

/* v2: values carry a header binding them to their key (v1 values were bare floats). */
#define RAGD_CACHE_KEY_PREFIX "ragd:qemb:v2:"
#define RAGD_CACHE_KEY_MAX (sizeof RAGD_CACHE_KEY_PREFIX + UTIL_SHA256_HEX_LEN)

/* The cache key of a query: RAGD_CACHE_KEY_PREFIX + hex SHA-256 of provider, model, dims and the
 * normalised text. Equal for texts that differ only in whitespace. Returns: 0, or -1 on OOM. */
int cache_key_make(const char *provider, const char *model, int dims, const char *text,
                   size_t len, char out[RAGD_CACHE_KEY_MAX]);

/* The Redis value of a query embedding: a 40-byte header, then dims float32 in host order
 * (little-endian on every platform ragd builds on):
 *   "RQE2" | uint32 dims | the 32-byte SHA-256 the key is named by (provider, model, dims, query)
 * so a value written for another query, model or dims, or by another program, is refused. */
#define RAGD_CACHE_VALUE_MAGIC "RQE2"
#define RAGD_CACHE_VALUE_HEADER 40
/* Largest |norm - 1| accepted: every provider returns L2-normalised vectors (float rounding
 * stays far below this). */
#define RAGD_CACHE_NORM_TOLERANCE 1e-3

/* Returns: the value's size for dims floats. */
size_t cache_value_size(int dims);

/* Writes the value of vec (dims floats) stored under key (from cache_key_make) into
 * out[0..cache_value_size(dims)). Returns: 0, or -1 when key is not a cache key. */
int cache_value_encode(const char *key, int dims, const float *vec, unsigned char *out);

/* Checks a value read from Redis under key and, when it is sound, copies its dims floats to out
 * (out untouched otherwise). Returns: NULL when accepted, else a static string saying why not
 * ("wrong length", "not a ragd value", "written for other dimensions", "written for another
 * query or model", "not finite", "not of unit length"). */
const char *cache_value_check(const char *key, int dims, const void *value, size_t len,
                              float *out);

/* As cache_value_check, with the unit-length check only when unit_length is non-zero (values that
 * are scores rather than embeddings: the key binding and finiteness are checked all the same). */
const char *cache_value_check_as(const char *key, int dims, const void *value, size_t len,
                                 int unit_length, float *out);

/* A fixed-capacity LRU map from keys (strings under RAGD_CACHE_KEY_MAX) to value_bytes-byte
 * values. Not thread-safe: the caller locks. */
typedef struct cache_lru cache_lru;

/* Returns: new (free with cache_lru_free), or NULL on OOM. capacity 0 makes an LRU that keeps
 * nothing. */
cache_lru *cache_lru_new(size_t capacity, size_t value_bytes);
void cache_lru_free(cache_lru *l);
/* Returns: 1 and copies the value into out (and makes the key most recent), or 0. */
int cache_lru_get(cache_lru *l, const char *key, void *out);
/* Inserts or replaces key's value, evicting the least recently used entry when full. */
void cache_lru_put(cache_lru *l, const char *key, const void *value);
size_t cache_lru_count(const cache_lru *l);

#endif
