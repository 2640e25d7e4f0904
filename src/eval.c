/* SPDX-License-Identifier: MIT */
/*
 * eval.c - `ragd eval --qa FILE.jsonl`: runs every question of a labeled set through retrieval,
 * either in process against the data dir's store (opened read-only) or over HTTP against a
 * running daemon (--url), and reports recall@1/5/10, MRR, nDCG@10, the share of low-confidence
 * answers (separately for questions the documents answer and for those they do not, marked
 * "expected": []), and latency percentiles, as a readable table or a JSON report.
 * A QA line: {"question": "...", "expected": ["API.md", "API.md#Errors", "API.md#=API > Errors"]}.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "ragd/cfg.h"
#include "ragd/http_client.h"
#include "ragd/engine.h"
#include "ragd/eval.h"
#include "ragd/log.h"
#include "ragd/util.h"

#define EVAL_K 10
#define EVAL_EXPECTED_MAX 16

static const char usage_eval[] =
    "usage: ragd eval --qa FILE.jsonl [--url URL] [--mode vector|keyword|hybrid]\n"
    "                 [--fusion rrf|relative] [--diversity on|off] [--collection NAME]\n"
    "                 [--json] [--out FILE]\n"
    "                 [--config FILE] [--data-dir DIR] [--log-level LEVEL]\n"
    "\n"
    "Runs every question of FILE.jsonl (one {\"question\": ..., \"expected\": [...]} per line;\n"
    "\"expected\": [] marks a question the documents do not answer) through retrieval with k = 10\n"
    "and prints recall@1/5/10, MRR, nDCG@10, the share of low-confidence answers and latency\n"
    "percentiles. Without --url it reads the data dir's store (read-only, safe beside a daemon);\n"
    "with --url (e.g. http://127.0.0.1:8088) it asks that daemon's POST /retrieve.\n"
    "\n"
    "  --collection NAME  ask in this collection (default: default)\n"
    "  --json       print the JSON report instead of the table\n"
    "  --out FILE   also write the JSON report to FILE\n";

int eval_expected_match(const char *expected, const char *source, const char *heading)
{
    const char *hash = strchr(expected, '#');
    size_t n = hash ? (size_t)(hash - expected) : strlen(expected);
    if (strlen(source) != n || strncmp(source, expected, n) != 0) return 0;
    if (hash == NULL) return 1;
    if (hash[1] == '=') return strcmp(heading, hash + 2) == 0;
    return strstr(heading, hash + 1) != NULL;
}

typedef struct eval_opts {
    const char *qa, *url, *mode, *fusion, *diversity, *out, *collection;
    const char *config, *data_dir, *log_level;
    int json;
} eval_opts;

/* One retrieval's outcome: the (source, heading) of each result, low_confidence, latency. */
typedef struct eval_run {
    char *sources[EVAL_K];
    char *headings[EVAL_K];
    size_t count;
    int low_confidence;
    double coverage; /* -1 when unknown */
    double ms;
    double best_vector; /* best cosine among the results, -1 when none came from the vectors */
    double best_rerank; /* best rerank score, when reranked */
    int reranked;
} eval_run;

static void eval_run_free(eval_run *r)
{
    for (size_t i = 0; i < r->count; i++) {
        free(r->sources[i]);
        free(r->headings[i]);
    }
    memset(r, 0, sizeof *r);
}

