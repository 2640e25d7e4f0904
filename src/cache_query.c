/* SPDX-License-Identifier: MIT */
/*
 * cache_query.c - the query-embedding cache (include/ragd/cache.h): an in-process LRU in front of
 * an optional Redis reached through hiredis.
 *
 * Redis use is serialised on one connection under a mutex; every command has a bounded timeout
 * (cache.command_timeout_ms), so a slow or dead Redis costs a request at most that long before
 * the connection is dropped and the cache counts as down. Requests never connect: a background
 * thread does, every cache.reconnect_interval_ms while Redis is down (and PINGs it while it is
 * up, so /health notices an outage even when no query arrives). Redis is often shared, so a
 * value is never trusted on its length: it carries a header binding it to its key (a digest of
 * provider, model, dims and the normalised query; cache_int.h), and a value that is foreign,
 * written for another key, not finite or not of unit length is refused, counted
 * (ragd_cache_redis_rejected_total, /health cache.redis.rejected) and treated as a miss; the
 * fresh embedding then overwrites it.
 */
#include <math.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis.h>

#include "cache_int.h"
#include "ragd/cache.h"
#include "ragd/log.h"
#include "ragd/metrics.h"

/* ---- URL ---------------------------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Copies s[0..n) percent-decoded into out. Returns: 0, or -1 when it does not fit or is bad. */
static int pct_decode(const char *s, size_t n, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= n) return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0) return -1;
            ch = h * 16 + l;
            i += 2;
        }
        if (o + 1 >= size) return -1;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return 0;
}

static int parse_int(const char *s, size_t n, int lo, int hi, int *out)
{
    if (n == 0 || n > 9) return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* Parses "db=N&password=P" (unix URLs). */
static ragd_rc query_parse(const char *q, cache_redis_url *u, ragd_err *err)
{
    while (*q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        if (eq == NULL) return ragd_err_set(err, RAGD_ERR_CONFIG, "cache.redis_url: bad query");
        size_t kn = (size_t)(eq - q), vn = n - kn - 1;
        if (kn == 2 && strncmp(q, "db", 2) == 0) {
            if (parse_int(eq + 1, vn, 0, 1000000, &u->db) != 0)
                return ragd_err_set(err, RAGD_ERR_CONFIG, "cache.redis_url: db must be a number");
        } else if (kn == 8 && strncmp(q, "password", 8) == 0) {
            if (pct_decode(eq + 1, vn, u->password, sizeof u->password) != 0)
                return ragd_err_set(err, RAGD_ERR_CONFIG, "cache.redis_url: bad password");
        } else {
            return ragd_err_set(err, RAGD_ERR_CONFIG, "cache.redis_url: unknown parameter "
                                "(expected db or password)");
        }
        q += n;
        if (*q == '&') q++;
    }
    return RAGD_OK;
}

ragd_rc cache_url_parse(const char *url, cache_redis_url *out, ragd_err *err)
{
    cache_redis_url u = {.port = 6379};
    const char *s = url;
    if (strncmp(s, "redis+unix:", 11) == 0) s += 6;
    if (strncmp(s, "unix:", 5) == 0) {
        s += 5;
        if (strncmp(s, "//", 2) == 0) s += 2;
        size_t n = strcspn(s, "?");
        if (n == 0 || s[0] != '/' || n >= sizeof u.path)
            return ragd_err_set(err, RAGD_ERR_CONFIG,
                                "cache.redis_url: a unix socket URL is unix:/absolute/path");
        memcpy(u.path, s, n);
        u.path[n] = '\0';
        u.is_unix = 1;
        if (s[n] == '?') {
            ragd_rc rc = query_parse(s + n + 1, &u, err);
            if (rc != RAGD_OK) return rc;
        }
        *out = u;
        return RAGD_OK;
    }
    if (strncmp(s, "redis://", 8) != 0)
        return ragd_err_set(err, RAGD_ERR_CONFIG, "cache.redis_url must start with redis:// or "
                            "unix: (rediss:// TLS is not supported)");
    s += 8;
    size_t auth_end = strcspn(s, "/");
    const char *at = NULL;
    for (size_t i = 0; i < auth_end; i++)
        if (s[i] == '@') at = s + i; /* the last '@': passwords may contain '@' only escaped */
    if (at != NULL) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        size_t un = colon ? (size_t)(colon - s) : (size_t)(at - s);
        if (pct_decode(s, un, u.user, sizeof u.user) != 0 ||
            (colon && pct_decode(colon + 1, (size_t)(at - colon - 1), u.password,
                                 sizeof u.password) != 0))
            return ragd_err_set(err, RAGD_ERR_CONFIG, "cache.redis_url: bad user or password");
        if (colon == NULL) { /* redis://password@host is a common shorthand */
            memcpy(u.password, u.user, sizeof u.password < sizeof u.user ? sizeof u.password
                                                                          : sizeof u.user);
            u.user[0] = '\0';
        }
        s = at + 1;
    }
    size_t hn;
    const char *rest;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL) return ragd_err_set(err, RAGD_ERR_CONFIG, "cache.redis_url: bad host");
        hn = (size_t)(close - s - 1);
        if (hn == 0 || hn >= sizeof u.host)
            return ragd_err_set(err, RAGD_ERR_CONFIG, "cache.redis_url: bad host");
        memcpy(u.host, s + 1, hn);
        rest = close + 1;
    } else {
        hn = strcspn(s, ":/");
        if (hn == 0 || hn >= sizeof u.host)
            return ragd_err_set(err, RAGD_ERR_CONFIG, "cache.redis_url: no host");
        memcpy(u.host, s, hn);
        rest = s + hn;
    }
    u.host[hn] = '\0';
    if (*rest == ':') {
        rest++;
        size_t pn = strcspn(rest, "/");
        if (parse_int(rest, pn, 1, 65535, &u.port) != 0)
            return ragd_err_set(err, RAGD_ERR_CONFIG, "cache.redis_url: port must be 1..65535");
        rest += pn;
    }
    if (*rest == '/') {
        rest++;
        size_t dn = strlen(rest);
        if (dn > 0 && parse_int(rest, dn, 0, 1000000, &u.db) != 0)
            return ragd_err_set(err, RAGD_ERR_CONFIG, "cache.redis_url: db must be a number");
    } else if (*rest != '\0') {
        return ragd_err_set(err, RAGD_ERR_CONFIG, "cache.redis_url: unexpected text after host");
    }
    *out = u;
    return RAGD_OK;
}

