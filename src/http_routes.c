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
#include <string.h>

#include "ragd/engine.h"
#include "ragd/http.h"
#include "ragd/log.h"
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
        RAGD_LOG(RAGD_LOG_ERROR, "http", "%u %s: %s", status, code, message ? message : "");
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
        const char *method;
        http_route route;
    } routes[] = {
        {"/", "GET", RAGD_ROUTE_ROOT},
        {"/health", "GET", RAGD_ROUTE_HEALTH},
        {"/retrieve", "POST", RAGD_ROUTE_RETRIEVE},
        {"/ingest", "POST", RAGD_ROUTE_INGEST},
    };
    *method_ok = 1;
    *allow = NULL;
    /* Ignore a query string; paths match exactly, with one optional trailing slash. */
    size_t n = strcspn(url, "?");
    if (n > 1 && url[n - 1] == '/') n--;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strlen(routes[i].path) != n || strncmp(routes[i].path, url, n) != 0) continue;
        if (strcmp(method, routes[i].method) != 0 &&
            !(strcmp(method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0)) {
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

/* Refuses keys of obj not in allowed (NULL-terminated). Returns: 0, or -1 with *reply set. */
static int keys_check(json_t *obj, const char *const *allowed, const char *where,
                      http_reply *reply)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (size_t i = 0; allowed[i] && !ok; i++) ok = strcmp(key, allowed[i]) == 0;
        if (!ok) {
            char msg[300];
            util_buf names = {0};
            for (size_t i = 0; allowed[i]; i++)
                util_buf_printf(&names, "%s%s", i ? ", " : "", allowed[i]);
            snprintf(msg, sizeof msg, "unknown field '%.64s' in %s; known fields: %s", key, where,
                     names.data ? names.data : "");
            util_buf_free(&names);
            *reply = http_reply_error(RAGD_ERR_INVALID, NULL, msg);
            return -1;
        }
    }
    return 0;
}

/* ---- GET / and GET /health ---------------------------------------------------------------- */

static http_reply handle_root(void)
{
    http_reply r = {.status = 200};
    r.body = json_pack("{s:s, s:s, s:[s,s,s,s]}", "name", "ragd", "version", RAGD_VERSION,
                       "endpoints", "GET /health", "POST /retrieve", "POST /ingest", "GET /");
    return r;
}

static http_reply handle_health(engine *e, const ragd_cfg *cfg)
{
    engine_stats s;
    ragd_err err = {0};
    if (engine_stats_get(e, &s, &err) != RAGD_OK) {
        http_reply r = {.status = 503};
        r.body = json_pack("{s:s, s:s, s:b, s:[s]}", "status", "down", "version", RAGD_VERSION,
                           "rag_enabled", cfg->rag_enabled, "reasons", err.msg);
        return r;
    }
    json_t *reasons = json_array();
    if (!s.index_consistent)
        json_array_append_new(reasons, json_string("vector index out of step with SQLite"));
    int ok = json_array_size(reasons) == 0;
    http_reply r = {.status = ok ? 200 : 503};
    r.body = json_pack(
        "{s:s, s:s, s:b, s:{s:I, s:I, s:I, s:I, s:I, s:b}, s:{s:s, s:s, s:i}, "
        "s:{s:b, s:I, s:b}, s:o}",
        "status", ok ? "ok" : "down", "version", RAGD_VERSION, "rag_enabled", cfg->rag_enabled,
        "store", "documents", (json_int_t)s.documents, "chunks", (json_int_t)s.chunks,
        "embeddings", (json_int_t)s.embeddings, "index_vectors", (json_int_t)s.index_vectors,
        "index_bytes", (json_int_t)s.index_bytes, "consistent", s.index_consistent, "embedder",
        "provider", s.embed_provider, "model", s.embed_model, "dims", s.embed_dims, "ingest",
        "running", s.ingest_running, "last_at", (json_int_t)s.last_ingest_at, "last_ok",
        s.last_ingest_ok, "reasons", reasons);
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

json_t *http_answer_json(const engine_query *q, const engine_answer *a)
{
    json_t *results = json_array();
    json_t *sources = json_array();
    for (size_t i = 0; i < a->count; i++) {
        const store_hit *h = &a->results[i].hit;
        json_array_append_new(
            results,
            json_pack("{s:I, s:f, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:o, s:o}",
                      "rank", (json_int_t)(i + 1), "score", a->results[i].score, "text", h->text,
                      "source", h->source, "title", h->title, "heading", h->heading, "chunk",
                      h->ordinal, "chunk_id", (json_int_t)h->chunk_id, "document_id",
                      (json_int_t)h->document_id, "tokens", (json_int_t)h->tokens,
                      "char_start", (json_int_t)h->char_start, "char_end",
                      (json_int_t)h->char_end, "tags", json_or(h->tags_json, json_array()),
                      "metadata", json_or(h->metadata_json, json_object())));
        json_array_append_new(sources, json_pack("{s:I, s:s, s:s, s:s}", "n", (json_int_t)(i + 1),
                                                 "source", h->source, "title", h->title,
                                                 "heading", h->heading));
    }
    char *context = engine_context_format(a);
    json_t *o = json_pack("{s:s%, s:b, s:b, s:o, s:s, s:o, s:{s:f, s:f, s:f, s:f}}", "query",
                          q->query, q->query_len, "rag_enabled", a->rag_enabled,
                          "low_confidence", a->count == 0, "results", results, "context",
                          context ? context : "", "sources", sources, "timings_ms", "embed",
                          a->embed_ms, "search", a->search_ms, "fetch", a->fetch_ms, "total",
                          a->total_ms);
    free(context);
    if (o && a->cache_layer) {
        json_object_set_new(o, "embedding_cache", json_string(a->cache_layer));
        json_object_set_new(json_object_get(o, "timings_ms"), "cache", json_real(a->cache_ms));
    }
    if (o && !a->rag_enabled)
        json_object_set_new(o, "message",
                            json_string("RAG is disabled (RAG_ENABLED=false or [rag] "
                                        "enabled=false): no context is retrieved"));
    return o;
}

static http_reply handle_retrieve(engine *e, const ragd_cfg *cfg, const char *body, size_t len)
{
    static const char *const fields[] = {"query", "k", "min_score", "filters", "intent", NULL};
    static const char *const filter_fields[] = {"source", "tags", NULL};
    http_reply reply = {0};
    json_t *root = body_object(body, len, &reply);
    if (root == NULL) return reply;
    if (keys_check(root, fields, "the request", &reply) != 0) goto out;

    engine_query q = {.k = cfg->retrieve_default_k, .min_score = cfg->retrieve_min_score};
    const char *tags[TAGS_MAX];
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
    }
    if ((v = json_object_get(root, "min_score")) != NULL) {
        if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
            json_number_value(v) < -1.0 || json_number_value(v) > 1.0) {
            reply = reply_invalid("field '%s' must be a number between -1 and 1", "min_score");
            goto out;
        }
        q.min_score = json_number_value(v);
    }
    if ((v = json_object_get(root, "intent")) != NULL && !json_is_string(v)) {
        reply = reply_invalid("field '%s' must be a string", "intent");
        goto out;
    }
    if ((v = json_object_get(root, "filters")) != NULL) {
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

    engine_answer a;
    ragd_err err = {0};
    if (engine_retrieve(e, &q, &a, &err) != RAGD_OK) {
        reply = http_reply_error(err.rc, NULL, err.msg);
        goto out;
    }
    reply.status = 200;
    reply.body = http_answer_json(&q, &a);
    engine_answer_free(&a);
    if (reply.body == NULL)
        reply = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory building the response");
out:
    json_decref(root);
    return reply;
}

