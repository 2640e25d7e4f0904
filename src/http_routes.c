/* SPDX-License-Identifier: MIT */
/*
 * http_routes.c - the HTTP API's routes: request validation (every field checked for type and
 * range, unknown fields refused so typos do not pass silently), JSON responses, and the one
 * mapping from ragd_rc to HTTP status and error code. No libmicrohttpd here: the server hands
 * complete bodies in and sends the replies out.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "http_int.h"
#include "ragd/engine.h"
#include "ragd/filter.h"
#include "ragd/http.h"
#include "ragd/log.h"
#include "ragd/log_event.h"
#include "ragd/metrics.h"
#include "ragd/retrieve.h"
#include "ragd/util.h"

#define QUERY_MAX_BYTES 8192
#define TAGS_MAX 32

/* ---- errors ------------------------------------------------------------------------------- */

http_reply http_reply_error(ragd_rc rc, const char *code_override, const char *message)
{
    static const struct {
        ragd_rc rc;
        unsigned status;
        const char *code;
    } map[] = {
        {RAGD_ERR_INVALID, 400, "invalid_request"},
        {RAGD_ERR_UNSUPPORTED, 400, "unsupported"},
        {RAGD_ERR_UNAUTHORIZED, 401, "unauthorized"},
        {RAGD_ERR_FORBIDDEN, 403, "forbidden"},
        {RAGD_ERR_NOT_FOUND, 404, "not_found"},
        {RAGD_ERR_BUSY, 409, "busy"},
        {RAGD_ERR_LOCKED, 409, "locked"},
        {RAGD_ERR_MODEL_MISMATCH, 409, "model_mismatch"},
        {RAGD_ERR_TOO_LARGE, 413, "payload_too_large"},
        {RAGD_ERR_EMBED, 502, "embed_error"},
        {RAGD_ERR_UPSTREAM_REFUSED, 502, "upstream_refused"},
        {RAGD_ERR_TIMEOUT, 504, "timeout"},
        {RAGD_ERR_DISABLED, 503, "disabled"},
        {RAGD_ERR_UNAVAILABLE, 503, "unavailable"},
    };
    unsigned status = 500;
    const char *code = "internal";
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (map[i].rc == rc) {
            status = map[i].status;
            code = map[i].code;
            break;
        }
    }
    /* HTTP-level conditions that have no ragd_rc of their own. */
    if (code_override) {
        code = code_override;
        if (strcmp(code_override, "method_not_allowed") == 0) status = 405;
    }
    http_reply r = {.status = status};
    r.body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message",
                       message ? message : "");
    if (status >= 500)
        RAGD_LOG(RAGD_LOG_ERROR, "http", "%u %s: %s request_id=%s", status, code,
                 message ? message : "", log_record_request_id());
    return r;
}

static http_reply reply_invalid(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static http_reply reply_invalid(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return http_reply_error(RAGD_ERR_INVALID, NULL, msg);
}

/* ---- routing ------------------------------------------------------------------------------ */

http_route http_route_find(const char *method, const char *url, const char **allow,
                           int *method_ok)
{
    static const struct {
        const char *path;
        const char *method; /* one method, or a list "GET, POST" (also the Allow header) */
        http_route route;
        int prefix;         /* path is a prefix followed by a non-empty id: "/jobs/<id>" */
    } routes[] = {
        {"/", "GET", RAGD_ROUTE_ROOT, 0},
        {"/health", "GET", RAGD_ROUTE_HEALTH, 0},
        {"/retrieve", "POST", RAGD_ROUTE_RETRIEVE, 0},
        {"/ingest", "POST", RAGD_ROUTE_INGEST, 0},
        {"/documents", "GET, POST", RAGD_ROUTE_DOCUMENTS, 0},
        {"/documents/", "GET, DELETE", RAGD_ROUTE_DOCUMENT, 1},
        {"/jobs/", "GET", RAGD_ROUTE_JOB, 1},
        {"/metrics", "GET", RAGD_ROUTE_METRICS, 0},
        {"/context", "POST", RAGD_ROUTE_CONTEXT, 0},
    };
    *method_ok = 1;
    *allow = NULL;
    /* Ignore a query string; paths match exactly, with one optional trailing slash. */
    size_t n = strcspn(url, "?");
    size_t full = n;
    if (n > 1 && url[n - 1] == '/') n--;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        size_t pl = strlen(routes[i].path);
        if (routes[i].prefix ? !(full > pl && strncmp(routes[i].path, url, pl) == 0)
                             : (pl != n || strncmp(routes[i].path, url, n) != 0))
            continue;
        int ok = 0;
        for (const char *m = routes[i].method; *m && !ok;) {
            size_t ml = strcspn(m, ",");
            ok = (strlen(method) == ml && strncmp(method, m, ml) == 0) ||
                 (strcmp(method, "HEAD") == 0 && ml == 3 && strncmp(m, "GET", 3) == 0);
            m += ml;
            while (*m == ',' || *m == ' ') m++;
        }
        if (!ok) {
            *method_ok = 0;
            *allow = routes[i].method;
        }
        return routes[i].route;
    }
    return RAGD_ROUTE_NONE;
}

