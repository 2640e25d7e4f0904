/* SPDX-License-Identifier: MIT */
/*
 * engine_retrieve.c - the engine's read path: embeds the query (through the query cache), asks
 * the store for the vector side and the keyword side (each widened until enough candidates pass
 * the filters), applies the filters, fuses, diversifies, estimates confidence and builds the
 * context. One code path for every backend: the backend only searches and fetches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine_int.h"
#include "ragd/filter.h"
#include "ragd/log.h"
#include "ragd/metrics.h"
#include "ragd/retrieve.h"
#include "ragd/util.h"

/* ---- retrieve ----------------------------------------------------------------------------- */

void engine_answer_free(engine_answer *a)
{
    if (a == NULL) return;
    for (size_t i = 0; i < a->count; i++) store_hit_free(&a->results[i].hit);
    free(a->results);
    free(a->clarify);
    retrieve_context_free(&a->context);
    memset(a, 0, sizeof *a);
}

/* Returns: the settings q runs under: its snapshot, else the engine's (borrowed). */
static const ragd_cfg *query_cfg(const engine *e, const engine_query *q)
{
    return q->cfg ? q->cfg : e->cfg;
}

/* Returns: the collection a query reads (static or borrowed from q). */
static const char *query_collection(const engine_query *q)
{
    return q->collection ? q->collection : RAGD_COLLECTION_DEFAULT;
}

static int hit_matches(const engine_query *q, const store_hit *h)
{
    if (h->collection && strcmp(h->collection, query_collection(q)) != 0) return 0;
    if (q->source_prefix && strncmp(h->source, q->source_prefix, strlen(q->source_prefix)) != 0)
        return 0;
    if (q->tag_count == 0 && q->filter == NULL) return 1;
    json_t *tags = json_loads(h->tags_json, 0, NULL);
    if (q->filter != NULL) {
        json_t *meta = json_loads(h->metadata_json, 0, NULL);
        int match = retrieve_filter_match(q->filter, h->source, tags, meta, h->page);
        json_decref(meta);
        if (!match) {
            json_decref(tags);
            return 0;
        }
        if (q->tag_count == 0) {
            json_decref(tags);
            return 1;
        }
    }
    int ok = json_is_array(tags);
    for (size_t t = 0; ok && t < q->tag_count; t++) {
        int present = 0;
        size_t i;
        json_t *v;
        json_array_foreach(tags, i, v) {
            if (json_is_string(v) && strcmp(json_string_value(v), q->tags_all[t]) == 0) {
                present = 1;
                break;
            }
        }
        ok = present;
    }
    json_decref(tags);
    return ok;
}

/* Returns: 1 when a result with this score is kept: at least min_score, and above 0 (a score of
 * 0 or less shares nothing with the query). */
static int score_kept(const engine_query *q, float score)
{
    return score > 0.0f && (double)score >= q->min_score;
}

/* Returns: 1 when hits must be filtered (so the searches widen): the query has filters, or the
 * store may return chunks of other collections. */
static int has_filters(engine *e, const engine_query *q)
{
    return (q->source_prefix && q->source_prefix[0]) || q->tag_count > 0 || q->filter != NULL ||
           !store_collection_exclusive(e->st, query_collection(q));
}

/* Embeds the query into qv (e->embedder->dims floats, caller-owned) and records the time spent in
 * a->embed_ms. Returns: RAGD_OK or the embedder's error. */
static ragd_rc query_embed(engine *e, const engine_query *q, float *qv, engine_answer *a,
                           ragd_err *err)
{
    /* The cache first (in-process LRU, then Redis): a repeated question costs no embedding
     * request. Cache time and embedding time are reported apart. */
    double t0 = util_now_ms();
    cache_layer layer = cache_query_get(e->cache, q->query, q->query_len, qv);
    double t1 = util_now_ms();
    a->cache_layer = cache_layer_name(layer);
    a->cache_ms = t1 - t0;
    if (layer != RAGD_CACHE_MISS) return RAGD_OK;
    const char *texts[1] = {q->query};
    size_t lens[1] = {q->query_len};
    ragd_rc rc = embed_batch_run(e->embedder, texts, lens, 1, qv, err);
    double t2 = util_now_ms();
    a->embed_ms = t2 - t1;
    if (rc != RAGD_OK) return rc;
    cache_query_put(e->cache, q->query, q->query_len, qv);
    a->cache_ms += util_now_ms() - t2;
    return RAGD_OK;
}

#ifndef RAGD_COVERAGE_TOP
#define RAGD_COVERAGE_TOP 5 /* results whose text counts for the coverage: a default context */
#endif

/* One side's candidates (vector or keyword) after the filters, best first. */
typedef struct side_list {
    int64_t *ids;
    double *scores;
    store_hit *hits; /* owned */
    size_t count;
} side_list;