/* Fills r from a /retrieve response object. Returns: 0, or -1 when it lacks the fields. */
static int run_from_json(json_t *o, eval_run *r)
{
    json_t *res = json_object_get(o, "results");
    json_t *low = json_object_get(o, "low_confidence");
    if (!json_is_array(res) || !json_is_boolean(low)) return -1;
    r->low_confidence = json_is_true(low);
    json_t *cov = json_object_get(o, "coverage");
    r->coverage = json_is_number(cov) ? json_number_value(cov) : -1.0;
    json_t *best = json_object_get(json_object_get(o, "rerank"), "best_score");
    r->reranked = json_is_number(best);
    r->best_rerank = r->reranked ? json_number_value(best) : 0.0;
    r->best_vector = -1.0;
    size_t i;
    json_t *v;
    json_array_foreach(res, i, v) {
        json_t *vs = json_object_get(v, "vector_score");
        if (json_is_number(vs) && json_number_value(vs) > r->best_vector)
            r->best_vector = json_number_value(vs);
        if (r->count == EVAL_K) break;
        const char *s = json_string_value(json_object_get(v, "source"));
        const char *h = json_string_value(json_object_get(v, "heading"));
        r->sources[r->count] = strdup(s ? s : "");
        r->headings[r->count] = strdup(h ? h : "");
        r->count++;
    }
    return 0;
}

/* One question over HTTP: POST /retrieve through the CLI's client (the bearer token from the
 * configuration, the connection kept between questions). */
static ragd_rc run_http(http_client *client, const eval_opts *o, const char *question,
                        eval_run *r, ragd_err *err)
{
    json_t *body = json_pack("{s:s, s:i}", "query", question, "k", EVAL_K);
    if (o->mode) json_object_set_new(body, "mode", json_string(o->mode));
    if (o->fusion) json_object_set_new(body, "fusion", json_string(o->fusion));
    if (o->diversity) json_object_set_new(body, "diversity", json_boolean(o->diversity[1] == 'n'));
    if (o->collection) json_object_set_new(body, "collection", json_string(o->collection));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    long status = 0;
    json_t *reply = NULL;
    double t0 = util_now_ms();
    ragd_rc rc = http_client_call(client, "POST", "/retrieve", text, &status, &reply, NULL, err);
    r->ms = util_now_ms() - t0;
    free(text);
    if (rc == RAGD_OK && (status != 200 || reply == NULL || run_from_json(reply, r) != 0))
        rc = ragd_err_set(err, RAGD_ERR_IO, "POST %s/retrieve: status %ld: %s", o->url, status,
                          http_client_error_message(reply, "unexpected answer"));
    json_decref(reply);
    return rc;
}

static ragd_rc run_store(engine *e, const ragd_cfg *cfg, const eval_opts *o, const char *question,
                         eval_run *r, ragd_err *err)
{
    engine_query q = {.query = question, .query_len = strlen(question), .k = EVAL_K,
                      .k_given = 1, .min_score = cfg->retrieve_min_score,
                      .collection = o->collection};
    if (o->mode) q.mode = retrieve_mode_parse(o->mode);
    if (o->fusion) q.fusion = retrieve_fusion_parse(o->fusion);
    if (o->diversity) q.diversity = o->diversity[1] == 'n' ? RAGD_DIVERSITY_ON : RAGD_DIVERSITY_OFF;
    engine_answer a;
    double t0 = util_now_ms();
    ragd_rc rc = engine_retrieve(e, &q, &a, err);
    r->ms = util_now_ms() - t0;
    if (rc != RAGD_OK) return rc;
    r->low_confidence = a.low_confidence;
    r->coverage = a.coverage;
    r->reranked = a.rerank.applied && a.count > 0;
    r->best_rerank = r->reranked ? a.rerank.best : 0.0;
    r->best_vector = -1.0;
    for (size_t i = 0; i < a.count; i++)
        if (a.results[i].vector_rank > 0 && a.results[i].vector_score > r->best_vector)
            r->best_vector = a.results[i].vector_score;
    for (size_t i = 0; i < a.count && r->count < EVAL_K; i++) {
        r->sources[r->count] = strdup(a.results[i].hit.source);
        r->headings[r->count] = strdup(a.results[i].hit.heading);
        r->count++;
    }
    engine_answer_free(&a);
    return RAGD_OK;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, size_t n, double p)
{
    if (n == 0) return 0.0;
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    if (i > 0) i--;
    if (i >= n) i = n - 1;
    return sorted[i];
}