const char *http_route_name(http_route route)
{
    switch (route) {
    case RAGD_ROUTE_ROOT: return "/";
    case RAGD_ROUTE_HEALTH: return "/health";
    case RAGD_ROUTE_RETRIEVE: return "/retrieve";
    case RAGD_ROUTE_INGEST: return "/ingest";
    case RAGD_ROUTE_METRICS: return "/metrics";
    case RAGD_ROUTE_DOCUMENTS: return "/documents";
    case RAGD_ROUTE_DOCUMENT: return "/documents/{id}";
    case RAGD_ROUTE_JOB: return "/jobs/{id}";
    case RAGD_ROUTE_CONTEXT: return "/context";
    case RAGD_ROUTE_NONE: break;
    }
    return "other";
}

/* Parses a request body that must be a JSON object. Returns: new reference, or NULL with *reply
 * set to the 400. */
static json_t *body_object(const char *body, size_t len, http_reply *reply)
{
    if (body == NULL || len == 0) {
        *reply = http_reply_error(RAGD_ERR_INVALID, "invalid_json",
                                  "request body is empty; expected a JSON object");
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        char msg[300];
        snprintf(msg, sizeof msg, "malformed JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        *reply = http_reply_error(RAGD_ERR_INVALID, "invalid_json", msg);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        *reply = http_reply_error(RAGD_ERR_INVALID, NULL, "request body must be a JSON object");
        return NULL;
    }
    return root;
}

const char *http_json_unknown_key(json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (size_t i = 0; allowed[i] && !ok; i++) ok = strcmp(key, allowed[i]) == 0;
        if (!ok) return key;
    }
    return NULL;
}

/* Refuses keys of obj not in allowed (NULL-terminated). Returns: 0, or -1 with *reply set. */
static int keys_check(json_t *obj, const char *const *allowed, const char *where,
                      http_reply *reply)
{
    const char *key = http_json_unknown_key(obj, allowed);
    if (key == NULL) return 0;
    char msg[300];
    util_buf names = {0};
    for (size_t i = 0; allowed[i]; i++) util_buf_printf(&names, "%s%s", i ? ", " : "", allowed[i]);
    snprintf(msg, sizeof msg, "unknown field '%.64s' in %s; known fields: %s", key, where,
             names.data ? names.data : "");
    util_buf_free(&names);
    *reply = http_reply_error(RAGD_ERR_INVALID, NULL, msg);
    return -1;
}

/* ---- GET / and GET /health ---------------------------------------------------------------- */

static http_reply handle_root(void)
{
    http_reply r = {.status = 200};
    r.body = json_pack("{s:s, s:s, s:[s,s,s,s,s,s,s,s,s,s,s]}", "name", "ragd", "version",
                       RAGD_VERSION, "endpoints", "GET /health", "POST /retrieve",
                       "POST /context", "POST /ingest", "GET /", "GET /metrics",
                       "POST /documents", "GET /documents", "GET /documents/{id}",
                       "DELETE /documents/{id}", "GET /jobs/{id}");
    return r;
}

/* Returns: bytes the store takes on disk (database, its WAL, the index), 0 when unknown. */
static int64_t store_disk_bytes(const ragd_cfg *cfg)
{
    static const char *const files[] = {"ragd.sqlite3", "ragd.sqlite3-wal", "index.faiss"};
    int64_t total = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *p = util_path_join(cfg->data_dir, files[i]);
        struct stat st;
        if (p && stat(p, &st) == 0) total += (int64_t)st.st_size;
        free(p);
    }
    return total;
}

