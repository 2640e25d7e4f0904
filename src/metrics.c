/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - the process-wide metrics registry behind include/ragd/metrics.h and its renderer to
 * the Prometheus text format 0.0.4. Counters and histogram buckets are C11 atomics (relaxed: a
 * scrape may see one observation's bucket before its sum, which Prometheus tolerates). The HTTP
 * table claims a slot per (route, status) under a mutex once, then counts without locking. The
 * embedder latency ring and the last-ingest record are small and take a mutex.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ragd/metrics.h"
#include "ragd/store.h"

#define HTTP_SLOTS 128
#define ROUTE_MAX 48

typedef struct histogram {
    atomic_uint_fast64_t buckets[RAGD_METRIC_BUCKET_COUNT + 1]; /* per bucket, not cumulative */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_ns;
} histogram;

typedef struct http_slot {
    char route[ROUTE_MAX];
    unsigned status;
    atomic_uint_fast64_t count;
} http_slot;

static const double bucket_bounds[RAGD_METRIC_BUCKET_COUNT] = RAGD_METRIC_BUCKETS;

static atomic_uint_fast64_t counters[RAGD_METRIC_COUNTER_COUNT];
static histogram histograms[RAGD_METRIC_HISTOGRAM_COUNT];

/* Upstream error kinds that always render; others are counted in "other". */
static const ragd_rc upstream_kinds[] = {RAGD_ERR_TIMEOUT, RAGD_ERR_UPSTREAM_REFUSED,
                                         RAGD_ERR_EMBED, RAGD_ERR_CACHE};
#define UPSTREAM_KIND_COUNT (sizeof upstream_kinds / sizeof upstream_kinds[0])
static atomic_uint_fast64_t upstream_errors[UPSTREAM_KIND_COUNT + 1];

static atomic_int_fast64_t in_flight;
static atomic_uint_fast64_t chat_cost_nano_usd;
static http_slot http_slots[HTTP_SLOTS];
static atomic_size_t http_used;
static pthread_mutex_t http_mu = PTHREAD_MUTEX_INITIALIZER;

static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;
static double embed_ring[RAGD_METRIC_EMBED_RING];
static size_t embed_ring_n, embed_ring_next;
static int embed_last_ok = 1;
static char embed_last_error[256];
static int64_t ingest_at;
static char ingest_result[16] = "none";
static char ingest_message[256];

static const struct {
    const char *name;
    const char *help;
} counter_info[RAGD_METRIC_COUNTER_COUNT] = {
    [RAGD_METRIC_RETRIEVAL_HITS] = {"ragd_retrieval_hits_total",
                                    "Retrievals that returned at least one result."},
    [RAGD_METRIC_RETRIEVAL_MISSES] = {"ragd_retrieval_misses_total",
                                      "Retrievals that returned no result (nothing above the "
                                      "threshold, RAG disabled, or an error)."},
    [RAGD_METRIC_CACHE_HITS] = {"ragd_cache_hits_total", "Query-embedding cache hits."},
    [RAGD_METRIC_RETRIEVAL_PARALLEL_SIDES] = {"ragd_retrieval_parallel_sides_total",
                                              "Hybrid retrievals whose keyword side ran in a "
                                              "thread of its own beside the vector side."},
    [RAGD_METRIC_CACHE_REJECTED] = {"ragd_cache_redis_rejected_total",
                                    "Query-embedding values read from Redis and refused: written "
                                    "for another key or by another program, not finite, or not "
                                    "of unit length."},
    [RAGD_METRIC_CACHE_MISSES] = {"ragd_cache_misses_total", "Query-embedding cache misses."},
    [RAGD_METRIC_EMBED_TOKENS] = {"ragd_embedding_tokens_total",
                                  "Tokens sent to the embedding provider."},
    [RAGD_METRIC_EMBED_REQUESTS] = {"ragd_embedding_requests_total",
                                    "Calls made to the embedding provider."},
    [RAGD_METRIC_INGEST_RUNS] = {"ragd_ingest_runs_total", "Ingests run by the daemon."},
    [RAGD_METRIC_INGEST_FAILURES] = {"ragd_ingest_failures_total",
                                     "Ingests that failed as a whole."},
    [RAGD_METRIC_INGEST_DOCS_FAILED] = {"ragd_ingest_documents_failed_total",
                                        "Files an ingest could not ingest (per-file errors)."},
    [RAGD_METRIC_LOG_DROPPED] = {"ragd_log_dropped_lines_total",
                                 "Retrieval/ingest log lines dropped (queue full or write error)."},
    [RAGD_METRIC_HTTP_CONN_ABORTED] = {"ragd_http_connections_aborted_total",
                                       "Client connections closed by the client before their "
                                       "reply (counted, not logged)."},
    [RAGD_METRIC_HTTP_CONN_REFUSED] = {"ragd_http_connections_refused_total",
                                       "Connections refused with 503 over [server] "
                                       "max_connections / max_connections_per_ip."},
    [RAGD_METRIC_HTTP_CONN_EVICTED] = {"ragd_http_connections_evicted_total",
                                       "Idle connections (no complete request head) closed to "
                                       "make room for new ones."},
    [RAGD_METRIC_HTTP_REQUEST_TIMEOUTS] = {"ragd_http_request_timeouts_total",
                                           "Requests whose head or body did not arrive within "
                                           "[server] request_timeout."},
    [RAGD_METRIC_HTTP_HEAD_REFUSED] = {"ragd_http_heads_refused_total",
                                       "Malformed request heads answered with a JSON 4xx before "
                                       "routing."},
    [RAGD_METRIC_RERANK_REQUESTS] = {"ragd_rerank_requests_total", "Calls made to the reranker."},
    [RAGD_METRIC_RERANK_FAILURES] = {"ragd_rerank_failures_total",
                                     "Reranker calls that failed or timed out (the fused order "
                                     "was kept)."},
    [RAGD_METRIC_RERANK_TOKENS] = {"ragd_rerank_tokens_total",
                                   "Estimated tokens sent to the reranker."},
    [RAGD_METRIC_RERANK_CACHE_HITS] = {"ragd_rerank_cache_hits_total",
                                       "Rerank scores of (query, chunk) found in the cache."},
    [RAGD_METRIC_RERANK_CACHE_MISSES] = {"ragd_rerank_cache_misses_total",
                                         "Rerank scores of (query, chunk) that had to be asked."},
    [RAGD_METRIC_CHAT_TURNS] = {"ragd_chat_turns_total", "Chat turns answered, any outcome."},
    [RAGD_METRIC_CHAT_UPSTREAM_CALLS] = {"ragd_chat_upstream_calls_total",
                                         "Chat turns sent to the chat upstream."},
    [RAGD_METRIC_CHAT_CLARIFIED] = {"ragd_chat_clarified_total",
                                    "Low-confidence chat turns answered with the clarifying "
                                    "question, without an upstream call."},
    [RAGD_METRIC_CHAT_FINETUNED_TURNS] = {"ragd_chat_finetuned_turns_total",
                                          "Chat turns routed to the fine-tuned model."},
    [RAGD_METRIC_CHAT_UPSTREAM_ERRORS] = {"ragd_chat_upstream_errors_total",
                                          "Chat turns that ended in an upstream error."},
    [RAGD_METRIC_CHAT_TOOL_CALLS_BLOCKED] = {"ragd_chat_tool_calls_blocked_total",
                                             "Tool calls naming a tool outside the whitelist, "
                                             "removed from answers."},
    [RAGD_METRIC_CHAT_PROMPT_TOKENS] = {"ragd_chat_prompt_tokens_total",
                                        "Prompt tokens billed by the chat upstream."},
    [RAGD_METRIC_CHAT_COMPLETION_TOKENS] = {"ragd_chat_completion_tokens_total",
                                            "Completion tokens billed by the chat upstream."},
    [RAGD_METRIC_CHAT_TOKENS_DROPPED] = {"ragd_chat_tokens_dropped_total",
                                         "History and context tokens dropped by chat budgets."},
    [RAGD_METRIC_FLAT_PASSES] = {"ragd_flat_search_passes_total",
                                 "Passes over a Flat index's vectors (a lone search is a pass "
                                 "of one)."},
    [RAGD_METRIC_FLAT_PASS_SEARCHES] = {"ragd_flat_search_pass_searches_total",
                                        "Exact searches served by those passes (searches per "
                                        "pass: the mean batch)."},
    [RAGD_METRIC_HTTP_REPLIES_DIRECT] = {"ragd_http_replies_direct_total",
                                         "Replies written whole to the client by the thread "
                                         "that produced them, without a hand-off to the event "
                                         "loop for the write."},
    [RAGD_METRIC_HTTP_RETRIEVALS_INLINE] = {"ragd_http_retrievals_inline_total",
                                            "Retrievals the event loop ran itself, with nothing "
                                            "else in flight and nothing they could wait on, "
                                            "instead of handing them to the retrieval pool."},
};

static const struct {
    const char *name;
    const char *help;
} histogram_info[RAGD_METRIC_HISTOGRAM_COUNT] = {
    [RAGD_METRIC_RETRIEVAL_SECONDS] = {"ragd_retrieval_duration_seconds",
                                       "Time to answer a retrieval, in seconds."},
    [RAGD_METRIC_EMBED_SECONDS] = {"ragd_retrieval_embed_duration_seconds",
                                   "Time to embed the query of a retrieval, in seconds."},
    [RAGD_METRIC_SEARCH_SECONDS] = {"ragd_retrieval_search_duration_seconds",
                                    "Time spent in the vector search of a retrieval, in seconds."},
    [RAGD_METRIC_RERANK_SECONDS] = {"ragd_rerank_duration_seconds",
                                    "Time of one reranker call, in seconds."},
    [RAGD_METRIC_CHAT_UPSTREAM_SECONDS] = {"ragd_chat_upstream_duration_seconds",
                                           "Time of a chat turn's upstream call, in seconds."},
    [RAGD_METRIC_CHAT_FIRST_TOKEN_SECONDS] = {"ragd_chat_first_token_seconds",
                                              "Time to the first token of a streamed chat "
                                              "turn, in seconds."},
};

void metrics_chat_cost_add(double usd)
{
    if (usd > 0 && isfinite(usd))
        atomic_fetch_add_explicit(&chat_cost_nano_usd, (uint64_t)llround(usd * 1e9),
                                  memory_order_relaxed);
}

double metrics_chat_cost_get(void)
{
    return (double)atomic_load_explicit(&chat_cost_nano_usd, memory_order_relaxed) / 1e9;
}

void metrics_counter_add(metrics_counter_id id, uint64_t n)
{
    if ((unsigned)id < RAGD_METRIC_COUNTER_COUNT)
        atomic_fetch_add_explicit(&counters[id], n, memory_order_relaxed);
}

uint64_t metrics_counter_get(metrics_counter_id id)
{
    if ((unsigned)id >= RAGD_METRIC_COUNTER_COUNT) return 0;
    return atomic_load_explicit(&counters[id], memory_order_relaxed);
}

void metrics_histogram_observe(metrics_histogram_id id, double ms)
{
    if ((unsigned)id >= RAGD_METRIC_HISTOGRAM_COUNT || !(ms >= 0.0) || !isfinite(ms)) return;
    histogram *h = &histograms[id];
    double s = ms / 1000.0;
    size_t b = 0;
    while (b < RAGD_METRIC_BUCKET_COUNT && s > bucket_bounds[b]) b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)llround(ms * 1e6), memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

uint64_t metrics_histogram_get(metrics_histogram_id id, uint64_t *buckets)
{
    if ((unsigned)id >= RAGD_METRIC_HISTOGRAM_COUNT) return 0;
    histogram *h = &histograms[id];
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= RAGD_METRIC_BUCKET_COUNT; b++) {
        cumulative += atomic_load_explicit(&h->buckets[b], memory_order_relaxed);
        if (buckets) buckets[b] = cumulative;
    }
    return atomic_load_explicit(&h->count, memory_order_relaxed);
}

