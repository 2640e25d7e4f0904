/* SPDX-License-Identifier: MIT */
/*
 * http_rerank.c - how the reranking stage shows in HTTP answers: the "rerank" object and each
 * result's "rerank_score" in /retrieve and /context answers, and the "reranker" object of
 * /health (docs/API.md). The request field "rerank" is parsed with the other retrieval fields.
 */
#include <jansson.h>

#include "http_int.h"
#include "ragd/rerank.h"

void http_rerank_answer(const engine_answer *a, json_t *results, json_t *o)
{
    const rerank_run *r = &a->rerank;
    for (size_t i = 0; i < json_array_size(results) && i < a->count; i++)
        json_object_set_new(json_array_get(results, i), "rerank_score",
                            a->results[i].reranked ? json_real(a->results[i].rerank_score)
                                                   : json_null());
    json_t *x = json_pack("{s:b, s:b}", "requested", r->requested, "applied", r->applied);
    if (x == NULL) return;
    if (r->requested) {
        json_object_set_new(x, "fallback", r->fallback ? json_string(r->fallback) : json_null());
        json_object_set_new(x, "error", r->fallback ? json_string(r->error) : json_null());
        json_object_set_new(x, "candidates", json_integer((json_int_t)r->candidates));
        json_object_set_new(x, "cache_hits", json_integer((json_int_t)r->cache_hits));
        json_object_set_new(x, "ms", json_real(r->ms));
        if (r->applied && r->candidates > 0)
            json_object_set_new(x, "best_score", json_real(r->best));
        json_object_set_new(json_object_get(o, "timings_ms"), "rerank", json_real(r->ms));
    }
    json_object_set_new(o, "rerank", x);
}

void http_rerank_health(const engine_stats *s, json_t *body)
{
    const rerank_stats *k = &s->rerank;
    json_t *x = json_pack("{s:s, s:s, s:I, s:I, s:I, s:{s:I, s:I}, s:I, s:f, s:f, s:o}",
                          "provider", k->provider, "model", k->model ? k->model : "", "calls",
                          (json_int_t)k->calls, "failures", (json_int_t)k->failures, "timeouts",
                          (json_int_t)k->timeouts, "cache", "hits", (json_int_t)k->cache_hits,
                          "misses", (json_int_t)k->cache_misses, "tokens",
                          (json_int_t)k->tokens, "estimated_cost_usd", k->cost_usd,
                          "last_ms", k->last_ms, "last_error",
                          k->last_error[0] ? json_string(k->last_error) : json_null());
    if (x) json_object_set_new(body, "reranker", x);
}
