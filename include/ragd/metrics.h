/* SPDX-License-Identifier: MIT */
/*
 * metrics.h - process-wide operational metrics: lock-free counters and fixed-bucket latency
 * histograms, HTTP requests by route and status, upstream errors by kind, a small ring of recent
 * embedding latencies (for the /health p50/p95), the embedder's last outcome and the last ingest.
 * One registry per process, so any module feeds it with a one-line call and needs no handle:
 *     metrics_counter_add(RAGD_METRIC_EMBED_TOKENS, tokens);
 *     metrics_upstream_error_add(RAGD_ERR_TIMEOUT);
 * metrics_render() writes everything in the Prometheus text exposition format 0.0.4 (GET /metrics).
 * Every function here is thread-safe; counters and histograms never take a lock.
 */
#ifndef RAGD_METRICS_H
#define RAGD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "ragd/ragd.h"
#include "ragd/util.h"

/* Plain counters. Each renders as ragd_<name>_total, at 0 until fed. */
typedef enum metrics_counter_id {
    RAGD_METRIC_RETRIEVAL_HITS = 0,   /* retrievals returning at least one result */
    RAGD_METRIC_RETRIEVAL_MISSES,     /* retrievals returning none (nothing above threshold,
                                       * RAG disabled, or the retrieval failed) */
    RAGD_METRIC_CACHE_HITS,           /* query-embedding cache hits (fed by the cache, issue 5) */
    RAGD_METRIC_CACHE_MISSES,         /* query-embedding cache misses (issue 5) */
    RAGD_METRIC_EMBED_TOKENS,         /* tokens sent to the embedding provider (issue 5) */
    RAGD_METRIC_EMBED_REQUESTS,       /* calls made to the embedding provider (issue 5) */
    RAGD_METRIC_INGEST_RUNS,          /* ingests started (HTTP and at start-up) */
    RAGD_METRIC_INGEST_FAILURES,      /* ingests that failed as a whole */
    RAGD_METRIC_INGEST_DOCS_FAILED,   /* files reported in ingest errors */
    RAGD_METRIC_LOG_DROPPED,          /* JSONL log lines dropped (queue full or write error) */
    RAGD_METRIC_CACHE_REJECTED,       /* Redis values refused (foreign, mismatched, not finite,
                                       * not unit length): counted as misses too */
    RAGD_METRIC_HTTP_CONN_ABORTED,    /* client connections closed by the client mid-request */
    RAGD_METRIC_HTTP_CONN_REFUSED,    /* connections refused over the connection limits (503) */
    RAGD_METRIC_HTTP_CONN_EVICTED,    /* idle connections closed to make room for new ones */
    RAGD_METRIC_HTTP_REQUEST_TIMEOUTS, /* requests whose head or body missed request_timeout */
    RAGD_METRIC_HTTP_HEAD_REFUSED,    /* request heads refused before routing (JSON 4xx) */
    RAGD_METRIC_RERANK_REQUESTS,      /* calls made to the reranker (issue 17) */
    RAGD_METRIC_RERANK_FAILURES,      /* reranker calls that failed or timed out (fused order kept) */
    RAGD_METRIC_RERANK_TOKENS,        /* estimated tokens sent to the reranker */
    RAGD_METRIC_RERANK_CACHE_HITS,    /* (query, chunk) rerank scores found in the cache */
    RAGD_METRIC_RERANK_CACHE_MISSES,  /* pairs that had to be sent */
    /* issue 15: POST /v1/chat/completions */
    RAGD_METRIC_CHAT_TURNS,              /* chat turns answered (any outcome) */
    RAGD_METRIC_CHAT_UPSTREAM_CALLS,     /* turns sent to the chat upstream */
    RAGD_METRIC_CHAT_CLARIFIED,          /* low-confidence turns answered with the clarifying
                                          * question, no upstream call */
    RAGD_METRIC_CHAT_FINETUNED_TURNS,    /* turns routed to the fine-tuned model */
    RAGD_METRIC_CHAT_UPSTREAM_ERRORS,    /* turns that ended in an upstream error */
    RAGD_METRIC_CHAT_TOOL_CALLS_BLOCKED, /* tool calls outside the whitelist removed */
    RAGD_METRIC_CHAT_PROMPT_TOKENS,      /* prompt tokens billed by the upstream */
    RAGD_METRIC_CHAT_COMPLETION_TOKENS,  /* completion tokens billed by the upstream */
    RAGD_METRIC_CHAT_TOKENS_DROPPED,     /* history and context tokens the budget dropped */
    RAGD_METRIC_RETRIEVAL_PARALLEL_SIDES, /* hybrid retrievals whose keyword side ran in a thread
                                           * of its own ([retrieve] parallel_sides) */
    /* issue 16: exact (Flat) searches sharing passes over the vectors */
    RAGD_METRIC_FLAT_PASSES,             /* passes over a Flat index's vectors (a lone search
                                          * is a pass of one) */
    RAGD_METRIC_FLAT_PASS_SEARCHES,      /* searches those passes served */
    RAGD_METRIC_HTTP_REPLIES_DIRECT,     /* replies written whole by the thread that made them
                                          * (not handed to the event loop for the write) */
    RAGD_METRIC_HTTP_RETRIEVALS_INLINE,  /* retrievals run by the event loop itself (nothing
                                          * else in flight, a quick one), not handed off */
    RAGD_METRIC_COUNTER_COUNT
} metrics_counter_id;

