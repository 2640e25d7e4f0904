/* SPDX-License-Identifier: MIT */
/*
 * retrieve_rerank.c - the reranking stage behind include/ragd/rerank.h. One table names the
 * providers and holds, per provider, the path under base_url, how the request body is built and
 * how the reply is read:
 *   tei     Hugging Face Text Embeddings Inference: POST {base_url}/rerank
 *           {"query", "texts", "truncate": true} -> [{"index", "score"}, ...]
 *   cohere  POST {base_url}/v1/rerank {"model", "query", "documents", "top_n"}
 *           -> {"results": [{"index", "relevance_score"}, ...]} (Cohere, Jina; Voyage's "data")
 * Scores of (provider, model, query, text) are kept in a bounded in-process cache (4-way set
 * associative, least recently used way replaced) keyed by SHA-256, and, with [cache] redis_url,
 * in Redis too (through the query cache's module, src/cache_query.c, as a two-float "vector"
 * under its own provider name), so only unseen pairs are sent, across restarts and replicas.
 * One HTTP call per retrieval, bounded by [rerank] timeout_ms, no retries: a reranker is a
 * latency budget, and the fused order is a good answer when it is late. The API key goes only
 * into the Authorization header and never into a message.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "ragd/cache.h"
#include "ragd/ingest.h"
#include "ragd/log.h"
#include "ragd/metrics.h"
#include "ragd/rerank.h"
#include "ragd/util.h"

#define CACHE_SETS 4096
#define CACHE_WAYS 4
#define REPLY_MAX (8u << 20) /* a rerank reply larger than this is refused */
#define HANDLE_POOL 8

typedef struct rerank_provider rerank_provider;

typedef struct cache_way {
    unsigned char key[32];
    double score;
    uint64_t used; /* tick of the last use; 0 = empty */
} cache_way;

struct retrieve_reranker {
    const ragd_cfg *cfg; /* borrowed: candidates and timeout_ms are live keys */
    const rerank_provider *provider;
    char *url;
    char *model;
    struct curl_slist *headers; /* content type + Authorization; never logged */
    pthread_mutex_t mu;         /* cache, stats, handle pool */
    cache_way *cache;           /* CACHE_SETS * CACHE_WAYS */
    uint64_t tick;
    rerank_stats stats;
    CURL *pool[HANDLE_POOL];    /* idle easy handles: warm keep-alive connections */
    size_t pool_n;
    cache_query *redis;         /* the shared layer when [cache] redis_url is set, else NULL */
};

/* ---- providers --------------------------------------------------------------------------------- */

struct rerank_provider {
    const char *name;
    const char *path; /* appended to base_url */
    /* Returns: new request body (free()), NULL on OOM. */
    char *(*body)(const retrieve_reranker *r, const char *query, size_t query_len,
                  const char *const *texts, size_t n);
    /* Returns: the array of {index, score} objects in reply, and the score field's name. */
    json_t *(*results)(json_t *reply, const char **score_field);
};