static void reason_add(json_t *reasons, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reason_add(json_t *reasons, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(reasons, json_string(msg));
}

/* Appends the query cache's degradation (Redis configured but down) to reasons.
 * Returns: 1 when it added one. */
static int http_cache_reason_add(const cache_stats *c, json_t *reasons)
{
    if (!c->redis_configured || c->redis_up) return 0;
    char msg[512];
    snprintf(msg, sizeof msg, "query cache: Redis at %s is unreachable (%s); answering without it",
             c->redis_where, c->redis_reason[0] ? c->redis_reason : "not connected");
    json_array_append_new(reasons, json_string(msg));
    return 1;
}

/* Adds the embedder's usage and the cache's state to a /health body. */
static void http_embed_cache_fields(const engine_stats *s, json_t *body)
{
    const embed_counters *k = &s->embed;
    json_t *embedder = json_object_get(body, "embedder");
    if (json_is_object(embedder)) {
        json_object_set_new(embedder, "requests", json_integer((json_int_t)k->requests));
        json_object_set_new(embedder, "inputs", json_integer((json_int_t)k->inputs));
        json_object_set_new(embedder, "tokens", json_integer((json_int_t)k->tokens));
        json_object_set_new(embedder, "estimated_cost_usd", json_real(k->cost_usd));
        json_object_set_new(embedder, "retries", json_integer((json_int_t)k->retries));
        json_object_set_new(
            embedder, "errors",
            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "rate_limited",
                      (json_int_t)k->errors_rate_limited, "server", (json_int_t)k->errors_server,
                      "timeout", (json_int_t)k->errors_timeout, "network",
                      (json_int_t)k->errors_network, "bad_reply", (json_int_t)k->errors_bad_reply,
                      "refused", (json_int_t)k->errors_refused));
    }
    const cache_stats *c = &s->cache;
    json_t *redis = json_pack("{s:s, s:I, s:I, s:I, s:I}", "state",
                              !c->redis_configured ? "off" : c->redis_up ? "up" : "down", "hits",
                              (json_int_t)c->redis_hits, "misses", (json_int_t)c->redis_misses,
                              "errors", (json_int_t)c->redis_errors, "reconnects",
                              (json_int_t)c->redis_reconnects);
    if (redis && c->redis_configured) {
        json_object_set_new(redis, "where", json_string(c->redis_where));
        json_object_set_new(redis, "reason", json_string(c->redis_reason));
        json_object_set_new(redis, "down_since", json_integer((json_int_t)c->redis_down_since));
    }
    json_object_set_new(body, "cache",
                        json_pack("{s:{s:I, s:I, s:I, s:I}, s:o*}", "memory", "entries",
                                  (json_int_t)c->memory_entries, "capacity",
                                  (json_int_t)c->memory_capacity, "hits",
                                  (json_int_t)c->memory_hits, "misses",
                                  (json_int_t)c->memory_misses, "redis", redis));
}

/* The /health document: "ok"; "degraded" (200) when ragd answers but something is off (RAG
 * disabled, embedder failing, last ingest failed, index partly out of step, a configured Redis
 * down); with the embedder's usage and the query cache's state; "down" (503) when
 * retrievals cannot be answered (store unreadable, index empty while the store has chunks). */