/* ---- POST /ingest ------------------------------------------------------------------------- */

int http_ingest_parse(const char *body, size_t len, char **path, int *reset, http_reply *reply)
{
    static const char *const fields[] = {"path", "reset", NULL};
    json_t *root = body_object(body, len, reply);
    if (root == NULL) return -1;
    int rc = -1;
    if (keys_check(root, fields, "the request", reply) != 0) goto out;
    json_t *p = json_object_get(root, "path");
    if (p == NULL || !json_is_string(p) || json_string_length(p) == 0) {
        *reply = reply_invalid("field '%s' is required: a non-empty string (a file or directory)",
                               "path");
        goto out;
    }
    json_t *r = json_object_get(root, "reset");
    if (r != NULL && !json_is_boolean(r)) {
        *reply = reply_invalid("field '%s' must be true or false", "reset");
        goto out;
    }
    *path = strdup(json_string_value(p));
    if (*path == NULL) {
        *reply = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
        goto out;
    }
    *reset = r != NULL && json_is_true(r);
    rc = 0;
out:
    json_decref(root);
    return rc;
}

http_reply http_ingest_run(engine *e, const char *path, int reset)
{
    engine_ingest_report report;
    ragd_err err = {0};
    if (engine_ingest(e, path, reset, NULL, NULL, &report, &err) != RAGD_OK)
        return http_reply_error(err.rc, NULL, err.msg);
    char *text = engine_ingest_report_json(&report);
    engine_ingest_report_free(&report);
    http_reply r = {.status = 200};
    r.body = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (r.body == NULL) return http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
    return r;
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

/* Extends a /health reply with the embedder's usage and the query cache's state; a configured
 * Redis that is down adds its reason and turns "ok" into "degraded" (still 200). Kept apart from
 * handle_health so the document's owner and this issue change different lines. Steals r. */
static http_reply http_health_extend(engine *e, http_reply r)
{
    engine_stats s;
    ragd_err err = {0};
    if (r.body == NULL || engine_stats_get(e, &s, &err) != RAGD_OK) return r;
    json_t *reasons = json_object_get(r.body, "reasons");
    json_t *status = json_object_get(r.body, "status");
    if (json_is_array(reasons) && http_cache_reason_add(&s.cache, reasons) && json_is_string(status)
        && strcmp(json_string_value(status), "ok") == 0)
        json_object_set_new(r.body, "status", json_string("degraded"));
    http_embed_cache_fields(&s, r.body);
    return r;
}

/* ---- dispatch ----------------------------------------------------------------------------- */

http_reply http_route_handle(engine *e, const ragd_cfg *cfg, http_route route, const char *body,
                             size_t len)
{
    /* /health, extended with the embedder's usage and the query cache's state. */
    if (route == RAGD_ROUTE_HEALTH) return http_health_extend(e, handle_health(e, cfg));
    switch (route) {
    case RAGD_ROUTE_ROOT: return handle_root();
    case RAGD_ROUTE_HEALTH: return handle_health(e, cfg);
    case RAGD_ROUTE_RETRIEVE: return handle_retrieve(e, cfg, body, len);
    case RAGD_ROUTE_INGEST: /* asynchronous: see http_server.c */
    case RAGD_ROUTE_NONE: break;
    }
    return http_reply_error(RAGD_ERR_NOT_FOUND, NULL, "no such endpoint");
}