static json_t *texts_array(const char *const *texts, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(texts[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static char *tei_body(const retrieve_reranker *r, const char *query, size_t query_len,
                      const char *const *texts, size_t n)
{
    (void)r;
    json_t *a = texts_array(texts, n);
    json_t *o = a ? json_pack("{s:s%, s:o, s:b, s:b}", "query", query, query_len, "texts", a,
                              "truncate", 1, "raw_scores", 0)
                  : NULL;
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static json_t *tei_results(json_t *reply, const char **score_field)
{
    *score_field = "score";
    return json_is_array(reply) ? reply : NULL;
}

static char *cohere_body(const retrieve_reranker *r, const char *query, size_t query_len,
                         const char *const *texts, size_t n)
{
    json_t *a = texts_array(texts, n);
    json_t *o = a ? json_pack("{s:s%, s:o, s:I}", "query", query, query_len, "documents", a,
                              "top_n", (json_int_t)n)
                  : NULL;
    if (o && r->model[0]) json_object_set_new(o, "model", json_string(r->model));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static json_t *cohere_results(json_t *reply, const char **score_field)
{
    *score_field = "relevance_score";
    json_t *a = json_object_get(reply, "results");
    if (a == NULL) a = json_object_get(reply, "data"); /* Voyage */
    return json_is_array(a) ? a : NULL;
}

static const rerank_provider providers[] = {
    {"tei", "/rerank", tei_body, tei_results},
    {"cohere", "/v1/rerank", cohere_body, cohere_results},
};

/* ---- life cycle -------------------------------------------------------------------------------- */

ragd_rc retrieve_reranker_new(const ragd_cfg *cfg, retrieve_reranker **out, ragd_err *err)
{
    *out = NULL;
    if (cfg->rerank_provider == NULL || strcmp(cfg->rerank_provider, "none") == 0) return RAGD_OK;
    const rerank_provider *p = NULL;
    for (size_t i = 0; i < sizeof providers / sizeof providers[0]; i++)
        if (strcmp(providers[i].name, cfg->rerank_provider) == 0) p = &providers[i];
    if (p == NULL)
        return ragd_err_set(err, RAGD_ERR_CONFIG, "rerank.provider: unknown provider '%s'",
                            cfg->rerank_provider);
    const char *base = cfg->rerank_base_url ? cfg->rerank_base_url : "";
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
        return ragd_err_set(err, RAGD_ERR_CONFIG, "rerank.base_url must start with http:// or "
                            "https://");
    retrieve_reranker *r = calloc(1, sizeof *r);
    if (r == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    r->cfg = cfg;
    r->provider = p;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/') blen--;
    util_buf u = {0};
    int bad = util_buf_append(&u, base, blen) || util_buf_puts(&u, p->path);
    r->url = bad ? NULL : util_buf_steal(&u);
    util_buf_free(&u);
    r->model = strdup(cfg->rerank_model ? cfg->rerank_model : "");
    r->cache = calloc((size_t)CACHE_SETS * CACHE_WAYS, sizeof *r->cache);
    r->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (r->headers && cfg->rerank_api_key && cfg->rerank_api_key[0]) {
        util_buf h = {0};
        struct curl_slist *more = NULL;
        if (util_buf_printf(&h, "Authorization: Bearer %s", cfg->rerank_api_key) == 0)
            more = curl_slist_append(r->headers, h.data);
        if (h.data) memset(h.data, 0, h.len); /* the key does not linger in freed memory */
        util_buf_free(&h);
        if (more == NULL) {
            curl_slist_free_all(r->headers);
            r->headers = NULL;
        }
    }
    r->stats.provider = p->name;
    r->stats.model = r->model;
    pthread_mutex_init(&r->mu, NULL);
    if (r->url && r->model && r->cache && r->headers && cfg->cache_redis_url &&
        cfg->cache_redis_url[0]) {
        /* Redis only: the in-process layer above is this module's own (doubles, not floats) */
        ragd_cfg redis_only = *cfg;
        redis_only.cache_memory_entries = 0;
        char name[32];
        snprintf(name, sizeof name, "rerank-%s", p->name);
        ragd_rc rc = cache_query_new(&redis_only, name, r->model, 2, &r->redis, err);
        if (rc != RAGD_OK) {
            retrieve_reranker_free(r);
            return rc;
        }
        cache_query_scores(r->redis);
    }
    if (r->url == NULL || r->model == NULL || r->cache == NULL || r->headers == NULL) {
        retrieve_reranker_free(r);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    *out = r;
    return RAGD_OK;
}

void retrieve_reranker_free(retrieve_reranker *r)
{
    if (r == NULL) return;
    for (size_t i = 0; i < r->pool_n; i++) curl_easy_cleanup(r->pool[i]);
    cache_query_free(r->redis);
    curl_slist_free_all(r->headers);
    pthread_mutex_destroy(&r->mu);
    free(r->cache);
    free(r->url);
    free(r->model);
    free(r);
}

int retrieve_rerank_wanted(const retrieve_reranker *r, int choice)
{
    return r != NULL && choice != RAGD_RERANK_OFF;
}

void retrieve_reranker_stats(const retrieve_reranker *r, rerank_stats *out)
{
    memset(out, 0, sizeof *out);
    out->provider = "none";
    out->model = "";
    if (r == NULL) return;
    pthread_mutex_lock((pthread_mutex_t *)&r->mu);
    *out = r->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
}

/* ---- score cache ------------------------------------------------------------------------------- */

static void pair_key(const retrieve_reranker *r, const char *query, size_t query_len,
                     const char *text, unsigned char key[32])
{
    util_buf b = {0};
    int bad = util_buf_puts(&b, r->provider->name) || util_buf_append(&b, "", 1) ||
              util_buf_puts(&b, r->model) || util_buf_append(&b, "", 1) ||
              util_buf_append(&b, query, query_len) || util_buf_append(&b, "", 1) ||
              util_buf_puts(&b, text);
    char hex[UTIL_SHA256_HEX_LEN + 1];
    /* on OOM the key is of the text alone, which only lowers the hit rate of a later lookup */
    util_sha256_hex(bad ? text : b.data, bad ? strlen(text) : b.len, hex);
    util_buf_free(&b);
    for (int i = 0; i < 32; i++) {
        unsigned hi = (unsigned)(hex[2 * i] <= '9' ? hex[2 * i] - '0' : hex[2 * i] - 'a' + 10);
        unsigned lo = (unsigned)(hex[2 * i + 1] <= '9' ? hex[2 * i + 1] - '0'
                                                       : hex[2 * i + 1] - 'a' + 10);
        key[i] = (unsigned char)(hi << 4 | lo);
    }
}

/* Caller holds r->mu. Returns: 1 and *score when key is cached. */
static int cache_get(retrieve_reranker *r, const unsigned char key[32], double *score)
{
    size_t set = ((size_t)key[0] | (size_t)key[1] << 8) % CACHE_SETS;
    cache_way *w = &r->cache[set * CACHE_WAYS];
    for (int i = 0; i < CACHE_WAYS; i++)
        if (w[i].used && memcmp(w[i].key, key, 32) == 0) {
            w[i].used = ++r->tick;
            *score = w[i].score;
            return 1;
        }
    return 0;
}

/* Caller holds r->mu. */
static void cache_put(retrieve_reranker *r, const unsigned char key[32], double score)
{
    size_t set = ((size_t)key[0] | (size_t)key[1] << 8) % CACHE_SETS;
    cache_way *w = &r->cache[set * CACHE_WAYS];
    int victim = 0;
    for (int i = 0; i < CACHE_WAYS; i++) {
        if (w[i].used && memcmp(w[i].key, key, 32) == 0) {
            victim = i;
            break;
        }
        if (w[i].used < w[victim].used) victim = i;
    }
    memcpy(w[victim].key, key, 32);
    w[victim].score = score;
    w[victim].used = ++r->tick;
}

/* ---- the call ---------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    util_buf *b = ctx;
    size_t len = size * n;
    if (b->len + len > REPLY_MAX || util_buf_append(b, p, len) != 0) return 0; /* aborts */
    return len;
}

static CURL *handle_take(retrieve_reranker *r)
{
    pthread_mutex_lock(&r->mu);
    CURL *c = r->pool_n > 0 ? r->pool[--r->pool_n] : NULL;
    pthread_mutex_unlock(&r->mu);
    if (c != NULL) curl_easy_reset(c);
    else c = curl_easy_init();
    return c;
}

static void handle_give(retrieve_reranker *r, CURL *c)
{
    pthread_mutex_lock(&r->mu);
    if (r->pool_n < HANDLE_POOL) {
        r->pool[r->pool_n++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    if (c) curl_easy_cleanup(c);
}

/* Copies a short, printable excerpt of an upstream error body into out. */
static void excerpt(const char *s, size_t n, char *out, size_t out_size)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < out_size && k < 160; i++)
        out[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : ' ';
    out[k] = '\0';
}

/* Replaces every occurrence of the API key in msg by <redacted>: an upstream that echoes the
 * request's headers in its error body must not put the key into answers, /health or the log. */
static void key_scrub(const char *key, char *msg, size_t size)
{
    size_t kl = key ? strlen(key) : 0;
    if (kl < 4) return;
    char *from = msg, *p;
    while ((p = strstr(from, key)) != NULL) {
        char rest[256];
        snprintf(rest, sizeof rest, "%s", p + kl);
        snprintf(p, size - (size_t)(p - msg), "<redacted>%s", rest);
        from = p + strlen("<redacted>") < msg + size ? p + strlen("<redacted>") : msg + size - 1;
        if (from > msg + strlen(msg)) break;
    }
}

/* One upstream call for texts[0..n). Returns: 0 and scores, or -1 with run->fallback/error set;
 * -2 on OOM. */
static int rerank_call(retrieve_reranker *r, const char *query, size_t query_len,
                       const char *const *texts, size_t n, double *scores, rerank_run *run)
{
    char *body = r->provider->body(r, query, query_len, texts, n);
    if (body == NULL) return -2;
    CURL *c = handle_take(r);
    if (c == NULL) {
        free(body);
        return -2;
    }
    long timeout = r->cfg->rerank_timeout_ms;
    util_buf reply = {0};
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ragd/" RAGD_VERSION);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    double t0 = util_now_ms();
    CURLcode cc = curl_easy_perform(c);
    double ms = util_now_ms() - t0;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    handle_give(r, c);
    free(body);
    int rc = 0;
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        run->fallback = "timeout";
        snprintf(run->error, sizeof run->error, "no answer within [rerank] timeout_ms = %ld",
                 timeout);
        rc = -1;
    } else if (cc != CURLE_OK) {
        run->fallback = "error";
        snprintf(run->error, sizeof run->error, "%s", curl_easy_strerror(cc));
        rc = -1;
    } else if (status != 200) {
        char ex[164];
        excerpt(reply.data ? reply.data : "", reply.len, ex, sizeof ex);
        run->fallback = "error";
        snprintf(run->error, sizeof run->error, "HTTP %ld: %s", status, ex);
        key_scrub(r->cfg->rerank_api_key, run->error, sizeof run->error);
        rc = -1;
    }
    json_t *doc = NULL;
    if (rc == 0) {
        json_error_t je;
        doc = json_loadb(reply.data ? reply.data : "", reply.len, 0, &je);
        const char *field = NULL;
        json_t *results = doc ? r->provider->results(doc, &field) : NULL;
        unsigned char *seen = calloc(n ? n : 1, 1);
        size_t got = 0;
        if (seen == NULL) rc = -2;
        for (size_t i = 0; rc == 0 && results && i < json_array_size(results); i++) {
            json_t *item = json_array_get(results, i);
            json_t *idx = json_object_get(item, "index");
            json_t *sc = json_object_get(item, field);
            if (!json_is_integer(idx) || !json_is_number(sc) || json_integer_value(idx) < 0 ||
                (size_t)json_integer_value(idx) >= n || seen[json_integer_value(idx)] ||
                !isfinite(json_number_value(sc))) {
                results = NULL; /* a malformed entry spoils the whole reply */
                break;
            }
            seen[json_integer_value(idx)] = 1;
            scores[json_integer_value(idx)] = json_number_value(sc);
            got++;
        }
        free(seen);
        if (rc == 0 && (results == NULL || got != n)) {
            run->fallback = "error";
            snprintf(run->error, sizeof run->error, "reply is not a %s rerank answer for %zu "
                     "texts", r->provider->name, n);
            rc = -1;
        }
    }
    json_decref(doc);
    util_buf_free(&reply);
    /* tokens: a cross-encoder reads the query beside every text */
    uint64_t tokens = 0;
    size_t qt = ingest_tokens_count(query, query_len);
    for (size_t i = 0; i < n; i++) tokens += qt + ingest_tokens_count(texts[i], strlen(texts[i]));
    pthread_mutex_lock(&r->mu);
    r->stats.calls++;
    r->stats.last_ms = ms;
    r->stats.tokens += tokens;
    r->stats.cost_usd += (double)tokens * r->cfg->rerank_price_per_million / 1e6;
    if (rc == -1) {
        r->stats.failures++;
        if (run->fallback && strcmp(run->fallback, "timeout") == 0) r->stats.timeouts++;
        snprintf(r->stats.last_error, sizeof r->stats.last_error, "%s", run->error);
    } else if (rc == 0) {
        r->stats.last_error[0] = '\0';
    }
    pthread_mutex_unlock(&r->mu);
    metrics_counter_add(RAGD_METRIC_RERANK_REQUESTS, 1);
    metrics_counter_add(RAGD_METRIC_RERANK_TOKENS, tokens);
    metrics_histogram_observe(RAGD_METRIC_RERANK_SECONDS, ms);
    if (rc == -1) {
        metrics_counter_add(RAGD_METRIC_RERANK_FAILURES, 1);
        RAGD_LOG(RAGD_LOG_WARN, "rerank", "%s reranker failed, fused order kept: %s",
                 r->provider->name, run->error);
    }
    return rc;
}

ragd_rc retrieve_rerank_score(retrieve_reranker *r, const char *query, size_t query_len,
                              const char *const *texts, size_t n, double *scores, rerank_run *run,
                              ragd_err *err)
{
    double t0 = util_now_ms();
    memset(run, 0, sizeof *run);
    run->requested = 1;
    run->candidates = n;
    if (n == 0) {
        run->applied = 1;
        return RAGD_OK;
    }
    unsigned char (*keys)[32] = malloc(sizeof *keys * n);
    size_t *miss = malloc(sizeof *miss * n);
    const char **miss_texts = malloc(sizeof *miss_texts * n);
    double *miss_scores = malloc(sizeof *miss_scores * n);
    if (!keys || !miss || !miss_texts || !miss_scores) {
        free(keys);
        free(miss);
        free(miss_texts);
        free(miss_scores);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) pair_key(r, query, query_len, texts[i], keys[i]);
    size_t m = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < n; i++) {
        if (cache_get(r, keys[i], &scores[i])) {
            run->cache_hits++;
        } else {
            miss[m] = i;
            miss_texts[m++] = texts[i];
        }
    }
    pthread_mutex_unlock(&r->mu);
    /* the shared layer for what this process has not seen: keyed by query and text */
    util_buf key = {0};
    size_t still = 0;
    for (size_t j = 0; j < m; j++) {
        float v[2];
        int hit = 0;
        if (r->redis != NULL) {
            key.len = 0;
            if (util_buf_append(&key, query, query_len) == 0 && util_buf_append(&key, "", 1) == 0 &&
                util_buf_puts(&key, miss_texts[j]) == 0)
                hit = cache_query_get(r->redis, key.data, key.len, v) == RAGD_CACHE_REDIS;
        }
        if (hit) {
            scores[miss[j]] = (double)v[0] + (double)v[1]; /* high and low parts of the double */
            run->cache_hits++;
            pthread_mutex_lock(&r->mu);
            cache_put(r, keys[miss[j]], scores[miss[j]]);
            pthread_mutex_unlock(&r->mu);
        } else {
            miss[still] = miss[j];
            miss_texts[still++] = miss_texts[j];
        }
    }
    m = still;
    pthread_mutex_lock(&r->mu);
    r->stats.cache_hits += run->cache_hits;
    r->stats.cache_misses += m;
    pthread_mutex_unlock(&r->mu);
    metrics_counter_add(RAGD_METRIC_RERANK_CACHE_HITS, run->cache_hits);
    metrics_counter_add(RAGD_METRIC_RERANK_CACHE_MISSES, m);
    int rc = m > 0 ? rerank_call(r, query, query_len, miss_texts, m, miss_scores, run) : 0;
    if (rc == 0) {
        pthread_mutex_lock(&r->mu);
        for (size_t j = 0; j < m; j++) {
            scores[miss[j]] = miss_scores[j];
            cache_put(r, keys[miss[j]], miss_scores[j]);
        }
        pthread_mutex_unlock(&r->mu);
        for (size_t j = 0; r->redis != NULL && j < m; j++) {
            key.len = 0;
            if (util_buf_append(&key, query, query_len) != 0 || util_buf_append(&key, "", 1) != 0 ||
                util_buf_puts(&key, miss_texts[j]) != 0)
                break;
            float v[2];
            v[0] = (float)miss_scores[j];
            v[1] = (float)(miss_scores[j] - (double)v[0]);
            cache_query_put(r->redis, key.data, key.len, v);
        }
        run->applied = 1;
        run->best = scores[0];
        for (size_t i = 1; i < n; i++)
            if (scores[i] > run->best) run->best = scores[i];
    }
    util_buf_free(&key);
    free(keys);
    free(miss);
    free(miss_texts);
    free(miss_scores);
    run->ms = util_now_ms() - t0;
    if (rc == -2) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    return RAGD_OK;
}

void retrieve_rerank_order(const double *scores, size_t n, size_t *order)
{
    /* insertion sort: n is the candidate count (tens), and it is stable */
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0 && scores[order[j - 1]] < scores[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}