void metrics_upstream_error_add(ragd_rc rc)
{
    size_t i = 0;
    while (i < UPSTREAM_KIND_COUNT && upstream_kinds[i] != rc) i++;
    atomic_fetch_add_explicit(&upstream_errors[i], 1, memory_order_relaxed);
}

/* Returns: the slot for route and status, claiming one when create is set; NULL when the table
 * is full (counts beyond HTTP_SLOTS distinct pairs go to route "other", status 0) or absent. */
static http_slot *http_slot_find(const char *route, unsigned status, int create)
{
    size_t used = atomic_load_explicit(&http_used, memory_order_acquire);
    for (size_t i = 0; i < used; i++)
        if (http_slots[i].status == status && strcmp(http_slots[i].route, route) == 0)
            return &http_slots[i];
    if (!create) return NULL;
    pthread_mutex_lock(&http_mu);
    http_slot *s = NULL;
    used = atomic_load_explicit(&http_used, memory_order_relaxed);
    for (size_t i = 0; i < used && s == NULL; i++)
        if (http_slots[i].status == status && strcmp(http_slots[i].route, route) == 0)
            s = &http_slots[i];
    if (s == NULL && used < HTTP_SLOTS) {
        s = &http_slots[used];
        snprintf(s->route, sizeof s->route, "%s", route);
        s->status = status;
        atomic_store_explicit(&s->count, 0, memory_order_relaxed);
        /* Publish the slot only once its key is written. */
        atomic_store_explicit(&http_used, used + 1, memory_order_release);
    }
    pthread_mutex_unlock(&http_mu);
    return s;
}