static http_reply handle_health(engine *e, const ragd_cfg *cfg)
{
    engine_stats s;
    ragd_err err = {0};
    int rag_enabled = __atomic_load_n(&cfg->rag_enabled, __ATOMIC_RELAXED);
    if (engine_stats_get(e, &s, &err) != RAGD_OK) {
        http_reply r = {.status = 503};
        r.body = json_pack("{s:s, s:s, s:b, s:{s:b, s:b}, s:[s]}", "status", "down", "version",
                           RAGD_VERSION, "rag_enabled", rag_enabled, "rag", "enabled", rag_enabled,
                           "available", 0, "reasons", err.msg);
        return r;
    }
    json_t *reasons = json_array();
    int down = 0;
    if (s.chunks > 0 && s.index_vectors == 0) {
        down = 1;
        reason_add(reasons, "vector index is empty while the store has %lld chunks: retrievals "
                   "cannot answer", (long long)s.chunks);
    } else if (!s.index_consistent) {
        reason_add(reasons, "vector index out of step with SQLite (%zu vectors, %lld chunks)",
                   s.index_vectors, (long long)s.chunks);
    }
    if (!rag_enabled)
        reason_add(reasons, "RAG is disabled by configuration (RAG_ENABLED=false or [rag] "
                   "enabled=false): /retrieve answers with no context");

    double p50 = 0, p95 = 0;
    size_t samples = 0;
    int reachable = 1;
    char embed_error[256];
    metrics_embed_state(&p50, &p95, &samples, &reachable, embed_error, sizeof embed_error);
    if (!reachable) reason_add(reasons, "embedder unreachable: %s", embed_error);

    int64_t ingest_at = 0;
    char ingest_result[16], ingest_message[256];
    metrics_ingest_state(&ingest_at, ingest_result, sizeof ingest_result, ingest_message,
                         sizeof ingest_message);
    if (strcmp(ingest_result, "failed") == 0)
        reason_add(reasons, "last ingest failed: %s", ingest_message);
    http_cache_reason_add(&s.cache, reasons);

    const char *status = down ? "down" : json_array_size(reasons) > 0 ? "degraded" : "ok";
    http_reply r = {.status = down ? 503 : 200};
    r.body = json_pack(
        "{s:s, s:s, s:b, s:{s:b, s:b}, s:{s:I, s:I, s:I, s:I, s:I, s:b}, s:I, "
        "s:{s:s, s:s, s:i, s:b, s:s, s:{s:f, s:f, s:I}}, "
        "s:{s:b, s:I, s:b, s:s, s:s}, s:o}",
        "status", status, "version", RAGD_VERSION, "rag_enabled", rag_enabled, "rag", "enabled",
        rag_enabled, "available", rag_enabled && !down, "store", "documents",
        (json_int_t)s.documents, "chunks", (json_int_t)s.chunks, "embeddings",
        (json_int_t)s.embeddings, "index_vectors", (json_int_t)s.index_vectors, "index_bytes",
        (json_int_t)s.index_bytes, "consistent", s.index_consistent, "disk_bytes",
        (json_int_t)store_disk_bytes(cfg), "embedder", "provider", s.embed_provider, "model",
        s.embed_model, "dims", s.embed_dims, "reachable", reachable, "last_error", embed_error,
        "latency_ms", "p50", p50, "p95", p95, "samples", (json_int_t)samples, "ingest", "running",
        s.ingest_running, "last_at", (json_int_t)s.last_ingest_at, "last_ok", s.last_ingest_ok,
        "last_result", ingest_result, "last_message", ingest_message, "reasons", reasons);
    if (r.body) http_embed_cache_fields(&s, r.body);
    if (r.body) http_rerank_health(&s, r.body);
    return r;
}

/* ---- GET /metrics ------------------------------------------------------------------------- */

static http_reply handle_metrics(engine *e)
{
    engine_stats s;
    ragd_err err = {0};
    metrics_gauges g = {0};
    if (engine_stats_get(e, &s, &err) == RAGD_OK) {
        g.have_store = 1;
        g.documents = s.documents;
        g.chunks = s.chunks;
        g.embeddings = s.embeddings;
        g.index_vectors = (int64_t)s.index_vectors;
        g.index_bytes = (int64_t)s.index_bytes;
        g.rerank_cost_usd = s.rerank.cost_usd;
    }
    util_buf out = {0};
    if (metrics_render(&g, &out) != 0) {
        util_buf_free(&out);
        return http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory rendering metrics");
    }
    http_reply r = {.status = 200, .content_type = "text/plain; version=0.0.4; charset=utf-8"};
    r.text = util_buf_steal(&out);
    if (r.text == NULL) return http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
    return r;
}

/* ---- POST /retrieve ----------------------------------------------------------------------- */

static json_t *json_or(const char *text, json_t *fallback)
{
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    if (v == NULL) return fallback;
    json_decref(fallback);
    return v;
}

/* Returns: a side's score as JSON: the number, or null when the chunk was not on that side. */
static json_t *side_score(int rank, double score)
{
    return rank > 0 ? json_real(score) : json_null();
}