void cache_url_where(const cache_redis_url *u, char *out, size_t size)
{
    if (u->is_unix)
        snprintf(out, size, "unix:%s/%d", u->path, u->db);
    else if (strchr(u->host, ':'))
        snprintf(out, size, "[%s]:%d/%d", u->host, u->port, u->db);
    else
        snprintf(out, size, "%s:%d/%d", u->host, u->port, u->db);
}

/* ---- keys --------------------------------------------------------------------------------- */

char *cache_text_normalise(const char *text, size_t len, size_t *out_len)
{
    char *out = malloc(len + 1);
    if (out == NULL) return NULL;
    size_t o = 0;
    int space = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v') {
            space = 1;
            continue;
        }
        if (space && o > 0) out[o++] = ' ';
        space = 0;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

int cache_key_make(const char *provider, const char *model, int dims, const char *text,
                   size_t len, char out[RAGD_CACHE_KEY_MAX])
{
    size_t nlen = 0;
    char *norm = cache_text_normalise(text, len, &nlen);
    util_buf b = {0};
    int bad = norm == NULL || util_buf_printf(&b, "%s", provider) != 0 ||
              util_buf_append(&b, "", 1) != 0 || util_buf_printf(&b, "%s", model) != 0 ||
              util_buf_append(&b, "", 1) != 0 || util_buf_printf(&b, "%d", dims) != 0 ||
              util_buf_append(&b, "", 1) != 0 || util_buf_append(&b, norm, nlen) != 0;
    free(norm);
    if (bad) {
        util_buf_free(&b);
        return -1;
    }
    char hex[UTIL_SHA256_HEX_LEN + 1];
    util_sha256_hex(b.data, b.len, hex);
    util_buf_free(&b);
    snprintf(out, RAGD_CACHE_KEY_MAX, "%s%s", RAGD_CACHE_KEY_PREFIX, hex);
    return 0;
}

/* ---- Redis values ------------------------------------------------------------------------- */