void metrics_in_flight_add(int delta)
{
    atomic_fetch_add_explicit(&in_flight, delta, memory_order_relaxed);
}

void metrics_http_request_add(const char *route, unsigned status)
{
    http_slot *s = http_slot_find(route ? route : "other", status, 1);
    if (s == NULL) s = http_slot_find("other", 0, 1);
    if (s != NULL) atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

uint64_t metrics_http_request_get(const char *route, unsigned status)
{
    http_slot *s = http_slot_find(route ? route : "other", status, 0);
    return s ? atomic_load_explicit(&s->count, memory_order_relaxed) : 0;
}

void metrics_embed_note(double ms, int ok, const char *error)
{
    pthread_mutex_lock(&state_mu);
    if (ms >= 0.0 && isfinite(ms)) {
        embed_ring[embed_ring_next] = ms;
        embed_ring_next = (embed_ring_next + 1) % RAGD_METRIC_EMBED_RING;
        if (embed_ring_n < RAGD_METRIC_EMBED_RING) embed_ring_n++;
    }
    embed_last_ok = ok != 0;
    snprintf(embed_last_error, sizeof embed_last_error, "%s", ok || error == NULL ? "" : error);
    pthread_mutex_unlock(&state_mu);
}

static int double_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n). */
static double percentile(const double *v, size_t n, double p)
{
    if (n == 0) return 0.0;
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1) rank = 1;
    return v[rank - 1];
}