json_t *http_answer_json(const engine_query *q, const engine_answer *a)
{
    json_t *results = json_array();
    json_t *sources = json_array();
    for (size_t i = 0; i < a->count; i++) {
        const engine_result *r = &a->results[i];
        const store_hit *h = &r->hit;
        json_t *o = json_pack(
            "{s:I, s:f, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "rank",
            (json_int_t)(i + 1), "score", r->score, "text", h->text, "source", h->source, "title",
            h->title, "heading", h->heading, "chunk", h->ordinal, "chunk_id",
            (json_int_t)h->chunk_id, "document_id", (json_int_t)h->document_id, "tokens",
            (json_int_t)h->tokens, "char_start", (json_int_t)h->char_start, "char_end",
            (json_int_t)h->char_end, "tags", json_or(h->tags_json, json_array()), "metadata",
            json_or(h->metadata_json, json_object()));
        if (o) {
            json_object_set_new(o, "vector_score", side_score(r->vector_rank, r->vector_score));
            json_object_set_new(o, "keyword_score", side_score(r->keyword_rank, r->keyword_score));
            int n = a->context.result_n ? a->context.result_n[i] : 0;
            json_object_set_new(o, "context_n", n > 0 ? json_integer(n) : json_null());
            /* page: the chunk's page in a paged document (PDF), null otherwise */
            json_object_set_new(o, "page", h->page > 0 ? json_integer(h->page) : json_null());
        }
        json_array_append_new(results, o);
    }
    for (size_t i = 0; i < a->context.source_count; i++) {
        const retrieve_source *s = &a->context.sources[i];
        json_t *ranks = json_array();
        for (size_t j = 0; j < s->rank_count; j++)
            json_array_append_new(ranks, json_integer((json_int_t)s->ranks[j]));
        json_array_append_new(sources, json_pack("{s:I, s:s, s:s, s:s, s:o, s:o, s:i, s:b}", "n",
                                                 (json_int_t)s->n, "source", s->hit->source,
                                                 "title", s->hit->title, "heading", s->heading,
                                                 "page", s->page > 0 ? json_integer(s->page)
                                                                     : json_null(),
                                                 "ranks", ranks, "tokens", s->tokens,
                                                 "truncated", s->truncated));
    }
    json_t *o = json_pack("{s:s%, s:b, s:b, s:o, s:s, s:o, s:{s:f, s:f, s:f, s:f}}", "query",
                          q->query, q->query_len, "rag_enabled", a->rag_enabled,
                          "low_confidence", a->low_confidence, "results", results, "context",
                          a->context.text ? a->context.text : "", "sources", sources,
                          "timings_ms", "embed", a->embed_ms, "search", a->search_ms, "fetch",
                          a->fetch_ms, "total", a->total_ms);
    if (o) {
        json_object_set_new(o, "retrieved", json_boolean(a->retrieved));
        json_object_set_new(o, "mode", json_string(retrieve_mode_name(a->mode)));
        json_object_set_new(o, "fusion", a->mode == RAGD_MODE_HYBRID
                                             ? json_string(retrieve_fusion_name(a->fusion))
                                             : json_null());
        json_object_set_new(o, "diversity", json_boolean(a->diversity));
        json_object_set_new(o, "coverage", a->coverage >= 0 ? json_real(a->coverage)
                                                            : json_null());
        json_object_set_new(o, "unknown_share", a->unknown_share >= 0
                                                    ? json_real(a->unknown_share)
                                                    : json_null());
        json_object_set_new(o, "context_tokens", json_integer(a->context.tokens));
        json_object_set_new(o, "max_context_tokens", json_integer(a->max_context_tokens));
        if (a->clarify) json_object_set_new(o, "clarifying_question", json_string(a->clarify));
        if (q->intent) json_object_set_new(o, "intent", json_string(q->intent));
        if (a->cache_layer) {
            json_object_set_new(o, "embedding_cache", json_string(a->cache_layer));
            json_object_set_new(json_object_get(o, "timings_ms"), "cache", json_real(a->cache_ms));
        }
    }
    if (o) http_rerank_answer(a, results, o);
    if (o && !a->rag_enabled)
        json_object_set_new(o, "message",
                            json_string("RAG is disabled (RAG_ENABLED=false or [rag] "
                                        "enabled=false): no context is retrieved"));
    else if (o && !a->retrieved)
        json_object_set_new(o, "message",
                            json_string("this intent does not retrieve ([intent] retrieve): no "
                                        "context is retrieved"));
    return o;
}

/* Parses the body of POST /retrieve and POST /context into q (strings borrowed from *root, which
 * the caller frees with json_decref; tags must hold TAGS_MAX). Returns: 0, or -1 with *reply set
 * to the 400. */
/* Parses a /retrieve or /context body into *qp (strings borrowed from *rootp, which the caller
 * frees with json_decref even on failure). *filterp: new (free with retrieve_filter_free) when
 * the request has an OpenAI-style filter, else NULL. Returns: 0, or -1 with *replyp set. */