size_t cache_value_size(int dims)
{
    return RAGD_CACHE_VALUE_HEADER + sizeof(float) * (size_t)dims;
}

/* Decodes the hex digest of a cache key into 32 bytes. Returns: 0, or -1 when key is not one. */
static int key_digest(const char *key, unsigned char out[32])
{
    size_t plen = sizeof RAGD_CACHE_KEY_PREFIX - 1;
    if (strncmp(key, RAGD_CACHE_KEY_PREFIX, plen) != 0 || strlen(key + plen) != 64) return -1;
    for (int i = 0; i < 32; i++) {
        int h = hexval((unsigned char)key[plen + 2 * i]);
        int l = hexval((unsigned char)key[plen + 2 * i + 1]);
        if (h < 0 || l < 0) return -1;
        out[i] = (unsigned char)(h * 16 + l);
    }
    return 0;
}

int cache_value_encode(const char *key, int dims, const float *vec, unsigned char *out)
{
    unsigned char digest[32];
    if (dims <= 0 || key_digest(key, digest) != 0) return -1;
    uint32_t d = (uint32_t)dims;
    memcpy(out, RAGD_CACHE_VALUE_MAGIC, 4);
    memcpy(out + 4, &d, 4);
    memcpy(out + 8, digest, 32);
    memcpy(out + RAGD_CACHE_VALUE_HEADER, vec, sizeof(float) * (size_t)dims);
    return 0;
}

const char *cache_value_check(const char *key, int dims, const void *value, size_t len,
                              float *out)
{
    return cache_value_check_as(key, dims, value, len, 1, out);
}

const char *cache_value_check_as(const char *key, int dims, const void *value, size_t len,
                                 int unit_length, float *out)
{
    const unsigned char *v = value;
    unsigned char digest[32];
    if (dims <= 0 || key_digest(key, digest) != 0) return "not a cache key";
    if (len != cache_value_size(dims)) return "wrong length";
    if (memcmp(v, RAGD_CACHE_VALUE_MAGIC, 4) != 0) return "not a ragd value";
    uint32_t d;
    memcpy(&d, v + 4, 4);
    if (d != (uint32_t)dims) return "written for other dimensions";
    if (memcmp(v + 8, digest, 32) != 0) return "written for another query or model";
    double norm2 = 0;
    for (int i = 0; i < dims; i++) {
        float x;
        memcpy(&x, v + RAGD_CACHE_VALUE_HEADER + sizeof(float) * (size_t)i, sizeof x);
        if (!isfinite(x)) return "not finite";
        norm2 += (double)x * (double)x;
    }
    if (unit_length && fabs(sqrt(norm2) - 1.0) > RAGD_CACHE_NORM_TOLERANCE)
        return "not of unit length";
    memcpy(out, v + RAGD_CACHE_VALUE_HEADER, sizeof(float) * (size_t)dims);
    return NULL;
}

/* ---- LRU ---------------------------------------------------------------------------------- */

#define NIL ((size_t)-1)

typedef struct lru_entry {
    char key[RAGD_CACHE_KEY_MAX];
    size_t prev, next; /* recency list: head is most recent */
    size_t chain;      /* next entry in the same hash bucket */
    int used;
} lru_entry;

struct cache_lru {
    size_t capacity, count, value_bytes;
    lru_entry *entries;
    unsigned char *values; /* capacity * value_bytes */
    size_t *buckets;
    size_t nbuckets; /* power of two */
    size_t head, tail;
};

static size_t key_hash(const char *key)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) h = (h ^ *p) * 1099511628211ull;
    return (size_t)h;
}

cache_lru *cache_lru_new(size_t capacity, size_t value_bytes)
{
    cache_lru *l = calloc(1, sizeof *l);
    if (l == NULL) return NULL;
    l->capacity = capacity;
    l->value_bytes = value_bytes;
    l->head = l->tail = NIL;
    l->nbuckets = 1;
    while (l->nbuckets < capacity * 2) l->nbuckets *= 2;
    if (capacity > 0) {
        l->entries = calloc(capacity, sizeof *l->entries);
        l->values = malloc(capacity * (value_bytes ? value_bytes : 1));
        l->buckets = malloc(l->nbuckets * sizeof *l->buckets);
        if (l->entries == NULL || l->values == NULL || l->buckets == NULL) {
            cache_lru_free(l);
            return NULL;
        }
        for (size_t i = 0; i < l->nbuckets; i++) l->buckets[i] = NIL;
    }
    return l;
}