void metrics_embed_state(double *p50_ms, double *p95_ms, size_t *samples, int *reachable,
                         char *error, size_t size)
{
    double v[RAGD_METRIC_EMBED_RING];
    pthread_mutex_lock(&state_mu);
    size_t n = embed_ring_n;
    memcpy(v, embed_ring, sizeof v[0] * n);
    *reachable = embed_last_ok;
    if (size) snprintf(error, size, "%s", embed_last_error);
    pthread_mutex_unlock(&state_mu);
    qsort(v, n, sizeof v[0], double_cmp);
    *p50_ms = percentile(v, n, 50.0);
    *p95_ms = percentile(v, n, 95.0);
    *samples = n;
}

void metrics_ingest_note(int64_t at, const char *result, const char *message)
{
    pthread_mutex_lock(&state_mu);
    ingest_at = at;
    snprintf(ingest_result, sizeof ingest_result, "%s", result ? result : "ok");
    snprintf(ingest_message, sizeof ingest_message, "%s", message ? message : "");
    pthread_mutex_unlock(&state_mu);
}

void metrics_ingest_state(int64_t *at, char *result, size_t result_size, char *message,
                          size_t message_size)
{
    pthread_mutex_lock(&state_mu);
    *at = ingest_at;
    if (result_size) snprintf(result, result_size, "%s", ingest_result);
    if (message_size) snprintf(message, message_size, "%s", ingest_message);
    pthread_mutex_unlock(&state_mu);
}

