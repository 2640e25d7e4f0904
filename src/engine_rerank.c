/* SPDX-License-Identifier: MIT */
/*
 * engine_rerank.c - the retrieval's reranking step: the fused candidates' texts go to the
 * reranker (src/retrieve_rerank.c), the best k come back in its order with their rerank score
 * beside the fused, vector and keyword scores; on a reranker failure or timeout the first k of the
 * fused order are kept and the answer's "rerank" says why. Separate from engine.c so the
 * retrieval path calls it in one line.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "ragd/rerank.h"
#include "ragd/store.h"

/* Drops results past k (their hits freed). */
static void results_truncate(engine_answer *a, size_t k)
{
    for (size_t i = k; i < a->count; i++) store_hit_free(&a->results[i].hit);
    if (a->count > k) a->count = k;
}

ragd_rc engine_rerank_apply(retrieve_reranker *r, const engine_query *q, engine_answer *a,
                            size_t k, ragd_err *err)
{
    size_t n = a->count;
    const char **texts = calloc(n ? n : 1, sizeof *texts);
    double *scores = calloc(n ? n : 1, sizeof *scores);
    size_t *order = calloc(n ? n : 1, sizeof *order);
    engine_result *sorted = calloc(n ? n : 1, sizeof *sorted);
    if (!texts || !scores || !order || !sorted) {
        free(texts);
        free(scores);
        free(order);
        free(sorted);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) texts[i] = a->results[i].hit.text ? a->results[i].hit.text : "";
    ragd_rc rc = retrieve_rerank_score(r, q->query, q->query_len, texts, n, scores, &a->rerank,
                                       err);
    if (rc == RAGD_OK && a->rerank.applied) {
        retrieve_rerank_order(scores, n, order);
        for (size_t i = 0; i < n; i++) {
            sorted[i] = a->results[order[i]];
            sorted[i].reranked = 1;
            sorted[i].rerank_score = scores[order[i]];
        }
        memcpy(a->results, sorted, sizeof *sorted * n);
    }
    results_truncate(a, k);
    free(texts);
    free(scores);
    free(order);
    free(sorted);
    return rc;
}
