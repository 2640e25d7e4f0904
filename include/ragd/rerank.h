/* SPDX-License-Identifier: MIT */
/*
 * rerank.h - the optional second ranking stage (src/retrieve_rerank.c): the top fused candidates
 * go to a cross-encoder over HTTP ([rerank] provider: tei or cohere, one row each in a providers
 * table), whose scores reorder them. Scores of (query, chunk text) pairs are cached in-process, so
 * a repeated question costs nothing upstream. A timeout or failure never fails a retrieval: the
 * caller keeps the fused order and the answer says why.
 */
#ifndef RAGD_RERANK_H
#define RAGD_RERANK_H

#include <stddef.h>
#include <stdint.h>

#include "ragd/cfg.h"
#include "ragd/ragd.h"

typedef struct retrieve_reranker retrieve_reranker;

/* Per-request choice (engine_query.rerank). */
#define RAGD_RERANK_DEFAULT 0 /* [rerank] provider decides */
#define RAGD_RERANK_ON 1
#define RAGD_RERANK_OFF 2

/* What one rerank did, for the answer's "rerank" object. */
typedef struct rerank_run {
    int requested;        /* a reranker was configured and the request did not turn it off */
    int applied;          /* 1: the order is the reranker's (scores valid) */
    const char *fallback; /* static; why the fused order was kept: "timeout", "error", or NULL */
    char error[200];      /* the upstream's reason when fallback is set */
    double ms;            /* time spent, cache included */
    size_t candidates;    /* texts scored (from the cache or upstream) */
    size_t cache_hits;    /* of those, scores found in the cache */
    double best;          /* best rerank score when applied */
} rerank_run;

/* Counters since start, for /health and /metrics. */
typedef struct rerank_stats {
    const char *provider; /* static: "none", "tei", "cohere" */
    const char *model;    /* borrowed from the configuration */
    uint64_t calls;       /* upstream calls made */
    uint64_t failures;    /* calls that failed (timeouts included) */
    uint64_t timeouts;
    uint64_t cache_hits, cache_misses;
    uint64_t tokens;      /* estimated tokens sent (query once per text, plus the texts) */
    double cost_usd;      /* tokens at [rerank] price_per_million */
    double last_ms;       /* duration of the last upstream call */
    char last_error[200]; /* "" when the last call succeeded */
} rerank_stats;

/* Creates the reranker of [rerank] in cfg (borrowed until free). With provider none, *out is
 * NULL and RAGD_OK is returned. Returns: RAGD_OK and *out (new, free with
 * retrieve_reranker_free), or RAGD_ERR_CONFIG / RAGD_ERR_NOMEM. */
ragd_rc retrieve_reranker_new(const ragd_cfg *cfg, retrieve_reranker **out, ragd_err *err);

/* Frees r. r may be NULL. */
void retrieve_reranker_free(retrieve_reranker *r);

/* Returns: 1 when a retrieval with per-request choice `choice` (RAGD_RERANK_*) reranks. */
int retrieve_rerank_wanted(const retrieve_reranker *r, int choice);

/* Scores texts[0..n) (borrowed) against the query: cached pairs first, the rest in one call of
 * at most [rerank] timeout_ms. On success run->applied = 1 and scores[i] holds text i's score.
 * An upstream failure or timeout sets run->fallback and run->error and still returns RAGD_OK.
 * Returns: RAGD_OK, or RAGD_ERR_NOMEM. Thread-safe. */
ragd_rc retrieve_rerank_score(retrieve_reranker *r, const char *query, size_t query_len,
                              const char *const *texts, size_t n, double *scores, rerank_run *run,
                              ragd_err *err);

/* Fills out with r's counters (all zero and provider "none" when r is NULL). */
void retrieve_reranker_stats(const retrieve_reranker *r, rerank_stats *out);

/* Writes into order[0..n) the indices of scores sorted best first (ties keep their order). */
void retrieve_rerank_order(const double *scores, size_t n, size_t *order);

#endif