void cache_lru_free(cache_lru *l)
{
    if (l == NULL) return;
    free(l->entries);
    free(l->values);
    free(l->buckets);
    free(l);
}

size_t cache_lru_count(const cache_lru *l)
{
    return l ? l->count : 0;
}

static size_t lru_find(const cache_lru *l, const char *key)
{
    if (l->capacity == 0) return NIL;
    for (size_t i = l->buckets[key_hash(key) & (l->nbuckets - 1)]; i != NIL;
         i = l->entries[i].chain)
        if (strcmp(l->entries[i].key, key) == 0) return i;
    return NIL;
}

static void lru_unlink(cache_lru *l, size_t i)
{
    lru_entry *e = &l->entries[i];
    if (e->prev != NIL) l->entries[e->prev].next = e->next;
    else l->head = e->next;
    if (e->next != NIL) l->entries[e->next].prev = e->prev;
    else l->tail = e->prev;
    e->prev = e->next = NIL;
}

static void lru_push_front(cache_lru *l, size_t i)
{
    lru_entry *e = &l->entries[i];
    e->prev = NIL;
    e->next = l->head;
    if (l->head != NIL) l->entries[l->head].prev = i;
    l->head = i;
    if (l->tail == NIL) l->tail = i;
}

static void lru_unchain(cache_lru *l, size_t i)
{
    size_t *at = &l->buckets[key_hash(l->entries[i].key) & (l->nbuckets - 1)];
    while (*at != i) at = &l->entries[*at].chain;
    *at = l->entries[i].chain;
}

int cache_lru_get(cache_lru *l, const char *key, void *out)
{
    size_t i = lru_find(l, key);
    if (i == NIL) return 0;
    lru_unlink(l, i);
    lru_push_front(l, i);
    memcpy(out, l->values + i * l->value_bytes, l->value_bytes);
    return 1;
}

void cache_lru_put(cache_lru *l, const char *key, const void *value)
{
    if (l->capacity == 0 || strlen(key) >= RAGD_CACHE_KEY_MAX) return;
    size_t i = lru_find(l, key);
    if (i != NIL) {
        lru_unlink(l, i);
    } else {
        if (l->count < l->capacity) {
            i = l->count++;
        } else {
            i = l->tail; /* evict the least recently used */
            lru_unlink(l, i);
            lru_unchain(l, i);
        }
        lru_entry *e = &l->entries[i];
        snprintf(e->key, sizeof e->key, "%s", key);
        e->used = 1;
        size_t b = key_hash(key) & (l->nbuckets - 1);
        e->chain = l->buckets[b];
        l->buckets[b] = i;
    }
    memcpy(l->values + i * l->value_bytes, value, l->value_bytes);
    lru_push_front(l, i);
}

/* ---- the cache ---------------------------------------------------------------------------- */

struct cache_query {
    char *provider, *model;
    int dims;
    int scores; /* values are scores, not embeddings: no unit-length check (cache_query_scores) */
    pthread_mutex_t lru_mu;
    cache_lru *lru;

    /* Redis */
    int redis_configured;
    cache_redis_url url;
    char where[160];
    int ttl_s;
    struct timeval connect_tv, command_tv;
    int interval_ms;
    pthread_mutex_t redis_mu; /* ctx, reason, down_since, connected_once */
    redisContext *ctx;        /* NULL while down */
    char reason[256];
    int64_t down_since;
    int connected_once;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    int stopping;

    atomic_ullong memory_hits, memory_misses, redis_hits, redis_misses, redis_errors,
        redis_reconnects, redis_rejected;
};

const char *cache_layer_name(cache_layer layer)
{
    switch (layer) {
    case RAGD_CACHE_MEMORY: return "memory";
    case RAGD_CACHE_REDIS: return "redis";
    default: return "miss";
    }
}