static int retrieve_parse(const ragd_cfg *cfg, const char *body, size_t len, json_t **rootp,
                          engine_query *qp, const char **tags, retrieve_filter **filterp,
                          http_reply *replyp)
{
    static const char *const fields[] = {"query", "k", "min_score", "filters", "intent", "mode",
                                         "fusion", "diversity", "max_context_tokens", "rerank",
                                         NULL};
    static const char *const filter_fields[] = {"source", "tags", NULL};
    http_reply reply = {0};
    retrieve_filter *filter = NULL;
    *filterp = NULL;
    json_t *root = body_object(body, len, &reply);
    *rootp = root;
    if (root == NULL) {
        *replyp = reply;
        return -1;
    }
    if (keys_check(root, fields, "the request", &reply) != 0) goto out;

    engine_query q = {.k = cfg->retrieve_default_k, .min_score = cfg->retrieve_min_score};
    json_t *v = json_object_get(root, "query");
    if (v == NULL) {
        reply = reply_invalid("missing field '%s' (a non-empty string)", "query");
        goto out;
    }
    if (!json_is_string(v)) {
        reply = reply_invalid("field '%s' must be a string", "query");
        goto out;
    }
    q.query = json_string_value(v);
    q.query_len = json_string_length(v);
    size_t nonspace = 0;
    for (size_t i = 0; i < q.query_len; i++)
        nonspace += !(q.query[i] == ' ' || (q.query[i] >= '\t' && q.query[i] <= '\r'));
    if (nonspace == 0) {
        reply = reply_invalid("field '%s' must not be empty", "query");
        goto out;
    }
    /* No NUL check needed: jansson refuses \u0000 in strings (invalid_json). */
    if (q.query_len > QUERY_MAX_BYTES) {
        reply = http_reply_error(RAGD_ERR_INVALID, NULL,
                                 "field 'query' must be at most 8192 bytes");
        goto out;
    }
    if ((v = json_object_get(root, "k")) != NULL) {
        if (!json_is_integer(v)) {
            reply = reply_invalid("field '%s' must be an integer", "k");
            goto out;
        }
        json_int_t k = json_integer_value(v);
        if (k < 1 || k > cfg->retrieve_max_k) {
            char msg[128];
            snprintf(msg, sizeof msg, "field 'k' must be between 1 and %d (got %lld)",
                     cfg->retrieve_max_k, (long long)k);
            reply = http_reply_error(RAGD_ERR_INVALID, NULL, msg);
            goto out;
        }
        q.k = (int)k;
        q.k_given = 1;
    }
    if ((v = json_object_get(root, "mode")) != NULL) {
        if (!json_is_string(v) || (q.mode = retrieve_mode_parse(json_string_value(v))) == 0) {
            reply = reply_invalid("field '%s' must be \"vector\", \"keyword\" or \"hybrid\"",
                                  "mode");
            goto out;
        }
    }
    if ((v = json_object_get(root, "fusion")) != NULL) {
        if (!json_is_string(v) || (q.fusion = retrieve_fusion_parse(json_string_value(v))) == 0) {
            reply = reply_invalid("field '%s' must be \"rrf\" or \"relative\"", "fusion");
            goto out;
        }
    }
    if ((v = json_object_get(root, "rerank")) != NULL) {
        if (!json_is_boolean(v)) {
            reply = reply_invalid("field '%s' must be true or false", "rerank");
            goto out;
        }
        q.rerank = json_is_true(v) ? RAGD_RERANK_ON : RAGD_RERANK_OFF;
    }
    if ((v = json_object_get(root, "diversity")) != NULL) {
        if (!json_is_boolean(v)) {
            reply = reply_invalid("field '%s' must be true or false", "diversity");
            goto out;
        }
        q.diversity = json_is_true(v) ? RAGD_DIVERSITY_ON : RAGD_DIVERSITY_OFF;
    }
    if ((v = json_object_get(root, "max_context_tokens")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 16 ||
            json_integer_value(v) > 1000000) {
            reply = reply_invalid("field '%s' must be an integer between 16 and 1000000",
                                  "max_context_tokens");
            goto out;
        }
        q.max_context_tokens = (int)json_integer_value(v);
    }
    if ((v = json_object_get(root, "min_score")) != NULL) {
        if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
            json_number_value(v) < -1.0 || json_number_value(v) > 1.0) {
            reply = reply_invalid("field '%s' must be a number between -1 and 1", "min_score");
            goto out;
        }
        q.min_score = json_number_value(v);
    }
    if ((v = json_object_get(root, "intent")) != NULL) {
        if (!json_is_string(v)) {
            reply = reply_invalid("field '%s' must be a string", "intent");
            goto out;
        }
        q.intent = json_string_value(v);
    }
    if ((v = json_object_get(root, "filters")) != NULL && json_is_object(v) &&
        json_object_get(v, "type") != NULL) {
        /* OpenAI vector-store filter shape: {"type": ..., "key"/"filters": ...} */
        ragd_err ferr = {0};
        if (retrieve_filter_parse(v, "filters", &filter, &ferr) != RAGD_OK) {
            reply = http_reply_error(ferr.rc, NULL, ferr.msg);
            goto out;
        }
        q.filter = filter;
    } else if (v != NULL) {
        if (!json_is_object(v)) {
            reply = reply_invalid("field '%s' must be an object", "filters");
            goto out;
        }
        if (keys_check(v, filter_fields, "'filters'", &reply) != 0) goto out;
        json_t *src = json_object_get(v, "source");
        if (src != NULL) {
            if (!json_is_string(src)) {
                reply = reply_invalid("field '%s' must be a string (a source prefix)",
                                      "filters.source");
                goto out;
            }
            q.source_prefix = json_string_value(src);
        }
        json_t *tv = json_object_get(v, "tags");
        if (tv != NULL) {
            if (json_is_array(tv) && json_array_size(tv) <= TAGS_MAX) {
                size_t i;
                json_t *t;
                json_array_foreach(tv, i, t) {
                    if (!json_is_string(t)) {
                        reply = reply_invalid("field '%s' must be an array of strings",
                                              "filters.tags");
                        goto out;
                    }
                    tags[q.tag_count++] = json_string_value(t);
                }
            } else {
                reply = reply_invalid("field '%s' must be an array of at most 32 strings", "filters.tags");
                goto out;
            }
            q.tags_all = tags;
        }
    }
    *qp = q;
    *filterp = filter;
    return 0;