/* Latency histograms, observed in milliseconds, rendered in seconds. */
typedef enum metrics_histogram_id {
    RAGD_METRIC_RETRIEVAL_SECONDS = 0, /* whole retrieval (engine total) */
    RAGD_METRIC_EMBED_SECONDS,         /* embedding the query */
    RAGD_METRIC_SEARCH_SECONDS,        /* vector search */
    RAGD_METRIC_RERANK_SECONDS,        /* one reranker call (issue 17) */
    RAGD_METRIC_CHAT_UPSTREAM_SECONDS,    /* a chat turn's upstream call, to its last byte */
    RAGD_METRIC_CHAT_FIRST_TOKEN_SECONDS, /* a streamed chat turn's time to its first token */
    RAGD_METRIC_HISTOGRAM_COUNT
} metrics_histogram_id;

/* Upper bounds of the histogram buckets, in seconds (+Inf is implicit). */
#define RAGD_METRIC_BUCKETS                                                                       \
    {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0}
#define RAGD_METRIC_BUCKET_COUNT 14

/* Recent embedding latencies kept for /health percentiles. */
#define RAGD_METRIC_EMBED_RING 256

/* Gauges read at scrape time from the engine; filled by the caller of metrics_render. */
typedef struct metrics_gauges {
    int64_t documents, chunks, embeddings;
    int64_t index_vectors, index_bytes;
    int have_store; /* 0: the store could not be read; store gauges are left out */
    double rerank_cost_usd; /* estimated reranker spend since start (issue 17) */
    const struct store_collection *collections; /* borrowed; per-collection gauges; may be NULL */
    size_t collection_count;
} metrics_gauges;

/* Adds n to a counter. */
void metrics_counter_add(metrics_counter_id id, uint64_t n);

/* Returns: a counter's current value. */
uint64_t metrics_counter_get(metrics_counter_id id);

/* Records one observation of ms milliseconds (negative values are ignored). */
void metrics_histogram_observe(metrics_histogram_id id, double ms);

/* Returns: the number of observations so far, and in *buckets (RAGD_METRIC_BUCKET_COUNT + 1
 * entries, may be NULL) the cumulative count of each bucket, the last being +Inf. */
uint64_t metrics_histogram_get(metrics_histogram_id id, uint64_t *buckets);

/* Adds usd to the chat turns' estimated cost, ragd_chat_estimated_cost_usd_total. */
void metrics_chat_cost_add(double usd);

/* Returns: the chat turns' estimated cost so far, USD. */
double metrics_chat_cost_get(void);

/* Counts one upstream (embedding provider, cache) error of kind ragd_rc_name(rc): timeout,
 * upstream_refused, embed_error, cache_error (those four always render, at 0 until fed); any
 * other rc counts as kind "other". */
void metrics_upstream_error_add(ragd_rc rc);

/* Adds delta (+1 when a request begins, -1 when it completes) to the in-flight gauge
 * ragd_http_requests_in_flight. */
void metrics_in_flight_add(int delta);

/* Counts one HTTP request answered on route (a static string such as http_route_name()'s;
 * compared by content) with status. */
void metrics_http_request_add(const char *route, unsigned status);

/* Returns: the count for route and status so far. */
uint64_t metrics_http_request_get(const char *route, unsigned status);

/* Notes one call to the embedder: how long it took, and whether it succeeded (error: a short
 * message, borrowed for the call; NULL when ok). Feeds the /health latency and reachability. */
void metrics_embed_note(double ms, int ok, const char *error);

/* Recent embedder state for /health: p50 and p95 of the last RAGD_METRIC_EMBED_RING latencies
 * (0 when none), how many samples, whether the last call succeeded (1 when none yet), and the
 * last error message (empty when none; copied into error, size bytes). */
void metrics_embed_state(double *p50_ms, double *p95_ms, size_t *samples, int *reachable,
                         char *error, size_t size);

/* The last ingest this process ran: finished at unix time at, result "ok" (every file
 * ingested), "partial" (some files failed) or "failed" (the ingest as a whole failed), and a
 * message (the error, or empty). */
void metrics_ingest_note(int64_t at, const char *result, const char *message);

/* Copies the last ingest's state out; *at is 0 and result "none" when no ingest ran yet. */
void metrics_ingest_state(int64_t *at, char *result, size_t result_size, char *message,
                          size_t message_size);

/* Appends every metric in the Prometheus text format 0.0.4 (HELP and TYPE lines, escaped
 * labels) to out. g may be NULL (no gauges). Returns: 0, or -1 when out of memory. */
int metrics_render(const metrics_gauges *g, util_buf *out);

/* Appends value as a Prometheus label value (backslash, double quote and newline escaped).
 * Returns: 0 or -1. */
int metrics_label_escape(util_buf *out, const char *value);

/* Zeroes everything (for tests). Not safe while other threads feed the metrics. */
void metrics_reset(void);

#endif
