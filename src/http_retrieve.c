/* SPDX-License-Identifier: MIT */
/*
 * http_retrieve.c - POST /retrieve and POST /context: the body checked against the retrieval
 * field spec (plus the two shapes of "filters"), the retrieval, its record in the metrics and the
 * JSONL log, and the two renderings the CLI shares: the answer as JSON and the system prompt.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "ragd/engine.h"
#include "ragd/filter.h"
#include "ragd/log.h"
#include "ragd/log_event.h"
#include "ragd/metrics.h"
#include "ragd/retrieve.h"
#include "ragd/util.h"

#define QUERY_MAX_BYTES 8192
#define TAGS_MAX 32

/* ---- POST /retrieve ----------------------------------------------------------------------- */

static json_t *json_or(const char *text, json_t *fallback)
{
    /* most chunks have no tags and no metadata: "[]" and "{}" need no parser (nor its buffers) */
    if (text && ((json_is_array(fallback) && strcmp(text, "[]") == 0) ||
                 (json_is_object(fallback) && strcmp(text, "{}") == 0)))
        return fallback;
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

/* Returns: result rank's object with its first fields (what json_pack "{s:I, s:f, s:s, ...}"
 * built, in the same order, without parsing a format per result): new, or NULL when a string is
 * missing or not UTF-8, or on OOM (as json_pack failed). */
static json_t *result_object(size_t rank, const engine_result *r, const store_hit *h)
{
    json_t *tags = json_or(h->tags_json, json_array());
    json_t *metadata = json_or(h->metadata_json, json_object());
    const struct {
        const char *key;
        json_t *value;
    } fields[] = {
        {"rank", json_integer((json_int_t)rank)},
        {"score", json_real(r->score)},
        {"text", h->text ? json_string(h->text) : NULL},
        {"source", h->source ? json_string(h->source) : NULL},
        {"title", h->title ? json_string(h->title) : NULL},
        {"heading", h->heading ? json_string(h->heading) : NULL},
        {"chunk", json_integer(h->ordinal)},
        {"chunk_id", json_integer((json_int_t)h->chunk_id)},
        {"document_id", json_integer((json_int_t)h->document_id)},
        {"tokens", json_integer((json_int_t)h->tokens)},
        {"char_start", json_integer((json_int_t)h->char_start)},
        {"char_end", json_integer((json_int_t)h->char_end)},
        {"tags", tags},
        {"metadata", metadata},
    };
    size_t n = sizeof fields / sizeof fields[0];
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        if (o == NULL) { /* failed before: the values left are freed here */
            json_decref(fields[i].value);
            continue;
        }
        /* json_object_set_new_nocheck steals the value even when it fails */
        if (fields[i].value == NULL ||
            json_object_set_new_nocheck(o, fields[i].key, fields[i].value) != 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

json_t *http_answer_json(const engine_query *q, const engine_answer *a)
{
    json_t *results = json_array();
    json_t *sources = json_array();
    for (size_t i = 0; i < a->count; i++) {
        const engine_result *r = &a->results[i];
        const store_hit *h = &r->hit;
        json_t *o = result_object(i + 1, r, h);
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
        /* issue 16: where the time went, beside the totals above */
        json_t *t = json_object_get(o, "timings_ms");
        json_object_set_new(t, "vector_search", json_real(a->vector_ms));
        json_object_set_new(t, "keyword_search", json_real(a->keyword_ms));
        json_object_set_new(t, "fusion", json_real(a->fuse_ms));
        json_object_set_new(t, "confidence", json_real(a->confidence_ms));
        json_object_set_new(t, "context", json_real(a->context_ms));
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

static int max_k_of(const ragd_cfg *cfg) { return cfg->retrieve_max_k; }

static const char *const mode_choices[] = {"vector", "keyword", "hybrid", NULL};
static const char *const fusion_choices[] = {"rrf", "relative", NULL};

/* The body of POST /retrieve and POST /context. */
static const http_field retrieve_fields[] = {
    {"query", HTTP_FIELD_STRING, HTTP_FIELD_REQUIRED | HTTP_FIELD_NONBLANK, 0, QUERY_MAX_BYTES,
     NULL, NULL},
    {"k", HTTP_FIELD_INT, 0, 1, 0, NULL, max_k_of},
    {"min_score", HTTP_FIELD_NUMBER, 0, -1, 1, NULL, NULL},
    {"filters", HTTP_FIELD_ANY, 0, 0, 0, NULL, NULL}, /* two shapes: see retrieve_parse */
    {"intent", HTTP_FIELD_STRING, 0, 0, 0, NULL, NULL},
    {"mode", HTTP_FIELD_STRING, 0, 0, 0, mode_choices, NULL},
    {"fusion", HTTP_FIELD_STRING, 0, 0, 0, fusion_choices, NULL},
    {"diversity", HTTP_FIELD_BOOL, 0, 0, 0, NULL, NULL},
    {"max_context_tokens", HTTP_FIELD_INT, 0, 16, 1000000, NULL, NULL},
    {"rerank", HTTP_FIELD_BOOL, 0, 0, 0, NULL, NULL},
    {"collection", HTTP_FIELD_STRING, 0, 0, 0, NULL, NULL},
    {"ef_search", HTTP_FIELD_INT, 0, 1, 65536, NULL, NULL}, /* as [store] hnsw_ef_search */
};

/* The short form of "filters": {"source": prefix, "tags": [all of these]}. */
static const http_field short_filter_fields[] = {
    {"source", HTTP_FIELD_STRING, 0, 0, 0, NULL, NULL},
    {"tags", HTTP_FIELD_STRINGS, 0, 0, TAGS_MAX, NULL, NULL},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Parses a /retrieve or /context body into *qp (strings borrowed from *rootp, which the caller
 * frees with json_decref even on failure; tags must hold TAGS_MAX). *filterp: new (free with
 * retrieve_filter_free) when the request has an OpenAI-style filter, else NULL. Returns: 0, or
 * -1 with *replyp set. */
static int retrieve_parse(const ragd_cfg *cfg, const char *body, size_t len, json_t **rootp,
                          engine_query *qp, const char **tags, retrieve_filter **filterp,
                          http_reply *replyp)
{
    *filterp = NULL;
    json_t *root = http_body_object(body, len, replyp);
    *rootp = root;
    if (root == NULL) return -1;
    if (http_fields_check(root, retrieve_fields, COUNT(retrieve_fields), "", cfg, replyp) != 0)
        return -1;
    engine_query q = {.k = cfg->retrieve_default_k, .min_score = cfg->retrieve_min_score,
                      .cfg = cfg};
    json_t *v = json_object_get(root, "query");
    q.query = json_string_value(v);
    q.query_len = json_string_length(v);
    /* No NUL check needed: jansson refuses \u0000 in strings (invalid_json). */
    if ((v = json_object_get(root, "k")) != NULL) {
        q.k = (int)json_integer_value(v);
        q.k_given = 1;
    }
    if ((v = json_object_get(root, "mode")) != NULL)
        q.mode = retrieve_mode_parse(json_string_value(v));
    if ((v = json_object_get(root, "fusion")) != NULL)
        q.fusion = retrieve_fusion_parse(json_string_value(v));
    if ((v = json_object_get(root, "diversity")) != NULL)
        q.diversity = json_is_true(v) ? RAGD_DIVERSITY_ON : RAGD_DIVERSITY_OFF;
    if ((v = json_object_get(root, "max_context_tokens")) != NULL)
        q.max_context_tokens = (int)json_integer_value(v);
    if ((v = json_object_get(root, "rerank")) != NULL)
        q.rerank = json_is_true(v) ? RAGD_RERANK_ON : RAGD_RERANK_OFF;
    if ((v = json_object_get(root, "ef_search")) != NULL) q.ef_search = (int)json_integer_value(v);
    if ((v = json_object_get(root, "min_score")) != NULL) q.min_score = json_number_value(v);
    if ((v = json_object_get(root, "intent")) != NULL) q.intent = json_string_value(v);
    if ((v = json_object_get(root, "collection")) != NULL) {
        if (!http_collection_json_ok(v)) {
            *replyp = http_reply_errorf(RAGD_ERR_INVALID, NULL, "field 'collection': %s",
                                        HTTP_COLLECTION_RULE);
            return -1;
        }
        q.collection = json_string_value(v);
    }
    if ((v = json_object_get(root, "filters")) != NULL && json_is_object(v) &&
        json_object_get(v, "type") != NULL) {
        /* OpenAI vector-store filter shape: {"type": ..., "key"/"filters": ...} */
        ragd_err ferr = {0};
        retrieve_filter *filter = NULL;
        if (retrieve_filter_parse(v, "filters", &filter, &ferr) != RAGD_OK) {
            *replyp = http_reply_error(ferr.rc, NULL, ferr.msg);
            return -1;
        }
        q.filter = filter;
        *filterp = filter;
    } else if (v != NULL) {
        if (!json_is_object(v)) {
            *replyp = http_reply_error(RAGD_ERR_INVALID, NULL, "field 'filters' must be an object");
            return -1;
        }
        if (http_fields_check(v, short_filter_fields, COUNT(short_filter_fields), "filters.", cfg,
                              replyp) != 0)
            return -1;
        q.source_prefix = json_string_value(json_object_get(v, "source"));
        json_t *tv = json_object_get(v, "tags");
        if (tv != NULL) {
            size_t i;
            json_t *t;
            json_array_foreach(tv, i, t) tags[q.tag_count++] = json_string_value(t);
            q.tags_all = tags;
        }
    }
    *qp = q;
    return 0;
}

int http_retrieve_body_check(const ragd_cfg *cfg, const char *body, size_t len, http_reply *reply)
{
    json_t *root = NULL;
    engine_query q;
    const char *tags[TAGS_MAX];
    retrieve_filter *filter = NULL;
    int rc = retrieve_parse(cfg, body, len, &root, &q, tags, &filter, reply);
    retrieve_filter_free(filter);
    json_decref(root);
    return rc;
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
                         .error_message = ok ? NULL : err->msg,
                         .collection = q->collection ? q->collection : RAGD_COLLECTION_DEFAULT};
    log_record_retrieval(&rec, cfg->log_queries);
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

/* The answer of POST /retrieve for body (runs in a retrieval task's thread). */
static http_reply retrieve_answer(engine *e, const ragd_cfg *cfg, const char *body, size_t len)
{
    http_reply reply = {0};
    json_t *root = NULL;
    engine_query q;
    const char *tags[TAGS_MAX];
    engine_answer a = {0};
    if (retrieval_run(e, cfg, body, len, &root, &q, tags, &a, &reply) != 0) goto out;
    reply.status = 200;
    reply.body = http_answer_json(&q, &a);
    if (reply.body)
        json_object_set_new(reply.body, "collection",
                            json_string(q.collection ? q.collection : RAGD_COLLECTION_DEFAULT));
    engine_answer_free(&a);
    if (reply.body == NULL)
        reply = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory building the response");
out:
    json_decref(root);
    return reply;
}

/* ---- POST /context ------------------------------------------------------------------------ */

/* Returns: a copy of context in which the prompt's fence lines ("<<<CONTEXT", "CONTEXT>>>")
 * cannot occur, so a document cannot close the fence and speak outside it; new (free()), or NULL
 * on OOM. */
static char *context_fence_defang(const char *context)
{
    util_buf b = {0};
    const char *p = context;
    int bad = 0;
    while (!bad && *p) {
        const char *open = strstr(p, "<<<CONTEXT"), *close = strstr(p, "CONTEXT>>>");
        const char *hit = open && (!close || open < close) ? open : close;
        if (hit == NULL) {
            bad |= util_buf_puts(&b, p);
            break;
        }
        bad |= util_buf_append(&b, p, (size_t)(hit - p));
        bad |= util_buf_puts(&b, hit == open ? "<< <CONTEXT" : "CONTEXT> >>");
        p = hit + 10;
    }
    if (bad) {
        util_buf_free(&b);
        return NULL;
    }
    return util_buf_steal(&b);
}

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
    char *fenced = use ? context_fence_defang(a->context.text) : NULL;
    bad |= use && fenced == NULL;
    retrieve_prompt_vars v = {.persona = cfg->prompt_persona,
                              .tools = cfg->prompt_tools,
                              .context = fenced ? fenced : "",
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
    free(fenced);
    util_buf_free(&src);
    free(file_text);
    return out;
}

/* The answer of POST /context for body (runs in a retrieval task's thread). */
static http_reply context_answer(engine *e, const ragd_cfg *cfg, const char *body, size_t len)
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
        json_object_set_new(o, "collection",
                            json_string(q.collection ? q.collection : RAGD_COLLECTION_DEFAULT));
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

/* ---- retrievals off the handler pool ------------------------------------------------------ */

/* A retrieval is handed on as a task (HTTP_ROUTE_ASYNC, not detached, allowed in the drain):
 * src/http_server.c runs it in its retrieval pool ([server] threads workers, FAISS and SQLite
 * single-threaded inside each), apart from the handler pool, so a retrieval stuck on its
 * upstream embedding never holds up /health; any worker takes the next request whatever its
 * connection, and the kernel spreads them over the cores. */
typedef struct retrieval_task {
    engine *e;
    const ragd_cfg *cfg;
    char *body; /* owned copy of the request body */
    size_t len;
    int context; /* 1: POST /context */
    char request_id[RAGD_REQUEST_ID_MAX]; /* for the log records written by this thread */
} retrieval_task;

static void retrieval_task_free(retrieval_task *t)
{
    free(t->body);
    free(t);
}

/* At most [server] threads retrievals run at once; the others wait their turn in their threads
 * (their connections stay suspended), so a burst of clients does not make every search share
 * the cores and the memory bandwidth with every other. */
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slots_cond = PTHREAD_COND_INITIALIZER;
static int slots_busy;

static http_reply retrieval_task_run(void *arg)
{
    retrieval_task *t = arg;
    int slots = t->cfg->threads > 0 ? t->cfg->threads : 1;
    pthread_mutex_lock(&slots_mu);
    while (slots_busy >= slots) pthread_cond_wait(&slots_cond, &slots_mu);
    slots_busy++;
    pthread_mutex_unlock(&slots_mu);
    log_record_request_id_set(t->request_id[0] ? t->request_id : NULL);
    http_reply r = t->context ? context_answer(t->e, t->cfg, t->body, t->len)
                              : retrieve_answer(t->e, t->cfg, t->body, t->len);
    log_record_request_id_set(NULL);
    pthread_mutex_lock(&slots_mu);
    slots_busy--;
    pthread_cond_signal(&slots_cond);
    pthread_mutex_unlock(&slots_mu);
    retrieval_task_free(t);
    return r;
}

static void retrieval_task_drop(void *arg, const http_reply *why)
{
    (void)why;
    retrieval_task_free(arg);
}

/* Bodies longer than this are never run on the event loop (the query's embedding and terms grow
 * with it). */
#define RETRIEVE_QUICK_BODY_MAX 4096

/* Whether the event loop may run this retrieval itself (http_reply.task_quick): a short body
 * naming no "filters" and no "collection" (their searches widen until enough hits pass, up to the
 * whole index) and holding no escapes (which could spell those names), on an engine whose
 * retrievals wait on nothing outside the process (engine_retrieve_quick). A body that fails the
 * test is only handed off, as every retrieval was before. */
static int retrieval_quick(const http_request *req)
{
    static const char *const widening[] = {"filters", "collection"};
    if (req->body == NULL || req->body_len > RETRIEVE_QUICK_BODY_MAX ||
        memchr(req->body, '\\', req->body_len) != NULL)
        return 0;
    for (size_t i = 0; i < sizeof widening / sizeof widening[0]; i++)
        if (memmem(req->body, req->body_len, widening[i], strlen(widening[i])) != NULL) return 0;
    return engine_retrieve_quick(req->engine);
}

/* Returns: a reply handing the retrieval to a worker thread, or, when the task cannot be
 * allocated, the answer computed here. */
static http_reply retrieval_defer(const http_request *req, int context)
{
    retrieval_task *t = calloc(1, sizeof *t);
    char *body = t ? malloc(req->body_len + 1) : NULL;
    if (t == NULL || body == NULL) {
        free(t);
        free(body);
        return context ? context_answer(req->engine, req->cfg, req->body, req->body_len)
                       : retrieve_answer(req->engine, req->cfg, req->body, req->body_len);
    }
    if (req->body_len) memcpy(body, req->body, req->body_len);
    body[req->body_len] = '\0';
    *t = (retrieval_task){.e = req->engine, .cfg = req->cfg, .body = body, .len = req->body_len,
                          .context = context};
    if (req->request_id)
        snprintf(t->request_id, sizeof t->request_id, "%s", req->request_id);
    /* A retrieval whose request arrived before a SIGTERM is answered during the drain. */
    return (http_reply){.task_run = retrieval_task_run, .task_drop = retrieval_task_drop,
                        .task_arg = t, .task_in_drain = 1, .task_quick = retrieval_quick(req)};
}

http_reply http_handle_retrieve(const http_request *req)
{
    return retrieval_defer(req, 0);
}

http_reply http_handle_context(const http_request *req)
{
    return retrieval_defer(req, 1);
}