out:
    retrieve_filter_free(filter);
    *replyp = reply;
    return -1;
}

/* Records one retrieval (served by /retrieve or /context) in the metrics and the JSONL log. */
static void retrieval_record(const ragd_cfg *cfg, json_t *root, const engine_query *q, ragd_rc rc,
                             const engine_answer *a, const ragd_err *err)
{
    int ok = rc == RAGD_OK;
    log_retrieval rec = {.query = q->query,
                         .query_len = q->query_len,
                         .intent = json_string_value(json_object_get(root, "intent")),
                         .k = q->k,
                         .rag_enabled = ok ? a->rag_enabled : cfg->rag_enabled,
                         .results = ok ? a->count : 0,
                         .low_confidence = ok && a->low_confidence,
                         .top_score = ok && a->count > 0 ? a->results[0].score : 0.0,
                         .cache_hit = ok && a->cache_layer ? strcmp(a->cache_layer, "miss") != 0
                                                           : -1,
                         .cache_ms = ok && a->cache_layer ? a->cache_ms : -1.0,
                         .embed_ms = ok ? a->embed_ms : 0.0,
                         .search_ms = ok ? a->search_ms : 0.0,
                         .fetch_ms = ok ? a->fetch_ms : 0.0,
                         .total_ms = ok ? a->total_ms : 0.0,
                         .rc = rc,
                         .error_message = ok ? NULL : err->msg};
    log_record_retrieval(&rec, __atomic_load_n(&cfg->log_queries, __ATOMIC_RELAXED));
}

/* The part /retrieve and /context share: parse the body into *q (strings borrowed from *root,
 * which the caller frees even on failure; tags: TAGS_MAX slots the caller keeps while q is used),
 * retrieve into *a (free with engine_answer_free), record the retrieval. Returns: 0, or -1 with
 * *reply set and nothing in *a. */
static int retrieval_run(engine *e, const ragd_cfg *cfg, const char *body, size_t len,
                         json_t **root, engine_query *q, const char **tags, engine_answer *a,
                         http_reply *reply)
{
    retrieve_filter *filter = NULL;
    if (retrieve_parse(cfg, body, len, root, q, tags, &filter, reply) != 0) return -1;
    ragd_err err = {0};
    ragd_rc rc = engine_retrieve(e, q, a, &err);
    retrieval_record(cfg, *root, q, rc, a, &err);
    retrieve_filter_free(filter);
    q->filter = NULL; /* freed: the answer does not need it */
    if (rc != RAGD_OK) {
        *reply = http_reply_error(err.rc, NULL, err.msg);
        return -1;
    }
    return 0;
}

static http_reply handle_retrieve(engine *e, const ragd_cfg *cfg, const char *body, size_t len)
{
    http_reply reply = {0};
    json_t *root = NULL;
    engine_query q;
    const char *tags[TAGS_MAX];
    engine_answer a = {0};
    if (retrieval_run(e, cfg, body, len, &root, &q, tags, &a, &reply) != 0) goto out;
    reply.status = 200;
    reply.body = http_answer_json(&q, &a);
    engine_answer_free(&a);
    if (reply.body == NULL)
        reply = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory building the response");
out:
    json_decref(root);
    return reply;
}

/* ---- POST /context ------------------------------------------------------------------------ */