/* ---- rendering ---------------------------------------------------------------------------- */

int metrics_label_escape(util_buf *out, const char *value)
{
    for (const char *p = value ? value : ""; *p; p++) {
        int bad;
        if (*p == '\\') bad = util_buf_puts(out, "\\\\");
        else if (*p == '"') bad = util_buf_puts(out, "\\\"");
        else if (*p == '\n') bad = util_buf_puts(out, "\\n");
        else bad = util_buf_append(out, p, 1);
        if (bad) return -1;
    }
    return 0;
}

static int family(util_buf *out, const char *name, const char *type, const char *help)
{
    return util_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Writes a float the way Prometheus reads it (shortest round-trip form). */
static int number(util_buf *out, double x)
{
    char buf[64];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(buf, sizeof buf, "%.*g", precision, x);
        if (strtod(buf, NULL) == x) break;
    }
    return util_buf_puts(out, buf);
}

static int render_histogram(util_buf *out, metrics_histogram_id id)
{
    uint64_t cumulative[RAGD_METRIC_BUCKET_COUNT + 1];
    const histogram *h = &histograms[id];
    uint64_t count = metrics_histogram_get(id, cumulative);
    uint64_t sum_ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
    const char *name = histogram_info[id].name;
    int bad = family(out, name, "histogram", histogram_info[id].help);
    for (size_t b = 0; b < RAGD_METRIC_BUCKET_COUNT && !bad; b++) {
        bad |= util_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_bounds[b],
                               (unsigned long long)cumulative[b]);
    }
    /* +Inf equals _count by definition; use the bucket total so the two always agree. */
    bad |= util_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                           (unsigned long long)cumulative[RAGD_METRIC_BUCKET_COUNT]);
    bad |= util_buf_printf(out, "%s_sum ", name);
    bad |= number(out, (double)sum_ns / 1e9);
    bad |= util_buf_printf(out, "\n%s_count %llu\n", name,
                           (unsigned long long)(count > cumulative[RAGD_METRIC_BUCKET_COUNT]
                                                    ? cumulative[RAGD_METRIC_BUCKET_COUNT]
                                                    : count));
    return bad ? -1 : 0;
}

static int gauge(util_buf *out, const char *name, const char *help, int64_t v)
{
    int bad = family(out, name, "gauge", help);
    bad |= util_buf_printf(out, "%s %lld\n", name, (long long)v);
    return bad ? -1 : 0;
}