static int opts_parse(int argc, char **argv, eval_opts *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_eval, stdout);
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (strcmp(a, "--qa") == 0) slot = &o->qa;
        else if (strcmp(a, "--url") == 0) slot = &o->url;
        else if (strcmp(a, "--mode") == 0) slot = &o->mode;
        else if (strcmp(a, "--fusion") == 0) slot = &o->fusion;
        else if (strcmp(a, "--diversity") == 0) slot = &o->diversity;
        else if (strcmp(a, "--collection") == 0) slot = &o->collection;
        else if (strcmp(a, "--out") == 0) slot = &o->out;
        else if (strcmp(a, "--config") == 0) slot = &o->config;
        else if (strcmp(a, "--data-dir") == 0) slot = &o->data_dir;
        else if (strcmp(a, "--log-level") == 0) slot = &o->log_level;
        if (slot == NULL) {
            fprintf(stderr, "ragd: unknown option '%s' for eval\n\nrun `ragd eval --help` for "
                    "usage\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "ragd: option %s needs a value\n", a);
            return 2;
        }
        *slot = argv[++i];
    }
    if (o->qa == NULL) {
        fprintf(stderr, "ragd: eval needs --qa FILE.jsonl\n\nrun `ragd eval --help` for usage\n");
        return 2;
    }
    if (o->mode && retrieve_mode_parse(o->mode) == RAGD_MODE_DEFAULT) {
        fprintf(stderr, "ragd: --mode must be vector, keyword or hybrid, got '%s'\n", o->mode);
        return 2;
    }
    if (o->fusion && retrieve_fusion_parse(o->fusion) == RAGD_FUSION_DEFAULT) {
        fprintf(stderr, "ragd: --fusion must be rrf or relative, got '%s'\n", o->fusion);
        return 2;
    }
    if (o->collection && !engine_collection_valid(o->collection)) {
        fprintf(stderr, "ragd: --collection needs a name of 1..64 ASCII letters, digits, '_', "
                "'-' or '.', got '%s'\n", o->collection);
        return 2;
    }
    if (o->diversity && strcmp(o->diversity, "on") != 0 && strcmp(o->diversity, "off") != 0) {
        fprintf(stderr, "ragd: --diversity must be on or off, got '%s'\n", o->diversity);
        return 2;
    }
    return -1;
}

typedef struct eval_totals {
    size_t answerable, unanswerable;
    double r1, r5, r10, mrr, ndcg;
    size_t low_answerable, low_unanswerable;
} eval_totals;

/* Scores one answered question into t and returns its per-question JSON. */
static json_t *score_question(const char *question, json_t *expected, const eval_run *r,
                              eval_totals *t)
{
    size_t ne = json_array_size(expected);
    json_t *q = json_pack("{s:s, s:b, s:f, s:o}", "question", question, "low_confidence",
                          r->low_confidence, "ms", r->ms, "coverage",
                          r->coverage >= 0 ? json_real(r->coverage) : json_null());
    /* the scores a confidence floor is calibrated on (docs/RETRIEVAL.md) */
    json_object_set_new(q, "best_vector_score", r->best_vector >= 0 ? json_real(r->best_vector)
                                                                    : json_null());
    json_object_set_new(q, "best_rerank_score", r->reranked ? json_real(r->best_rerank)
                                                            : json_null());
    if (ne == 0) {
        t->unanswerable++;
        t->low_unanswerable += r->low_confidence != 0;
        return q;
    }
    t->answerable++;
    t->low_answerable += r->low_confidence != 0;
    size_t first = 0; /* 1-based rank of the first relevant result */
    double dcg = 0.0, idcg = 0.0;
    for (size_t e = 0; e < ne && e < EVAL_K; e++) idcg += 1.0 / log2((double)e + 2.0);
    for (size_t e = 0; e < ne; e++) {
        const char *exp = json_string_value(json_array_get(expected, e));
        for (size_t i = 0; exp && i < r->count; i++) {
            if (!eval_expected_match(exp, r->sources[i], r->headings[i])) continue;
            dcg += 1.0 / log2((double)i + 2.0); /* each expected entry counts once, at its best */
            break;
        }
    }
    for (size_t i = 0; i < r->count && first == 0; i++)
        for (size_t e = 0; e < ne && first == 0; e++) {
            const char *exp = json_string_value(json_array_get(expected, e));
            if (exp && eval_expected_match(exp, r->sources[i], r->headings[i])) first = i + 1;
        }
    t->r1 += first == 1;
    t->r5 += first >= 1 && first <= 5;
    t->r10 += first >= 1 && first <= 10;
    t->mrr += first ? 1.0 / (double)first : 0.0;
    t->ndcg += idcg > 0 ? dcg / idcg : 0.0;
    json_object_set_new(q, "first_relevant_rank", first ? json_integer((json_int_t)first)
                                                        : json_null());
    return q;
}