char *http_prompt_build(const ragd_cfg *cfg, const engine_query *q, const engine_answer *a,
                        ragd_err *err)
{
    char *file_text = NULL;
    const char *tmpl = retrieve_prompt_default();
    if (cfg->prompt_template && cfg->prompt_template[0]) {
        size_t n = 0;
        ragd_err ferr = {0};
        /* read at each request: a deployment replaces the file without a restart */
        if (util_file_read(cfg->prompt_template, 1u << 20, &file_text, &n, &ferr) != RAGD_OK) {
            ragd_err_set(err, RAGD_ERR_INTERNAL, "prompt template %s: %s", cfg->prompt_template,
                         ferr.msg);
            return NULL;
        }
        if (!util_utf8_valid(file_text, n) || strlen(file_text) != n) {
            free(file_text);
            ragd_err_set(err, RAGD_ERR_INTERNAL, "prompt template %s is not UTF-8 text",
                         cfg->prompt_template);
            return NULL;
        }
        tmpl = file_text;
    }
    /* With low confidence the model gets no context: the template's no_context branch tells it
     * to say it does not know and to ask the clarifying question. */
    int use = a->retrieved && !a->low_confidence && a->context.text && a->context.text[0];
    util_buf src = {0};
    int bad = 0;
    for (size_t i = 0; use && i < a->context.source_count; i++) {
        const retrieve_source *s = &a->context.sources[i];
        bad |= util_buf_printf(&src, "%s[%d] %s (%s", i ? "\n" : "", s->n, s->hit->title,
                               s->hit->source);
        if (s->page > 0) bad |= util_buf_printf(&src, " p.%d", s->page);
        bad |= util_buf_printf(&src, "%s%s)", s->heading[0] ? " > " : "", s->heading);
    }
    char *question = util_strndup(q->query, q->query_len);
    retrieve_prompt_vars v = {.persona = cfg->prompt_persona,
                              .tools = cfg->prompt_tools,
                              .context = use ? a->context.text : "",
                              .sources = src.data ? src.data : "",
                              .question = question ? question : "",
                              .clarify = a->clarify ? a->clarify
                                                    : "Could you tell me more about what you "
                                                      "need?"};
    char *out = NULL;
    if (bad || question == NULL)
        ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    else if (retrieve_prompt_render(tmpl, &v, &out, err) != RAGD_OK && err &&
             err->rc == RAGD_ERR_INVALID)
        err->rc = RAGD_ERR_INTERNAL; /* a bad template is the deployment's fault, not the caller's */
    free(question);
    util_buf_free(&src);
    free(file_text);
    return out;
}

static http_reply handle_context(engine *e, const ragd_cfg *cfg, const char *body, size_t len)
{
    http_reply reply = {0};
    json_t *root = NULL;
    engine_query q;
    const char *tags[TAGS_MAX];
    engine_answer a = {0};
    if (retrieval_run(e, cfg, body, len, &root, &q, tags, &a, &reply) != 0) goto out;
    ragd_err err = {0};
    char *prompt = http_prompt_build(cfg, &q, &a, &err);
    if (prompt == NULL) {
        engine_answer_free(&a);
        reply = http_reply_error(err.rc, NULL, err.msg);
        goto out;
    }
    json_t *o = http_answer_json(&q, &a);
    engine_answer_free(&a);
    if (o) {
        json_object_set_new(o, "system_prompt", json_string(prompt));
        json_object_del(o, "results");
    }
    free(prompt);
    reply.status = 200;
    reply.body = o;
    if (reply.body == NULL)
        reply = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory building the response");
out:
    json_decref(root);
    return reply;
}

/* ---- dispatch ----------------------------------------------------------------------------- */

http_reply http_route_handle(engine *e, const ragd_cfg *cfg, http_route route, const char *body,
                             size_t len)
{
    switch (route) {
    case RAGD_ROUTE_ROOT: return handle_root();
    case RAGD_ROUTE_HEALTH: return handle_health(e, cfg);
    case RAGD_ROUTE_METRICS: return handle_metrics(e);
    case RAGD_ROUTE_RETRIEVE: return handle_retrieve(e, cfg, body, len);
    case RAGD_ROUTE_CONTEXT: return handle_context(e, cfg, body, len);
    case RAGD_ROUTE_INGEST: /* asynchronous: see http_server.c */
    case RAGD_ROUTE_DOCUMENTS: /* need the method and URL: http_documents.c, http_jobs.c */
    case RAGD_ROUTE_DOCUMENT:
    case RAGD_ROUTE_JOB:
    case RAGD_ROUTE_NONE: break;
    }
    return http_reply_error(RAGD_ERR_NOT_FOUND, NULL, "no such endpoint");
}