static void side_list_free(side_list *l)
{
    for (size_t i = 0; l->hits && i < l->count; i++) store_hit_free(&l->hits[i]);
    free(l->ids);
    free(l->scores);
    free(l->hits);
    memset(l, 0, sizeof *l);
}

/* Fetches the chunks of ids[0..found) and appends those passing the filters (and keep) to out,
 * up to pool. lazy (a query without filters): the first pool ids and scores only, their hits
 * left unread (chunk_id 0) for results_fuse to read those it keeps. Caller holds the read
 * lock. */
static ragd_rc side_collect(engine *e, const engine_query *q, const int64_t *ids,
                            const double *scores, size_t found, size_t pool, side_list *out,
                            int lazy, engine_answer *a, ragd_err *err)
{
    for (size_t i = 0; i < out->count; i++) store_hit_free(&out->hits[i]);
    out->count = 0;
    free(out->ids);
    free(out->scores);
    free(out->hits);
    out->ids = calloc(found ? found : 1, sizeof *out->ids);
    out->scores = calloc(found ? found : 1, sizeof *out->scores);
    out->hits = calloc(found ? found : 1, sizeof *out->hits);
    store_hit *hits = calloc(found ? found : 1, sizeof *hits);
    if (!out->ids || !out->scores || !out->hits || !hits) {
        free(hits);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    ragd_rc rc = RAGD_OK;
    if (!has_filters(e, q) && lazy) {
        /* Nothing to filter: the candidates stay ids and scores, and only the ones fusion
         * keeps are read (results_fuse), not every candidate of the side. */
        size_t n = found < pool ? found : pool;
        memcpy(out->ids, ids, n * sizeof *ids);
        memcpy(out->scores, scores, n * sizeof *scores);
        out->count = n;
        free(hits);
        return RAGD_OK;
    }
    double tf = util_now_ms();
    rc = store_chunks_get(e->st, ids, found, hits, err);
    a->fetch_ms += util_now_ms() - tf;
    for (size_t i = 0; rc == RAGD_OK && i < found && out->count < pool; i++) {
        if (hits[i].chunk_id == 0) continue; /* cannot happen under the lock; be safe */
        if (!hit_matches(q, &hits[i])) continue;
        out->ids[out->count] = ids[i];
        out->scores[out->count] = scores[i];
        out->hits[out->count] = hits[i];
        memset(&hits[i], 0, sizeof hits[i]);
        out->count++;
    }
    for (size_t i = 0; i < found; i++) store_hit_free(&hits[i]);
    free(hits);
    return rc;
}

/* Pivoted length normalisation of the vector side (hybrid only): the local embedder's cosine
 * favours short chunks (L2 normalisation of a bag of words), BM25 does not. Each cosine is
 * multiplied by L / ((1 - slope) * P + slope * L), L the chunk's tokens and P the mean over the
 * candidates, and the list re-sorted. slope 0 leaves it alone. docs/RETRIEVAL.md has the
 * numbers. Candidates left unread (side_collect, lazy) have only their token counts read, not
 * their text. Caller holds the read lock. Returns: RAGD_OK, or the store's error. */
static ragd_rc vector_length_pivot(engine *e, side_list *l, double slope, engine_answer *a,
                                   ragd_err *err)
{
    if (l->count == 0 || slope <= 0.0) return RAGD_OK;
    int64_t *tokens = calloc(l->count, sizeof *tokens);
    if (tokens == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    size_t unread = 0;
    for (size_t i = 0; i < l->count; i++) {
        tokens[i] = l->hits[i].tokens;
        unread += l->hits[i].chunk_id == 0;
    }
    ragd_rc rc = RAGD_OK;
    if (unread > 0) {
        double tf = util_now_ms();
        rc = store_chunk_tokens(e->st, l->ids, l->count, tokens, err);
        a->fetch_ms += util_now_ms() - tf;
    }
    double mean = 0.0;
    for (size_t i = 0; i < l->count; i++) mean += (double)tokens[i];
    mean /= (double)l->count;
    for (size_t i = 0; rc == RAGD_OK && i < l->count; i++) {
        double len = (double)tokens[i];
        double d = (1.0 - slope) * mean + slope * len;
        if (d > 0.0) l->scores[i] *= len / d;
    }
    for (size_t i = 1; rc == RAGD_OK && i < l->count; i++) /* insertion sort: short lists, */
        for (size_t j = i; j > 0 && l->scores[j] > l->scores[j - 1]; j--) { /* mostly in order */
            double ts = l->scores[j];
            l->scores[j] = l->scores[j - 1];
            l->scores[j - 1] = ts;
            int64_t ti = l->ids[j];
            l->ids[j] = l->ids[j - 1];
            l->ids[j - 1] = ti;
            int64_t tt = tokens[j];
            tokens[j] = tokens[j - 1];
            tokens[j - 1] = tt;
            store_hit th = l->hits[j];
            l->hits[j] = l->hits[j - 1];
            l->hits[j - 1] = th;
        }
    free(tokens);
    return rc;
}


/* Grows a side's candidate buffers (ids, scores; caller-owned, freed by the caller whatever
 * happens) to want entries. Returns: RAGD_OK or RAGD_ERR_NOMEM (the buffers keep their old
 * contents and stay valid). */
static ragd_rc side_buffers_grow(int64_t **ids, double **scores, size_t want, ragd_err *err)
{
    int64_t *nids = realloc(*ids, sizeof **ids * want);
    if (nids == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    *ids = nids;
    double *ns = realloc(*scores, sizeof **scores * want);
    if (ns == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    *scores = ns;
    return RAGD_OK;
}
/* The vector side: up to pool chunks with a cosine above 0 that pass the filters. Without filters
 * pool candidates suffice; with filters the search widens until pool pass or the index is
 * exhausted. Caller holds the read lock. */
static ragd_rc vector_side(engine *e, const engine_query *q, const float *qv, size_t pool,
                           side_list *out, engine_answer *a, ragd_err *err)
{
    size_t total = store_vector_count(e->st);
    size_t want = has_filters(e, q) ? pool * 4 : pool;
    int64_t *ids = NULL;
    float *fscores = NULL;
    double *scores = NULL;
    ragd_rc rc = RAGD_OK;
    while (rc == RAGD_OK && total > 0) {
        if (want > total) want = total;
        if ((rc = side_buffers_grow(&ids, &scores, want, err)) != RAGD_OK) break;
        float *nf = realloc(fscores, sizeof *fscores * want);
        if (nf == NULL) {
            rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
            break;
        }
        fscores = nf;
        size_t found = 0;
        double ts = util_now_ms();
        rc = store_vector_search_ef(e->st, query_collection(q), qv, want, q->ef_search, ids,
                                    fscores, &found, err);
        a->vector_ms += util_now_ms() - ts;
        if (rc != RAGD_OK) break;
        size_t kept = 0; /* sorted: the rest score 0 or less, nothing in common with the query */
        while (kept < found && fscores[kept] > 0.0f) {
            scores[kept] = (double)fscores[kept];
            kept++;
        }
        a->candidates += found;
        /* hybrid: like the keyword side, only the candidates fusion keeps are read (the
         * length pivot reads the others' token counts alone, where the backend can) */
        rc = side_collect(e, q, ids, scores, kept, pool, out,
                          a->mode == RAGD_MODE_HYBRID && store_chunk_tokens_cheap(e->st), a, err);
        if (rc != RAGD_OK || out->count >= pool || want >= total || kept < found ||
            found < want || !has_filters(e, q))
            break;
        want *= 4;
    }
    free(ids);
    free(fscores);
    free(scores);
    return rc;
}

/* The keyword side: up to pool BM25 matches that pass the filters, widened like vector_side.
 * Caller holds the read lock. */
static ragd_rc keyword_side(engine *e, const engine_query *q, const retrieve_terms *terms,
                            size_t pool, side_list *out, engine_answer *a, ragd_err *err)
{
    if (terms->count == 0 || !store_keyword_available(e->st)) return RAGD_OK;
    size_t want = has_filters(e, q) ? pool * 4 : pool;
    int64_t *ids = NULL;
    double *scores = NULL;
    ragd_rc rc = RAGD_OK;
    for (;;) {
        if ((rc = side_buffers_grow(&ids, &scores, want, err)) != RAGD_OK) break;
        size_t found = 0;
        double ts = util_now_ms();
        rc = store_keyword_search(e->st, query_collection(q), terms, want, ids, scores, &found,
                                  err);
        a->keyword_ms += util_now_ms() - ts;
        if (rc != RAGD_OK) break;
        a->candidates += found;
        rc = side_collect(e, q, ids, scores, found, pool, out, 1, a, err);
        if (rc != RAGD_OK || out->count >= pool || found < want || !has_filters(e, q)) break;
        want *= 4;
    }
    free(ids);
    free(scores);
    return rc;
}

/* The keyword side handed to a helper thread ([retrieve] parallel_sides, src/engine_sides.c)
 * at the start of a hybrid request, while the request's thread embeds the query and searches the
 * vectors. Its own accumulator and error: the two sides never write the same memory; the request
 * merges acc into its answer once the job is finished. */
typedef struct keyword_job {
    engine_side_job job;
    engine *e;
    const engine_query *q;
    const retrieve_terms *terms;
    size_t pool;
    int started;  /* handed to the helpers (engine_sides_submit) */
    int take_back; /* auto: a job no helper picked up is run by the request itself */
    uint_fast64_t writes; /* e->writes under the helper's read lock */
    side_list out;
    engine_answer acc; /* keyword_ms, fetch_ms, candidates */
    ragd_err err;
    ragd_rc rc;
} keyword_job;

/* Runs on a helper thread. It takes a read lock of its own, and only if it can at once: the
 * request may hold its read lock and wait for this job while a writer queues (the lock prefers
 * writers), so waiting here could deadlock. Returns: 1 when it ran, 0 when it declined. */
static int keyword_job_run(void *arg)
{
    keyword_job *j = arg;
    if (pthread_rwlock_tryrdlock(&j->e->rw) != 0) return 0;
    j->writes = atomic_load(&j->e->writes);
    j->rc = keyword_side(j->e, j->q, j->terms, j->pool, &j->out, &j->acc, &j->err);
    pthread_rwlock_unlock(&j->e->rw);
    return 1;
}

/* Hands a hybrid query's keyword side to a helper thread when [retrieve] parallel_sides says so
 * (job->started then). Called before the query embedding, without the read lock. */
static void keyword_job_start(engine *e, const engine_query *q, const retrieve_terms *terms,
                              size_t pool, const engine_answer *a, keyword_job *job)
{
    *job = (keyword_job){.e = e, .q = q, .terms = terms, .pool = pool};
    job->job.run = keyword_job_run;
    job->job.arg = job;
    int setting = query_cfg(e, q)->retrieve_parallel_sides;
    /* the keyword index's presence is fixed when the store opens: no lock needed to ask */
    if (a->mode != RAGD_MODE_HYBRID || terms->count == 0 || !store_keyword_available(e->st))
        return;
    if (!engine_sides_parallel(setting, atomic_load(&e->retrievals), e->cpus,
                               setting == RAGD_CFG_BOOL_AUTO ? engine_cpu_free_milli(&e->cpu)
                                                             : -1))
        return;
    job->take_back = setting == RAGD_CFG_BOOL_AUTO;
    job->started = engine_sides_submit(&e->sides, &job->job) == 0;
}

/* Finishes a started job (waits for it, or takes it back). Returns: 1 when its result is the
 * request's keyword side (run by a helper on the store the request reads: no write between
 * the helper's read lock and the request's), with the job's out, acc and error moved into ks and
 * a; 0 when the request must run the side itself (job->out freed). Caller holds the read lock,
 * or holds none and only cleans up. */
static int keyword_job_finish(keyword_job *job, side_list *ks, engine_answer *a, ragd_rc *rc,
                              ragd_err *err)
{
    if (!job->started) return 0;
    job->started = 0;
    engine_side_job_state st = engine_sides_finish(&job->e->sides, &job->job, job->take_back);
    if (st != RAGD_SIDE_JOB_DONE || job->writes != atomic_load(&job->e->writes)) {
        side_list_free(&job->out);
        return 0;
    }
    a->keyword_ms += job->acc.keyword_ms;
    a->fetch_ms += job->acc.fetch_ms;
    a->candidates += job->acc.candidates;
    *ks = job->out;
    memset(&job->out, 0, sizeof job->out);
    if (*rc == RAGD_OK && job->rc != RAGD_OK) {
        *rc = job->rc;
        ragd_err_set(err, job->err.rc, "%s", job->err.msg);
    }
    return 1;
}

/* Both sides of a retrieval into vs and ks (each as its mode asks); a keyword side a helper
 * thread ran (job) is taken as it is, else it runs here after the vector side. Caller holds the
 * read lock. */
static ragd_rc sides_search(engine *e, const engine_query *q, const retrieve_terms *terms,
                            const float *qv, int zero, size_t pool, keyword_job *job,
                            side_list *vs, side_list *ks, engine_answer *a, ragd_err *err)
{
    int vector = a->mode != RAGD_MODE_KEYWORD && !zero, keyword = a->mode != RAGD_MODE_VECTOR;
    ragd_rc rc = RAGD_OK;
    if (vector) rc = vector_side(e, q, qv, pool, vs, a, err);
    if (rc == RAGD_OK && a->mode == RAGD_MODE_HYBRID)
        rc = vector_length_pivot(e, vs, query_cfg(e, q)->retrieve_vector_length_slope, a, err);
    if (keyword_job_finish(job, ks, a, &rc, err)) {
        a->sides_parallel = 1;
        metrics_counter_add(RAGD_METRIC_RETRIEVAL_PARALLEL_SIDES, 1);
    } else if (rc == RAGD_OK && keyword) {
        rc = keyword_side(e, q, terms, pool, ks, a, err);
    }
    return rc;
}

/* The retrieval settings for q: intent, mode, fusion, diversity, k, budget. Returns: 0 when the
 * intent does not retrieve. */
static int retrieve_settings(const ragd_cfg *cfg, const engine_query *q, engine_answer *a,
                             size_t *k, ragd_err *err, ragd_rc *rc)
{
    *rc = RAGD_OK;
    *k = (size_t)q->k;
    a->mode = q->mode ? q->mode : retrieve_mode_parse(cfg->retrieve_mode);
    a->fusion = q->fusion ? q->fusion : retrieve_fusion_parse(cfg->retrieve_fusion);
    a->diversity = q->diversity ? q->diversity == RAGD_DIVERSITY_ON : cfg->retrieve_diversity;
    a->max_context_tokens = cfg->retrieve_max_context_tokens;
    if (a->mode == RAGD_MODE_DEFAULT) a->mode = RAGD_MODE_HYBRID;
    if (a->fusion == RAGD_FUSION_DEFAULT) a->fusion = RAGD_FUSION_RRF;
    if (q->intent != NULL) {
        retrieve_intent it;
        *rc = retrieve_intent_find(cfg->intent_retrieve, q->intent, &it, err);
        if (*rc != RAGD_OK || !it.retrieves) return 0;
        if (it.k > 0 && !q->k_given)
            *k = (size_t)(it.k < cfg->retrieve_max_k ? it.k : cfg->retrieve_max_k);
        if (it.max_tokens > 0) a->max_context_tokens = it.max_tokens;
    }
    if (q->max_context_tokens > 0) a->max_context_tokens = q->max_context_tokens;
    return 1;
}

/* Returns: candidate c's hit in its side's list (vs, or ks past vs's slots), borrowed. */
static store_hit *cand_hit(const retrieve_cand *c, side_list *vs, side_list *ks)
{
    return c->slot < vs->count ? &vs->hits[c->slot] : &ks->hits[c->slot - vs->count];
}

/* Reads the unread hits (chunk_id 0) of either side among the candidates c[0..n) into their
 * lists, in one store call. Caller holds the read lock. Returns: RAGD_OK, or the store's
 * error. */
static ragd_rc hits_read(engine *e, const retrieve_cand *c, size_t n, side_list *vs,
                         side_list *ks, engine_answer *a, ragd_err *err)
{
    size_t want = 0;
    for (size_t i = 0; i < n; i++)
        if (cand_hit(&c[i], vs, ks)->chunk_id == 0) want++;
    if (want == 0) return RAGD_OK;
    int64_t *ids = malloc(want * sizeof *ids);
    size_t *slots = malloc(want * sizeof *slots);
    store_hit *hits = calloc(want, sizeof *hits);
    ragd_rc rc = RAGD_OK;
    if (!ids || !slots || !hits) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    size_t m = 0;
    for (size_t i = 0; rc == RAGD_OK && i < n; i++)
        if (cand_hit(&c[i], vs, ks)->chunk_id == 0) {
            ids[m] = c[i].id;
            slots[m++] = i;
        }
    double tf = util_now_ms();
    if (rc == RAGD_OK) rc = store_chunks_get(e->st, ids, m, hits, err);
    a->fetch_ms += util_now_ms() - tf;
    for (size_t i = 0; rc == RAGD_OK && i < m; i++) {
        *cand_hit(&c[slots[i]], vs, ks) = hits[i];
        memset(&hits[i], 0, sizeof hits[i]);
    }
    for (size_t i = 0; hits && i < want; i++) store_hit_free(&hits[i]);
    free(hits);
    free(slots);
    free(ids);
    return rc;
}

/* Fuses the two sides into a's results (k at most): score per mode, min_score, optional MMR.
 * Hits move from the side lists into the results. */
static ragd_rc results_fuse(engine *e, const engine_query *q, side_list *vs, side_list *ks,
                            size_t k, engine_answer *a, ragd_err *err)
{
    size_t n = vs->count + ks->count;
    retrieve_cand *c = calloc(n ? n : 1, sizeof *c);
    if (c == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    size_t m = 0;
    for (size_t i = 0; i < vs->count; i++)
        c[m++] = (retrieve_cand){.id = vs->ids[i], .vector_score = vs->scores[i],
                                 .vector_rank = (int)i + 1, .slot = i};
    for (size_t i = 0; i < ks->count; i++) {
        size_t j = 0;
        while (j < vs->count && c[j].id != ks->ids[i]) j++; /* lists are short (candidates) */
        if (j == vs->count)
            c[j = m++] = (retrieve_cand){.id = ks->ids[i], .slot = vs->count + i};
        c[j].keyword_score = ks->scores[i];
        c[j].keyword_rank = (int)i + 1;
    }
    retrieve_fuse_opts fo = {.mode = a->mode, .fusion = a->fusion,
                             .rrf_k = (double)query_cfg(e, q)->retrieve_rrf_k,
                             .vector_weight = query_cfg(e, q)->retrieve_vector_weight};
    retrieve_fuse(c, m, &fo);
    /* Vector mode keeps the cosine rule (above 0 and min_score). Fused and keyword scores are
     * normalised to [0, 1] over the candidates, so the weakest candidate of a side may score 0
     * while it still matched: there only min_score applies. */
    size_t kept = 0;
    while (kept < m && (a->mode == RAGD_MODE_VECTOR ? score_kept(q, (float)c[kept].score)
                                                    : c[kept].score >= q->min_score))
        kept++;
    size_t *order = calloc(kept ? kept : 1, sizeof *order);
    double *rel = calloc(kept ? kept : 1, sizeof *rel);
    const char **texts = calloc(kept ? kept : 1, sizeof *texts);
    ragd_rc rc = RAGD_OK;
    if (!order || !rel || !texts) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    /* The unread candidates (side_collect, lazy: keyword side, and the vector side in hybrid
     * mode): read the ones that can be picked, the first k, or every kept one when diversity
     * compares their texts. */
    while (rc == RAGD_OK) {
        size_t want = a->diversity ? kept : (kept < k ? kept : k);
        if ((rc = hits_read(e, c, want, vs, ks, a, err)) != RAGD_OK) break;
        /* A candidate whose chunk is gone (cannot happen under the read lock) is dropped, and
         * the next one read in its place. */
        size_t live = 0, dropped = 0;
        for (size_t i = 0; i < kept; i++) {
            const store_hit *h = cand_hit(&c[i], vs, ks);
            if (i < want && h->chunk_id == 0) dropped++;
            else c[live++] = c[i];
        }
        kept = live;
        if (dropped == 0) break;
    }
    size_t picked = 0;
    if (rc == RAGD_OK && a->diversity) {
        for (size_t i = 0; i < kept; i++) {
            store_hit *h = cand_hit(&c[i], vs, ks);
            rel[i] = c[i].score;
            texts[i] = h->text;
        }
        picked = retrieve_mmr(rel, texts, kept, k, query_cfg(e, q)->retrieve_diversity_lambda, order);
        if (picked == 0 && kept > 0) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    } else if (rc == RAGD_OK) {
        for (picked = 0; picked < kept && picked < k; picked++) order[picked] = picked;
    }
    for (size_t r = 0; rc == RAGD_OK && r < picked; r++) {
        const retrieve_cand *x = &c[order[r]];
        store_hit *h = cand_hit(x, vs, ks);
        engine_result *res = &a->results[a->count++];
        res->score = x->score;
        res->hit = *h;
        memset(h, 0, sizeof *h);
        res->vector_score = x->vector_score;
        res->keyword_score = x->keyword_score;
        res->vector_rank = x->vector_rank;
        res->keyword_rank = x->keyword_rank;
    }
    free(order);
    free(rel);
    free(texts);
    free(c);
    return rc;
}

/* Confidence (docs/RETRIEVAL.md "Confidence"): the IDF-weighted share of the query's terms found
 * in the best of the top five results; below [retrieve] min_coverage, or with no results, or
 * with no content word to judge, the answer is low_confidence and carries a clarifying question built
 * from the terms the documents lack and the nearest headings. Caller holds the read lock. */
static ragd_rc confidence_estimate(engine *e, const engine_query *q,
                                   const retrieve_terms *terms, engine_answer *a,
                                   ragd_err *err)
{
    a->coverage = -1.0;
    a->unknown_share = -1.0;
    int64_t df[RAGD_TERMS_MAX] = {0}, total = 0;
    uint32_t mask[RAGD_TERMS_MAX] = {0};
    int missing[RAGD_TERMS_MAX] = {0};
    int64_t top[RAGD_COVERAGE_TOP];
    size_t ntop = a->count < RAGD_COVERAGE_TOP ? a->count : RAGD_COVERAGE_TOP;
    for (size_t i = 0; i < ntop; i++) top[i] = a->results[i].hit.chunk_id;
    ragd_rc rc = RAGD_OK;
    int fts = store_keyword_available(e->st);
    if (fts) rc = store_keyword_terms(e->st, terms, top, ntop, df, mask, &total, err);
    if (rc != RAGD_OK) return rc;
    for (size_t i = 0; i < terms->count; i++) {
        missing[i] = df[i] == 0;
    }
    /* The best single passage counts, not the union: terms scattered over five passages do not
     * answer a question (measured: the union lets off-topic questions through). */
    for (size_t j = 0; fts && j < ntop; j++) {
        int in_j[RAGD_TERMS_MAX] = {0};
        for (size_t i = 0; i < terms->count; i++) in_j[i] = (mask[i] >> j) & 1u;
        double v = retrieve_coverage(terms->count, df, in_j, total);
        if (v > a->coverage) a->coverage = v;
    }
    /* How much of the question's weight lies on words the store never uses: a question about a
     * topic the documents do not cover keeps a few ordinary words the documents share ("policy",
     * "days") while its specific words appear nowhere. Words merely absent from the best passage
     * (found elsewhere) do not count here: that is the ranking's miss, judged by coverage. */
    if (fts) a->unknown_share = retrieve_coverage(terms->count, df, missing, total);
    if (a->count == 0)
        a->low_confidence = 1;
    else if (!fts) /* a read-only store from before the keyword index: nothing to judge with */
        a->low_confidence = 0;
    else
        a->low_confidence = a->coverage < query_cfg(e, q)->retrieve_min_coverage || /* -1: no terms */
                            a->unknown_share >= query_cfg(e, q)->retrieve_max_unknown_share;
    /* A model embedder recognises a paraphrase the words miss: with its cosine floor set
     * ([retrieve] min_vector_score, docs/RETRIEVAL.md), a close enough passage is confident. */
    if (a->low_confidence && a->count > 0 && query_cfg(e, q)->retrieve_min_vector_score > 0.0 &&
        a->unknown_share < query_cfg(e, q)->retrieve_max_unknown_share) {
        double best = 0.0;
        for (size_t i = 0; i < a->count; i++)
            if (a->results[i].vector_rank > 0 && a->results[i].vector_score > best)
                best = a->results[i].vector_score;
        if (best >= query_cfg(e, q)->retrieve_min_vector_score) a->low_confidence = 0;
    }
    /* A cross-encoder's score judges relevance better than shared words: with a floor set for
     * the model ([rerank] min_score, docs/RETRIEVAL.md) it decides alone. */
    if (a->rerank.applied && a->count > 0 && query_cfg(e, q)->rerank_min_score != 0.0)
        a->low_confidence = a->rerank.best < query_cfg(e, q)->rerank_min_score;
    if (!a->low_confidence) return RAGD_OK;
    const char *headings[RAGD_COVERAGE_TOP] = {NULL};
    for (size_t i = 0; i < ntop; i++) {
        const store_hit *h = &a->results[i].hit;
        headings[i] = h->heading[0] ? h->heading : h->title;
    }
    a->clarify = retrieve_clarify_build(terms, missing, headings, ntop);
    if (a->clarify == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    return RAGD_OK;
}

/* Query vectors up to this many dims (8 KiB) need no heap allocation. */
#define QV_STACK_DIMS 2048

ragd_rc engine_retrieve(engine *e, const engine_query *q, engine_answer *out, ragd_err *err)
{
    double t0 = util_now_ms();
    engine_answer a = {.rag_enabled = query_cfg(e, q)->rag_enabled, .low_confidence = 1, .coverage = -1,
                       .unknown_share = -1};
    if (q->k < 1) return ragd_err_set(err, RAGD_ERR_INVALID, "k must be at least 1");
    size_t k = 0;
    ragd_rc rc = RAGD_OK;
    int retrieves = retrieve_settings(query_cfg(e, q), q, &a, &k, err, &rc);
    if (rc != RAGD_OK) return rc;
    if (!query_cfg(e, q)->rag_enabled || !retrieves) {
        a.total_ms = util_now_ms() - t0;
        rc = retrieve_context_build(NULL, 0, a.max_context_tokens, 0, &a.context, err);
        if (rc != RAGD_OK) return rc;
        *out = a;
        return RAGD_OK;
    }
    a.retrieved = 1;
    /* Retrievals in flight (parallel_sides auto): the query embedding competes for cores too. */
    atomic_fetch_add(&e->retrievals, 1);
    retrieve_terms terms = {.count = 0};
    float *qv = NULL;
    side_list vs = {0}, ks = {0};
    rc = retrieve_terms_split(q->query, q->query_len, &terms, err);
    if (rc == RAGD_OK && query_cfg(e, q)->retrieve_lexical_variants)
        rc = retrieve_terms_expand(q->query, q->query_len, &terms, err);
    /* A reranker sees [rerank] candidates fused results and keeps the best k of them. */
    int rerank = retrieve_rerank_wanted(e->reranker, q->rerank);
    size_t fuse_k = rerank && (size_t)query_cfg(e, q)->rerank_candidates > k
                        ? (size_t)query_cfg(e, q)->rerank_candidates : k;
    if (rc == RAGD_OK && (a.results = calloc(fuse_k, sizeof *a.results)) == NULL)
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    /* Fusion and diversity need a wider pool than k; a single list without diversity does not. */
    size_t pool = k;
    if ((a.mode == RAGD_MODE_HYBRID || a.diversity) &&
        (size_t)query_cfg(e, q)->retrieve_candidates > pool)
        pool = (size_t)query_cfg(e, q)->retrieve_candidates;
    if (pool < fuse_k) pool = fuse_k;
    /* The keyword side needs no embedding: a helper thread starts it now (parallel_sides). */
    keyword_job job = {.started = 0};
    if (rc == RAGD_OK) keyword_job_start(e, q, &terms, pool, &a, &job);
    int zero = 1;
    /* The query vector lives on the stack up to QV_STACK_DIMS: a 1.5 KiB malloc per request is
     * a large-bin request, and each one made glibc consolidate the fastbins (~2% of daemon CPU). */
    float qv_stack[QV_STACK_DIMS];
    float *qv_heap = NULL;
    if (rc == RAGD_OK && a.mode != RAGD_MODE_KEYWORD) {
        int dims = e->embedder->dims;
        qv = (size_t)dims <= QV_STACK_DIMS ? qv_stack
                                          : (qv_heap = malloc(sizeof(float) * (size_t)dims));
        if (qv == NULL) rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
        if (rc == RAGD_OK) rc = query_embed(e, q, qv, &a, err);
        for (int i = 0; rc == RAGD_OK && i < dims && zero; i++) zero = qv[i] == 0.0f;
    }

    if (rc == RAGD_OK) {
        pthread_rwlock_rdlock(&e->rw);
        /* This thread's reads (chunks, token counts, term statistics; the keyword side too when
         * it runs here) in one read transaction on one reader: one snapshot, its locks once. */
        int held = store_reader_hold(e->st);
        rc = sides_search(e, q, &terms, qv, zero, pool, &job, &vs, &ks, &a, err);
        double tf = util_now_ms(), fetched = a.fetch_ms;
        if (rc == RAGD_OK) rc = results_fuse(e, q, &vs, &ks, fuse_k, &a, err);
        double tc = util_now_ms();
        a.fuse_ms = tc - tf - (a.fetch_ms - fetched); /* its chunk reads count as fetch */
        if (rc == RAGD_OK && !rerank) rc = confidence_estimate(e, q, &terms, &a, err);
        a.confidence_ms = util_now_ms() - tc;
        store_reader_release(e->st, held);
        pthread_rwlock_unlock(&e->rw);
    }
    /* The reranker is an HTTP call: made outside the lock, then confidence on its order. */
    if (rc == RAGD_OK && rerank) rc = engine_rerank_apply(e->reranker, q, &a, k, err);
    if (rc == RAGD_OK && rerank) {
        double tc = util_now_ms();
        pthread_rwlock_rdlock(&e->rw);
        rc = confidence_estimate(e, q, &terms, &a, err);
        pthread_rwlock_unlock(&e->rw);
        a.confidence_ms = util_now_ms() - tc;
    }
    double tx = util_now_ms();
    const store_hit **hits = NULL;
    if (rc == RAGD_OK && (hits = calloc(a.count ? a.count : 1, sizeof *hits)) == NULL)
        rc = ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == RAGD_OK && i < a.count; i++) hits[i] = &a.results[i].hit;
    if (rc == RAGD_OK)
        rc = retrieve_context_build(hits, a.count, a.max_context_tokens,
                                    query_cfg(e, q)->retrieve_merge_adjacent, &a.context, err);
    a.context_ms = util_now_ms() - tx;
    a.search_ms = a.vector_ms + a.keyword_ms;
    free(hits);
    keyword_job_finish(&job, &ks, &a, &rc, err); /* an embedding failed: the job is not used */
    side_list_free(&vs);
    side_list_free(&ks);
    retrieve_terms_free(&terms);
    free(qv_heap);
    atomic_fetch_sub(&e->retrievals, 1);
    a.total_ms = util_now_ms() - t0;
    if (rc != RAGD_OK) {
        engine_answer_free(&a);
        return rc;
    }
    *out = a;
    return RAGD_OK;
}

int engine_retrieve_quick(engine *e)
{
    /* an ingest may hold the write lock for a while (commits, index saves) */
    return strcmp(e->embedder->ops->name, "local") == 0 && !cache_query_remote(e->cache) &&
           e->reranker == NULL && !atomic_load(&e->ingest_running) &&
           store_vector_search_quick(e->st) &&
           store_collection_exclusive(e->st, RAGD_COLLECTION_DEFAULT);
}

char *engine_context_format(const engine_answer *a)
{
    const char *text = a->context.text ? a->context.text : "";
    return util_strndup(text, strlen(text));
}