/* Connects and authenticates a new context. Returns: the context, or NULL with why filled. */
static redisContext *redis_open(cache_query *c, char *why, size_t wsize)
{
    redisContext *ctx = c->url.is_unix
                            ? redisConnectUnixWithTimeout(c->url.path, c->connect_tv)
                            : redisConnectWithTimeout(c->url.host, c->url.port, c->connect_tv);
    if (ctx == NULL) {
        snprintf(why, wsize, "out of memory");
        return NULL;
    }
    if (ctx->err) {
        snprintf(why, wsize, "%s", ctx->errstr);
        redisFree(ctx);
        return NULL;
    }
    redisSetTimeout(ctx, c->command_tv);
    redisReply *rep = NULL;
    if (c->url.password[0] != '\0') {
        rep = c->url.user[0] ? redisCommand(ctx, "AUTH %s %s", c->url.user, c->url.password)
                             : redisCommand(ctx, "AUTH %s", c->url.password);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            snprintf(why, wsize, "AUTH failed: %s",
                     rep ? rep->str : (ctx->errstr[0] ? ctx->errstr : "no reply"));
            if (rep) freeReplyObject(rep);
            redisFree(ctx);
            return NULL;
        }
        freeReplyObject(rep);
    }
    rep = c->url.db != 0 ? redisCommand(ctx, "SELECT %d", c->url.db) : redisCommand(ctx, "PING");
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        snprintf(why, wsize, "%s failed: %s", c->url.db ? "SELECT" : "PING",
                 rep ? rep->str : (ctx->errstr[0] ? ctx->errstr : "no reply"));
        if (rep) freeReplyObject(rep);
        redisFree(ctx);
        return NULL;
    }
    freeReplyObject(rep);
    return ctx;
}

/* Drops the connection after a failed command. Caller holds redis_mu. */
static void redis_down_locked(cache_query *c, const char *why)
{
    /* why may point into c->ctx: copy it before the context goes. */
    snprintf(c->reason, sizeof c->reason, "%s", why);
    if (c->ctx) redisFree(c->ctx);
    c->ctx = NULL;
    if (c->down_since == 0) {
        c->down_since = util_unix_time();
        RAGD_LOG(RAGD_LOG_WARN, "cache", "Redis at %s is down (%s); answering without it",
                 c->where, c->reason);
    }
    atomic_fetch_add(&c->redis_errors, 1);
    metrics_upstream_error_add(RAGD_ERR_CACHE);
}

/* One health step: PING when up, connect when down. */
static void redis_tick(cache_query *c)
{
    pthread_mutex_lock(&c->redis_mu);
    if (c->ctx != NULL) {
        redisReply *rep = redisCommand(c->ctx, "PING");
        if (rep == NULL) redis_down_locked(c, c->ctx->errstr[0] ? c->ctx->errstr : "no reply");
        else freeReplyObject(rep);
        pthread_mutex_unlock(&c->redis_mu);
        return;
    }
    pthread_mutex_unlock(&c->redis_mu);
    /* Connect without the lock: requests keep going (without Redis) meanwhile. */
    char why[256] = "";
    redisContext *ctx = redis_open(c, why, sizeof why);
    pthread_mutex_lock(&c->redis_mu);
    if (ctx != NULL) {
        if (c->connected_once) atomic_fetch_add(&c->redis_reconnects, 1);
        RAGD_LOG(RAGD_LOG_INFO, "cache", "Redis at %s is %s", c->where,
                 c->connected_once ? "back" : "connected");
        c->connected_once = 1;
        c->ctx = ctx;
        c->reason[0] = '\0';
        c->down_since = 0;
    } else {
        snprintf(c->reason, sizeof c->reason, "%s", why);
        if (c->down_since == 0) c->down_since = util_unix_time();
        atomic_fetch_add(&c->redis_errors, 1);
        metrics_upstream_error_add(RAGD_ERR_CACHE);
    }
    pthread_mutex_unlock(&c->redis_mu);
}

static void *redis_thread(void *arg)
{
    cache_query *c = arg;
    pthread_mutex_lock(&c->stop_mu);
    while (!c->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += c->interval_ms / 1000;
        until.tv_nsec += (long)(c->interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->stop_cv, &c->stop_mu, &until);
        if (c->stopping) break;
        pthread_mutex_unlock(&c->stop_mu);
        redis_tick(c);
        pthread_mutex_lock(&c->stop_mu);
    }
    pthread_mutex_unlock(&c->stop_mu);
    return NULL;
}

