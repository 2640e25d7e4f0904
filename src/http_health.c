/* SPDX-License-Identifier: MIT */
/*
 * http_health.c - GET / (name, version, the endpoint list from the route table), GET /health (ok /
 * degraded / down with reasons; without the bearer token, when one is set, the status only) and
 * GET /metrics (Prometheus text).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "http_int.h"
#include "ragd/engine.h"
#include "ragd/metrics.h"
#include "ragd/util.h"

/* ---- GET / and GET /health ---------------------------------------------------------------- */

http_reply http_handle_root(const http_request *req)
{
    (void)req;
    http_reply r = {.status = 200};
    r.body = json_pack("{s:s, s:s, s:o}", "name", "ragd", "version", RAGD_VERSION, "endpoints",
                       http_route_list_json());
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
        json_object_set_new(redis, "rejected", json_integer((json_int_t)c->redis_rejected));
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
/* Adds the store backend to /health's "store" object: its name and, for pgvector, the database
 * (password redacted) and schema. */
static void store_backend_fields(const ragd_cfg *cfg, json_t *store)
{
    if (store == NULL) return;
    json_object_set_new(store, "backend", json_string(cfg->vector_backend));
    if (strcmp(cfg->vector_backend, "pgvector") != 0) return;
    char *url = util_url_redact(cfg->database_url);
    json_object_set_new(store, "database", url ? json_string(url) : json_null());
    json_object_set_new(store, "pg_schema", json_string(cfg->pg_schema));
    free(url);
}

static http_reply health_reply(const http_request *req)
{
    engine *e = req->engine;
    const ragd_cfg *cfg = req->cfg;
    engine_stats s;
    ragd_err err = {0};
    int rag_enabled = cfg->rag_enabled;
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
    if (s.write_fault)
        reason_add(reasons, "writes are failing (%s); retrievals are served from memory and "
                   "writes refused until the data dir can be written again", s.write_error);

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
    if (r.body) store_backend_fields(cfg, json_object_get(r.body, "store"));
    json_t *store = r.body ? json_object_get(r.body, "store") : NULL;
    if (store) {
        json_object_set_new(store, "writable", json_boolean(!s.write_fault));
        json_object_set_new(store, "write_error",
                            s.write_fault ? json_string(s.write_error) : json_null());
    }
    return r;
}

http_reply http_handle_health(const http_request *req)
{
    http_reply r = health_reply(req);
    /* With a token set, a caller without it learns the status only: the details (paths, the
     * Redis address, costs, error texts) are for the operator. */
    if (!req->authorized && r.body) {
        json_t *brief = json_pack("{s:O}", "status", json_object_get(r.body, "status"));
        json_decref(r.body);
        r.body = brief;
    }
    if (r.body == NULL) r = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
    return r;
}

/* ---- GET /metrics ------------------------------------------------------------------------- */

http_reply http_handle_metrics(const http_request *req)
{
    engine *e = req->engine;
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
    store_collection *colls = NULL;
    size_t ncolls = 0;
    ragd_err cerr = {0};
    if (g.have_store && engine_collections_list(e, &colls, &ncolls, &cerr) == RAGD_OK) {
        g.collections = colls;
        g.collection_count = ncolls;
    }
    int bad = metrics_render(&g, &out) != 0;
    store_collections_free(colls, ncolls);
    if (bad) {
        util_buf_free(&out);
        return http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory rendering metrics");
    }
    http_reply r = {.status = 200, .content_type = "text/plain; version=0.0.4; charset=utf-8"};
    r.text = util_buf_steal(&out);
    if (r.text == NULL) return http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
    return r;
}