int metrics_render(const metrics_gauges *g, util_buf *out)
{
    int bad = family(out, "ragd_build_info", "gauge", "Always 1; the version is a label.");
    bad |= util_buf_printf(out, "ragd_build_info{version=\"%s\"} 1\n", RAGD_VERSION);
    for (size_t i = 0; i < RAGD_METRIC_COUNTER_COUNT && !bad; i++) {
        bad |= family(out, counter_info[i].name, "counter", counter_info[i].help);
        bad |= util_buf_printf(out, "%s %llu\n", counter_info[i].name,
                               (unsigned long long)metrics_counter_get((metrics_counter_id)i));
    }
    bad |= family(out, "ragd_upstream_errors_total", "counter",
                  "Errors from upstreams (embedding provider, cache) by kind.");
    for (size_t i = 0; i <= UPSTREAM_KIND_COUNT && !bad; i++) {
        bad |= util_buf_puts(out, "ragd_upstream_errors_total{kind=\"");
        bad |= metrics_label_escape(out, i < UPSTREAM_KIND_COUNT ? ragd_rc_name(upstream_kinds[i])
                                                                 : "other");
        bad |= util_buf_printf(out, "\"} %llu\n", (unsigned long long)atomic_load_explicit(
                                                      &upstream_errors[i], memory_order_relaxed));
    }
    for (size_t i = 0; i < RAGD_METRIC_HISTOGRAM_COUNT && !bad; i++)
        bad |= render_histogram(out, (metrics_histogram_id)i);
    bad |= family(out, "ragd_chat_estimated_cost_usd_total", "counter",
                  "Estimated cost of the chat turns' tokens, USD ([chat] price_*).");
    bad |= util_buf_puts(out, "ragd_chat_estimated_cost_usd_total ");
    bad |= number(out, metrics_chat_cost_get());
    bad |= util_buf_puts(out, "\n");

    bad |= family(out, "ragd_rerank_cost_usd_total", "counter",
                  "Estimated reranker spend since start, in USD ([rerank] price_per_million).");
    bad |= util_buf_printf(out, "ragd_rerank_cost_usd_total %.9g\n",
                           g != NULL ? g->rerank_cost_usd : 0.0);
    bad |= gauge(out, "ragd_http_requests_in_flight", "HTTP requests being served now.",
                 (int64_t)atomic_load_explicit(&in_flight, memory_order_relaxed));
    bad |= family(out, "ragd_http_requests_total", "counter",
                  "HTTP requests answered, by route and status.");
    size_t used = atomic_load_explicit(&http_used, memory_order_acquire);
    for (size_t i = 0; i < used && !bad; i++) {
        bad |= util_buf_puts(out, "ragd_http_requests_total{route=\"");
        bad |= metrics_label_escape(out, http_slots[i].route);
        bad |= util_buf_printf(out, "\",status=\"%u\"} %llu\n", http_slots[i].status,
                               (unsigned long long)atomic_load_explicit(&http_slots[i].count,
                                                                        memory_order_relaxed));
    }
    if (g != NULL && !bad) {
        if (g->have_store) {
            bad |= gauge(out, "ragd_documents", "Documents in the store.", g->documents);
            bad |= gauge(out, "ragd_chunks", "Chunks in the store.", g->chunks);
            bad |= gauge(out, "ragd_embeddings", "Distinct embeddings stored.", g->embeddings);
            bad |= gauge(out, "ragd_index_vectors", "Vectors in the in-memory index.",
                         g->index_vectors);
            bad |= gauge(out, "ragd_index_bytes", "Memory taken by the index vectors, in bytes.",
                         g->index_bytes);
        }
        if (g->have_store && g->collection_count > 0 && !bad) {
            bad |= family(out, "ragd_collection_documents", "gauge",
                          "Documents in the store, by collection.");
            for (size_t i = 0; i < g->collection_count && !bad; i++) {
                bad |= util_buf_puts(out, "ragd_collection_documents{collection=\"");
                bad |= metrics_label_escape(out, g->collections[i].name);
                bad |= util_buf_printf(out, "\"} %lld\n",
                                       (long long)g->collections[i].documents);
            }
            bad |= family(out, "ragd_collection_chunks", "gauge",
                          "Chunks in the store, by collection.");
            for (size_t i = 0; i < g->collection_count && !bad; i++) {
                bad |= util_buf_puts(out, "ragd_collection_chunks{collection=\"");
                bad |= metrics_label_escape(out, g->collections[i].name);
                bad |= util_buf_printf(out, "\"} %lld\n", (long long)g->collections[i].chunks);
            }
        }
    }
    return bad ? -1 : 0;
}

void metrics_reset(void)
{
    for (size_t i = 0; i < RAGD_METRIC_COUNTER_COUNT; i++) atomic_store(&counters[i], 0);
    for (size_t i = 0; i < RAGD_METRIC_HISTOGRAM_COUNT; i++) {
        for (size_t b = 0; b <= RAGD_METRIC_BUCKET_COUNT; b++)
            atomic_store(&histograms[i].buckets[b], 0);
        atomic_store(&histograms[i].count, 0);
        atomic_store(&histograms[i].sum_ns, 0);
    }
    for (size_t i = 0; i <= UPSTREAM_KIND_COUNT; i++) atomic_store(&upstream_errors[i], 0);
    atomic_store(&in_flight, 0);
    atomic_store(&chat_cost_nano_usd, 0);
    pthread_mutex_lock(&http_mu);
    atomic_store(&http_used, 0);
    pthread_mutex_unlock(&http_mu);
    pthread_mutex_lock(&state_mu);
    embed_ring_n = embed_ring_next = 0;
    embed_last_ok = 1;
    embed_last_error[0] = '\0';
    ingest_at = 0;
    snprintf(ingest_result, sizeof ingest_result, "none");
    ingest_message[0] = '\0';
    pthread_mutex_unlock(&state_mu);
}