ragd_rc cache_query_new(const ragd_cfg *cfg, const char *provider, const char *model, int dims,
                        cache_query **out, ragd_err *err)
{
    cache_redis_url url = {0};
    const char *spec = cfg->cache_redis_url ? cfg->cache_redis_url : "";
    int use_redis = spec[0] != '\0';
    if (use_redis) {
        ragd_rc rc = cache_url_parse(spec, &url, err);
        if (rc != RAGD_OK) return rc;
    }
    cache_query *c = calloc(1, sizeof *c);
    if (c == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "cache: out of memory");
    c->provider = strdup(provider);
    c->model = strdup(model);
    c->dims = dims;
    size_t cap = cfg->cache_memory_entries > 0 ? (size_t)cfg->cache_memory_entries : 0;
    c->lru = cache_lru_new(cap, sizeof(float) * (size_t)dims);
    pthread_mutex_init(&c->lru_mu, NULL);
    pthread_mutex_init(&c->redis_mu, NULL);
    pthread_mutex_init(&c->stop_mu, NULL);
    pthread_cond_init(&c->stop_cv, NULL);
    if (c->provider == NULL || c->model == NULL || c->lru == NULL) {
        cache_query_free(c);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "cache: out of memory");
    }
    if (use_redis) {
        c->redis_configured = 1;
        c->url = url;
        cache_url_where(&url, c->where, sizeof c->where);
        c->ttl_s = cfg->cache_ttl_s;
        int cms = cfg->cache_connect_timeout_ms, tms = cfg->cache_command_timeout_ms;
        c->connect_tv = (struct timeval){cms / 1000, (cms % 1000) * 1000};
        c->command_tv = (struct timeval){tms / 1000, (tms % 1000) * 1000};
        c->interval_ms = cfg->cache_reconnect_interval_ms;
        redis_tick(c);
        if (c->ctx == NULL)
            RAGD_LOG(RAGD_LOG_WARN, "cache", "Redis at %s is not reachable (%s); starting without "
                     "it and retrying every %d ms", c->where, c->reason, c->interval_ms);
        if (pthread_create(&c->thread, NULL, redis_thread, c) != 0) {
            cache_query_free(c);
            return ragd_err_set(err, RAGD_ERR_INTERNAL, "cache: cannot start the Redis thread");
        }
        c->thread_started = 1;
    }
    memset(&url, 0, sizeof url);
    *out = c;
    return RAGD_OK;
}

void cache_query_free(cache_query *c)
{
    if (c == NULL) return;
    if (c->thread_started) {
        pthread_mutex_lock(&c->stop_mu);
        c->stopping = 1;
        pthread_cond_signal(&c->stop_cv);
        pthread_mutex_unlock(&c->stop_mu);
        pthread_join(c->thread, NULL);
    }
    if (c->ctx) redisFree(c->ctx);
    memset(&c->url, 0, sizeof c->url);
    cache_lru_free(c->lru);
    pthread_mutex_destroy(&c->lru_mu);
    pthread_mutex_destroy(&c->redis_mu);
    pthread_mutex_destroy(&c->stop_mu);
    pthread_cond_destroy(&c->stop_cv);
    free(c->provider);
    free(c->model);
    free(c);
}

int cache_query_remote(const cache_query *c)
{
    return c != NULL && c->redis_configured;
}