int eval_main(int argc, char **argv)
{
    eval_opts o = {0};
    int code = opts_parse(argc, argv, &o);
    if (code >= 0) return code;
    ragd_cfg cfg;
    ragd_err err = {0};
    const char *path = o.config;
    const char *env = getenv("RAGD_CONFIG");
    if (path == NULL && env && env[0]) path = env;
    ragd_rc rc = cfg_load(&cfg, path, &err);
    if (rc == RAGD_OK && o.data_dir)
        rc = cfg_key_set(&cfg, "store", "data_dir", o.data_dir, "--data-dir", &err);
    if (rc == RAGD_OK && o.log_level)
        rc = cfg_key_set(&cfg, "log", "level", o.log_level, "--log-level", &err);
    if (rc == RAGD_OK) rc = cfg_validate(&cfg, &err);
    if (rc != RAGD_OK) {
        fprintf(stderr, "ragd: %s\n", err.msg);
        cfg_free(&cfg);
        return 2;
    }
    ragd_log_level level = RAGD_LOG_INFO;
    if (log_level_parse(cfg.log_level, &level) == 0) log_level_set(level);

    FILE *f = fopen(o.qa, "r");
    if (f == NULL) {
        fprintf(stderr, "ragd: cannot open %s\n", o.qa);
        cfg_free(&cfg);
        return 1;
    }
    engine *e = NULL;
    http_client *client = NULL;
    if (o.url) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        client = http_client_new(o.url, cfg.auth_token, 30);
        if (client == NULL) rc = ragd_err_set(&err, RAGD_ERR_NOMEM, "out of memory");
    } else {
        rc = engine_open(&cfg, RAGD_ENGINE_READONLY, &e, &err);
    }
    eval_totals t = {0};
    json_t *per = json_array();
    size_t cap = 64, nlat = 0;
    double *lat = malloc(cap * sizeof *lat);
    char line[16384];
    int lineno = 0;
    while (rc == RAGD_OK && fgets(line, sizeof line, f)) {
        lineno++;
        if (strspn(line, " \t\r\n") == strlen(line)) continue;
        json_t *j = json_loads(line, 0, NULL);
        const char *question = json_string_value(json_object_get(j, "question"));
        json_t *expected = json_object_get(j, "expected");
        if (question == NULL || !json_is_array(expected)) {
            rc = ragd_err_set(&err, RAGD_ERR_INVALID, "%s:%d: expected {\"question\": string, "
                              "\"expected\": [strings]}", o.qa, lineno);
            json_decref(j);
            break;
        }
        eval_run r = {0};
        rc = o.url ? run_http(client, &o, question, &r, &err)
                   : run_store(e, &cfg, &o, question, &r, &err);
        if (rc == RAGD_OK) {
            json_array_append_new(per, score_question(question, expected, &r, &t));
            if (nlat == cap) {
                double *g = realloc(lat, 2 * cap * sizeof *lat);
                if (g) lat = g, cap *= 2;
            }
            if (nlat < cap && lat) lat[nlat++] = r.ms;
        }
        eval_run_free(&r);
        json_decref(j);
    }
    fclose(f);
    engine_close(e);
    if (o.url) {
        http_client_free(client);
        curl_global_cleanup();
    }
    if (rc != RAGD_OK) {
        fprintf(stderr, "ragd: eval failed: %s\n", err.msg);
        json_decref(per);
        free(lat);
        cfg_free(&cfg);
        return rc == RAGD_ERR_INVALID ? 2 : 1;
    }
    qsort(lat, nlat, sizeof *lat, dbl_cmp);
    double na = t.answerable ? (double)t.answerable : 1.0;
    double nu = t.unanswerable ? (double)t.unanswerable : 1.0;
    size_t total = t.answerable + t.unanswerable;
    double sum = 0.0;
    for (size_t i = 0; i < nlat; i++) sum += lat[i];
    const char *mode = o.mode ? o.mode : cfg.retrieve_mode;
    const char *fusion = o.fusion ? o.fusion : cfg.retrieve_fusion;
    int diversity = o.diversity ? o.diversity[1] == 'n' : cfg.retrieve_diversity;
    json_t *rep = json_pack(
        "{s:s, s:s, s:s, s:s, s:b, s:i, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
        "s:{s:f, s:f, s:f, s:f}, s:o}",
        "qa", o.qa, "target", o.url ? o.url : cfg.data_dir, "mode", mode, "fusion",
        fusion, "diversity", diversity, "k", EVAL_K, "questions", (json_int_t)total,
        "answerable", (json_int_t)t.answerable, "unanswerable", (json_int_t)t.unanswerable,
        "recall@1", t.r1 / na, "recall@5", t.r5 / na, "recall@10", t.r10 / na, "mrr", t.mrr / na,
        "ndcg@10", t.ndcg / na, "low_confidence",
        total ? (double)(t.low_answerable + t.low_unanswerable) / (double)total : 0.0,
        "low_confidence_answerable", (double)t.low_answerable / na,
        "low_confidence_unanswerable", t.unanswerable ? (double)t.low_unanswerable / nu : 0.0,
        "latency_ms", "p50", percentile(lat, nlat, 50), "p95", percentile(lat, nlat, 95), "p99",
        percentile(lat, nlat, 99), "mean", nlat ? sum / (double)nlat : 0.0, "per_question", per);
    free(lat);
    code = 0;
    if (rep == NULL) {
        fprintf(stderr, "ragd: out of memory\n");
        cfg_free(&cfg);
        return 1;
    }
    if (o.out && json_dump_file(rep, o.out, JSON_INDENT(2)) != 0) {
        fprintf(stderr, "ragd: cannot write %s\n", o.out);
        code = 1;
    }
    if (o.json) {
        json_dumpf(rep, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    } else {
        printf("qa %s against %s: %zu questions (%zu answerable, %zu unanswerable)\n", o.qa,
               o.url ? o.url : cfg.data_dir, total, t.answerable, t.unanswerable);
        printf("mode %s%s%s, diversity %s, k %d\n\n", mode,
               strcmp(mode, "hybrid") == 0 ? " fusion " : "",
               strcmp(mode, "hybrid") == 0 ? fusion : "", diversity ? "on" : "off", EVAL_K);
        printf("| R@1 | R@5 | R@10 | MRR | nDCG@10 | low conf. (answerable) | low conf. "
               "(unanswerable) | p50 ms | p95 ms |\n");
        printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        printf("| %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.2f | %.2f |\n", t.r1 / na,
               t.r5 / na, t.r10 / na, t.mrr / na, t.ndcg / na, (double)t.low_answerable / na,
               t.unanswerable ? (double)t.low_unanswerable / nu : 0.0,
               json_real_value(json_object_get(json_object_get(rep, "latency_ms"), "p50")),
               json_real_value(json_object_get(json_object_get(rep, "latency_ms"), "p95")));
    }
    json_decref(rep);
    cfg_free(&cfg);
    return code;
}