cache_layer cache_query_get(cache_query *c, const char *text, size_t len, float *out)
{
    if (c == NULL) return RAGD_CACHE_MISS;
    char key[RAGD_CACHE_KEY_MAX];
    if (cache_key_make(c->provider, c->model, c->dims, text, len, key) != 0)
        return RAGD_CACHE_MISS;
    pthread_mutex_lock(&c->lru_mu);
    int hit = cache_lru_get(c->lru, key, out);
    pthread_mutex_unlock(&c->lru_mu);
    atomic_fetch_add(hit ? &c->memory_hits : &c->memory_misses, 1);
    if (hit) return RAGD_CACHE_MEMORY;
    if (!c->redis_configured) return RAGD_CACHE_MISS;

    pthread_mutex_lock(&c->redis_mu);
    if (c->ctx == NULL) {
        pthread_mutex_unlock(&c->redis_mu);
        return RAGD_CACHE_MISS;
    }
    const char *refused = NULL;
    redisReply *rep = redisCommand(c->ctx, "GET %s", key);
    if (rep == NULL) {
        redis_down_locked(c, c->ctx->errstr[0] ? c->ctx->errstr : "no reply");
    } else {
        if (rep->type == REDIS_REPLY_STRING)
            refused = cache_value_check_as(key, c->dims, rep->str, (size_t)rep->len,
                                           !c->scores, out);
        hit = rep->type == REDIS_REPLY_STRING && refused == NULL;
        freeReplyObject(rep);
    }
    pthread_mutex_unlock(&c->redis_mu);
    if (rep == NULL) return RAGD_CACHE_MISS;
    if (refused != NULL) {
        unsigned long long n = atomic_fetch_add(&c->redis_rejected, 1) + 1;
        metrics_counter_add(RAGD_METRIC_CACHE_REJECTED, 1);
        /* the first, then one in a hundred: a poisoned Redis must not flood the log */
        if (n == 1 || n % 100 == 0)
            RAGD_LOG(RAGD_LOG_WARN, "cache", "refused a query embedding from Redis at %s (%s); "
                     "%llu refused so far; embedding the query instead", c->where, refused, n);
    }
    atomic_fetch_add(hit ? &c->redis_hits : &c->redis_misses, 1);
    if (!hit) return RAGD_CACHE_MISS;
    pthread_mutex_lock(&c->lru_mu);
    cache_lru_put(c->lru, key, out);
    pthread_mutex_unlock(&c->lru_mu);
    return RAGD_CACHE_REDIS;
}

void cache_query_put(cache_query *c, const char *text, size_t len, const float *vec)
{
    if (c == NULL) return;
    char key[RAGD_CACHE_KEY_MAX];
    if (cache_key_make(c->provider, c->model, c->dims, text, len, key) != 0) return;
    pthread_mutex_lock(&c->lru_mu);
    cache_lru_put(c->lru, key, vec);
    pthread_mutex_unlock(&c->lru_mu);
    if (!c->redis_configured) return;
    size_t size = cache_value_size(c->dims);
    unsigned char *value = malloc(size);
    if (value == NULL || cache_value_encode(key, c->dims, vec, value) != 0) {
        free(value);
        return;
    }
    pthread_mutex_lock(&c->redis_mu);
    if (c->ctx != NULL) {
        redisReply *rep = redisCommand(c->ctx, "SET %s %b EX %d", key, (const void *)value, size,
                                       c->ttl_s);
        if (rep == NULL) redis_down_locked(c, c->ctx->errstr[0] ? c->ctx->errstr : "no reply");
        else freeReplyObject(rep);
    }
    pthread_mutex_unlock(&c->redis_mu);
    free(value);
}

void cache_stats_get(cache_query *c, cache_stats *out)
{
    memset(out, 0, sizeof *out);
    if (c == NULL) return;
    out->memory_hits = atomic_load(&c->memory_hits);
    out->memory_misses = atomic_load(&c->memory_misses);
    out->redis_hits = atomic_load(&c->redis_hits);
    out->redis_misses = atomic_load(&c->redis_misses);
    out->redis_errors = atomic_load(&c->redis_errors);
    out->redis_reconnects = atomic_load(&c->redis_reconnects);
    out->redis_rejected = atomic_load(&c->redis_rejected);
    pthread_mutex_lock(&c->lru_mu);
    out->memory_entries = cache_lru_count(c->lru);
    out->memory_capacity = c->lru->capacity;
    pthread_mutex_unlock(&c->lru_mu);
    out->redis_configured = c->redis_configured;
    if (!c->redis_configured) return;
    snprintf(out->redis_where, sizeof out->redis_where, "%s", c->where);
    pthread_mutex_lock(&c->redis_mu);
    out->redis_up = c->ctx != NULL;
    out->redis_down_since = c->down_since;
    snprintf(out->redis_reason, sizeof out->redis_reason, "%s", c->reason);
    pthread_mutex_unlock(&c->redis_mu);
}

void cache_query_scores(cache_query *c)
{
    if (c) c->scores = 1;
}
