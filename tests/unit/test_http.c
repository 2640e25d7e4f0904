/* SPDX-License-Identifier: MIT */
/*
 * test_http.c - unit tests for the HTTP routes (src/http_routes.c) without a socket: route lookup
 * and methods, the ragd_rc -> status/code mapping, POST /ingest body parsing, POST /retrieve
 * validation and answers, GET /health and GET / against a real engine opened on a mkdtemp data
 * dir with a small ingested corpus. The directory is removed at the end.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "ragd/cfg.h"
#include "ragd/engine.h"
#include "../../src/http_int.h"
#include "ragd/log.h"
#include "ragd/metrics.h"
#include "ragd/util.h"

#include "test_support.h"

/* ---- group fixture: one engine over a small corpus ------------------------------------------ */

typedef struct fixture {
    char base[256];
    char docs[300];
    char data[300];
    ragd_cfg cfg;
    engine *e;
    int64_t chunks;
} fixture;

static int group_setup(void **state)
{
    log_level_set(RAGD_LOG_ERROR);
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL) return -1;
    if (test_tmpdir_make(f->base, sizeof f->base, "http") != 0) {
        free(f);
        return -1;
    }
    *state = f;
    snprintf(f->docs, sizeof f->docs, "%s/docs", f->base);
    snprintf(f->data, sizeof f->data, "%s/data", f->base);
    ragd_err err = {0};
    if (mkdir(f->docs, 0755) != 0 ||
        test_file_write(f->docs, "refunds.md",
                   "---\ntags: [billing]\n---\n# Refunds\n\nCustomers may request a refund "
                   "within thirty days of purchase with the receipt.\n\n## Exceptions\n\n"
                   "Gift cards are not refundable.\n") != 0 ||
        test_file_write(f->docs, "shipping.md",
                   "# Shipping\n\nParcels leave the warehouse within two days with a courier "
                   "tracking number.\n\n## Delivery\n\nExpress delivery arrives overnight.\n") != 0 ||
        test_file_write(f->docs, "garden.txt",
                   "Gardening\n\nTomatoes want compost and deep watering twice a week.\n") != 0)
        return -1;
    if (cfg_defaults_set(&f->cfg, &err) != RAGD_OK ||
        cfg_key_set(&f->cfg, "store", "data_dir", f->data, "test", &err) != RAGD_OK ||
        cfg_key_set(&f->cfg, "ingest", "paths", f->docs, "test", &err) != RAGD_OK ||
        cfg_key_set(&f->cfg, "ingest", "on_start", "false", "test", &err) != RAGD_OK ||
        engine_open(&f->cfg, 0, &f->e, &err) != RAGD_OK) {
        fprintf(stderr, "group setup: %s\n", err.msg);
        return -1;
    }
    engine_ingest_report r;
    if (engine_ingest(f->e, f->docs, 0, NULL, NULL, &r, &err) != RAGD_OK) {
        fprintf(stderr, "group setup ingest: %s\n", err.msg);
        return -1;
    }
    f->chunks = r.chunks_added;
    engine_ingest_report_free(&r);
    return f->chunks >= 3 ? 0 : -1;
}

static int group_teardown(void **state)
{
    fixture *f = *state;
    if (f == NULL) return 0;
    engine_close(f->e);
    cfg_free(&f->cfg);
    int rc = test_tree_remove(f->base);
    free(f);
    return rc;
}

/* ---- helpers ------------------------------------------------------------------------------- */

/* Asserts an error reply's status and code (code may list alternatives as "a|b"), then frees
 * its body (before failing, so a failure is not also reported as a leak). */
static void expect_error(http_reply r, unsigned status, const char *code, const char *what)
{
    json_t *e = json_object_get(r.body, "error");
    char got[64] = "", msg[512] = "";
    const char *g = json_string_value(json_object_get(e, "code"));
    const char *m = json_string_value(json_object_get(e, "message"));
    snprintf(got, sizeof got, "%s", g ? g : "");
    snprintf(msg, sizeof msg, "%s", m ? m : "");
    json_decref(r.body);
    int code_ok = 0;
    for (const char *c = code; *c && !code_ok;) {
        size_t n = strcspn(c, "|");
        code_ok = strlen(got) == n && strncmp(got, c, n) == 0;
        c += n + (c[n] == '|');
    }
    if (r.status != status || !code_ok || m == NULL)
        fail_msg("%s: got %u %s (%s), want %u %s", what, r.status, g ? got : "(no code)",
                 m ? msg : "(no message)", status, code);
}

/* Routes method + path through the table as an authorized client. The Allow buffer is static:
 * a 405's allow points into it until the next call. */
static http_reply call(fixture *f, const char *method, const char *path, const char *body)
{
    static char allow[HTTP_ALLOW_MAX];
    http_request req = {.method = method,
                        .path = path,
                        .body = body,
                        .body_len = body ? strlen(body) : 0,
                        .authorized = 1,
                        .engine = f->e,
                        .cfg = &f->cfg,
                        .request_id = "test"};
    http_reply r = http_dispatch(&req, allow);
    if (r.task_run && !r.task_detached) {
        /* an async route: run its task here, as the server's worker thread would */
        json_decref(r.body);
        free(r.text);
        r = r.task_run(r.task_arg);
    }
    return r;
}

static http_reply retrieve(fixture *f, const char *body)
{
    return call(f, "POST", "/retrieve", body);
}

static void retrieve_bad(fixture *f, const char *body, const char *code)
{
    expect_error(retrieve(f, body), 400, code, body ? body : "(null body)");
}

/* ---- routes -------------------------------------------------------------------------------- */

static void test_route_find(void **state)
{
    (void)state;
    static const struct {
        const char *method, *url;
        const char *route; /* the row's name; NULL: none */
        int ok;
        const char *allow;
    } cases[] = {
        {"GET", "/", "/", 1, NULL},
        {"GET", "/health", "/health", 1, NULL},
        {"POST", "/retrieve", "/retrieve", 1, NULL},
        {"POST", "/ingest", "/ingest", 1, NULL},
        {"GET", "/metrics", "/metrics", 1, NULL},
        {"POST", "/metrics", "/metrics", 0, "GET"},
        /* one trailing slash, query strings */
        {"GET", "/health/", "/health", 1, NULL},
        {"POST", "/retrieve/", "/retrieve", 1, NULL},
        {"GET", "/health?verbose=1", "/health", 1, NULL},
        {"GET", "/health/?x=/y", "/health", 1, NULL},
        {"POST", "/retrieve?k=3", "/retrieve", 1, NULL},
        {"GET", "/?", "/", 1, NULL},
        /* wrong method: the route, method_ok 0 and Allow */
        {"GET", "/retrieve", "/retrieve", 0, "POST"},
        {"PUT", "/ingest", "/ingest", 0, "POST"},
        {"POST", "/health", "/health", 0, "GET"},
        {"DELETE", "/", "/", 0, "GET"},
        {"get", "/health", "/health", 0, "GET"}, /* methods are case-sensitive */
        /* HEAD is allowed where GET is, not elsewhere */
        {"HEAD", "/health", "/health", 1, NULL},
        {"HEAD", "/", "/", 1, NULL},
        {"HEAD", "/retrieve", "/retrieve", 0, "POST"},
        /* several methods on one path; ids after a prefix */
        {"GET", "/documents", "/documents", 1, NULL},
        {"POST", "/documents/", "/documents", 1, NULL},
        {"HEAD", "/documents?limit=3", "/documents", 1, NULL},
        {"PUT", "/documents", "/documents", 0, "GET, POST"},
        {"GET", "/documents/faq-1", "/documents/{id}", 1, NULL},
        {"DELETE", "/documents/faq-1?x=1", "/documents/{id}", 1, NULL},
        {"POST", "/documents/faq-1", "/documents/{id}", 0, "GET, DELETE"},
        {"GET", "/jobs/6926b1c4-3", "/jobs/{id}", 1, NULL},
        {"DELETE", "/jobs/1", "/jobs/{id}", 0, "GET"},
        {"GET", "/jobs/", NULL, 1, NULL},
        {"GET", "/jobs", NULL, 1, NULL},
        /* unknown paths */
        {"GET", "/nope", NULL, 1, NULL},
        {"GET", "/healthz", NULL, 1, NULL},
        {"GET", "/health//", NULL, 1, NULL},
        {"GET", "/Health", NULL, 1, NULL},
        {"POST", "/retrieve/x", NULL, 1, NULL},
        {"POST", "retrieve", NULL, 1, NULL},
        {"GET", "", NULL, 1, NULL},
        {"GET", "/hea", NULL, 1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char allow[HTTP_ALLOW_MAX] = "sentinel";
        const char *id = NULL;
        const http_route *r = http_route_find(cases[i].method, cases[i].url, &id, allow);
        /* a wrong method finds no row and lists the path's methods; an unknown path lists none */
        const char *want_name = cases[i].ok ? cases[i].route : NULL;
        const char *want_allow = cases[i].allow ? cases[i].allow : "";
        const char *got_name = r ? r->name : NULL;
        if ((want_name == NULL) != (got_name == NULL) ||
            (want_name && strcmp(want_name, got_name) != 0) || strcmp(allow, want_allow) != 0 ||
            id == NULL)
            fail_msg("%s %s: route %s allow '%s'; want route %s allow '%s'", cases[i].method,
                     cases[i].url, got_name ? got_name : "NULL", allow,
                     want_name ? want_name : "NULL", want_allow);
    }
    /* prefix routes hand the rest of the path to the handler as the id */
    char allow[HTTP_ALLOW_MAX];
    const char *id = NULL;
    const http_route *r = http_route_find("GET", "/documents/faq-1", &id, allow);
    assert_non_null(r);
    assert_string_equal(id, "faq-1");
    assert_string_equal(http_route_name_of("/retrieve"), "/retrieve");
    assert_string_equal(http_route_name_of("/documents/x"), "/documents/{id}");
    assert_string_equal(http_route_name_of("/jobs/"), "other");
    assert_string_equal(http_route_name_of("/nope"), "other");
}

static void test_reply_error_mapping(void **state)
{
    (void)state;
    static const struct {
        ragd_rc rc;
        unsigned status;
        const char *code;
    } cases[] = {
        {RAGD_ERR_NOMEM, 500, "internal"},
        {RAGD_ERR_INVALID, 400, "invalid_request"},
        {RAGD_ERR_NOT_FOUND, 404, "not_found"},
        {RAGD_ERR_IO, 500, "internal"},
        {RAGD_ERR_CONFIG, 500, "internal"},
        {RAGD_ERR_STORE, 500, "internal"},
        {RAGD_ERR_INDEX, 500, "internal"},
        {RAGD_ERR_EMBED, 502, "embed_error"},
        {RAGD_ERR_MODEL_MISMATCH, 409, "model_mismatch"},
        {RAGD_ERR_LOCKED, 409, "locked"},
        {RAGD_ERR_BUSY, 409, "busy"},
        {RAGD_ERR_TOO_LARGE, 413, "payload_too_large"},
        {RAGD_ERR_UNSUPPORTED, 400, "unsupported"},
        {RAGD_ERR_DISABLED, 503, "disabled"},
        {RAGD_ERR_INTERNAL, 500, "internal"},
        {RAGD_ERR_UNAVAILABLE, 503, "unavailable"},
    };
    /* Every error code is covered by the table above. */
    assert_int_equal(sizeof cases / sizeof cases[0], RAGD_ERR_UNAVAILABLE);
    log_level_set(RAGD_LOG_ERROR + 1); /* 5xx replies log; keep the test output clean */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_reply r = http_reply_error(cases[i].rc, NULL, "detail text");
        assert_null(r.allow);
        assert_true(json_is_object(r.body));
        assert_int_equal(json_object_size(r.body), 1);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(r.body, "error"), "message")),
            "detail text");
        expect_error(r, cases[i].status, cases[i].code, ragd_rc_name(cases[i].rc));
    }
    log_level_set(RAGD_LOG_ERROR);
    /* Overrides: the code changes, the status stays, except for method_not_allowed. */
    expect_error(http_reply_error(RAGD_ERR_INVALID, "invalid_json", "bad"), 400, "invalid_json",
                 "invalid_json override");
    expect_error(http_reply_error(RAGD_ERR_INVALID, "method_not_allowed", "use POST"), 405,
                 "method_not_allowed", "method_not_allowed override");
    expect_error(http_reply_error(RAGD_ERR_NOT_FOUND, "method_not_allowed", "x"), 405,
                 "method_not_allowed", "method_not_allowed override of 404");
    /* NULL message: an empty string, still valid JSON. */
    http_reply r = http_reply_error(RAGD_ERR_BUSY, NULL, NULL);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.body, "error"), "message")), "");
    expect_error(r, 409, "busy", "NULL message");
}

/* ---- POST /ingest parsing and running (src/http_ingest.c) ----------------------------------- */

/* Runs http_ingest_req_parse with the fixture's base dir as the only allowed root. */
static int ingest_parse(fixture *f, const char *body, size_t len, http_ingest_req *req,
                        http_reply *r)
{
    char *roots[1] = {f->base};
    ragd_cfg cfg = f->cfg;
    cfg.ingest_allowed_roots = roots;
    cfg.ingest_allowed_root_count = 1;
    return http_ingest_req_parse(&cfg, body, len, req, r);
}

static void ingest_parse_ok(fixture *f, const char *body, const char *want_path, int want_reset)
{
    http_ingest_req req = {0};
    http_reply r = {0};
    if (ingest_parse(f, body, strlen(body), &req, &r) != 0) {
        json_decref(r.body);
        fail_msg("http_ingest_req_parse(%s) failed", body);
    }
    assert_null(r.body);
    char *real = realpath(want_path, NULL);
    assert_non_null(real);
    assert_string_equal(req.path, real);
    assert_int_equal(req.reset, want_reset);
    free(real);
    http_ingest_req_free(&req);
}

static void ingest_parse_bad(fixture *f, const char *body, size_t len, unsigned status,
                             const char *code)
{
    http_ingest_req req = {0};
    http_reply r = {0};
    if (ingest_parse(f, body, len, &req, &r) == 0) {
        http_ingest_req_free(&req);
        fail_msg("http_ingest_req_parse(%.*s) accepted", (int)len, body ? body : "");
    }
    assert_null(req.path);
    expect_error(r, status, code, body ? body : "(null)");
}

#define PARSE_BAD(lit, code) ingest_parse_bad(f, lit, sizeof(lit) - 1, 400, code)

static void test_ingest_parse(void **state)
{
    fixture *f = *state;
    char body[800], dir[400];
    snprintf(body, sizeof body, "{\"path\": \"%s\"}", f->docs);
    ingest_parse_ok(f, body, f->docs, 0);
    snprintf(body, sizeof body, "{\"reset\": true, \"path\": \"%s/../docs\"}", f->docs);
    ingest_parse_ok(f, body, f->docs, 1);
    snprintf(dir, sizeof dir, "%s/caf\xc3\xa9", f->base);
    assert_int_equal(mkdir(dir, 0755) == 0 || errno == EEXIST, 1);
    snprintf(body, sizeof body, "  {\"path\":\"%s/caf\\u00e9\"}  ", f->base);
    ingest_parse_ok(f, body, dir, 0);

    PARSE_BAD("{}", "invalid_request");
    PARSE_BAD("{\"reset\": true}", "invalid_request");
    PARSE_BAD("{\"path\": \"\"}", "invalid_request");
    PARSE_BAD("{\"path\": 42}", "invalid_request");
    PARSE_BAD("{\"path\": null}", "invalid_request");
    PARSE_BAD("{\"path\": [\"docs\"]}", "invalid_request");
    PARSE_BAD("{\"path\": \"a\\u0000b\"}", "invalid_request|invalid_json");
    PARSE_BAD("{\"path\": \"docs\", \"reset\": \"yes\"}", "invalid_request");
    PARSE_BAD("{\"path\": \"docs\", \"reset\": 1}", "invalid_request");
    PARSE_BAD("{\"path\": \"docs\", \"reset\": null}", "invalid_request");
    PARSE_BAD("{\"path\": \"docs\", \"wait\": \"no\"}", "invalid_request");
    PARSE_BAD("{\"path\": \"docs\", \"rest\": true}", "invalid_request");
    PARSE_BAD("[\"docs\"]", "invalid_request");
    PARSE_BAD("\"docs\"", "invalid_request");
    PARSE_BAD("42", "invalid_request");
    PARSE_BAD("{\"path\": \"docs\"", "invalid_json");
    PARSE_BAD("{path: docs}", "invalid_json");
    PARSE_BAD("{\"path\": \"a\", \"path\": \"b\"}", "invalid_json");
    PARSE_BAD("", "invalid_json");
    ingest_parse_bad(f, NULL, 0, 400, "invalid_json");
    /* Only len bytes count: a valid body cut short is malformed. */
    ingest_parse_bad(f, "{\"path\": \"docs\"}", 10, 400, "invalid_json");
    /* Outside the allowed roots (also through ..): 403; missing inside them: 404. */
    ingest_parse_bad(f, "{\"path\": \"/etc\"}", strlen("{\"path\": \"/etc\"}"), 403, "forbidden");
    snprintf(body, sizeof body, "{\"path\": \"%s/../..\"}", f->base);
    ingest_parse_bad(f, body, strlen(body), 403, "forbidden");
    snprintf(body, sizeof body, "{\"path\": \"%s/none\"}", f->base);
    ingest_parse_bad(f, body, strlen(body), 404, "not_found");

    /* Unknown-field message names the field. */
    http_ingest_req req = {0};
    http_reply r = {0};
    const char *b = "{\"path\": \"docs\", \"bogus_field\": 1}";
    assert_int_not_equal(ingest_parse(f, b, strlen(b), &req, &r), 0);
    const char *msg =
        json_string_value(json_object_get(json_object_get(r.body, "error"), "message"));
    assert_non_null(msg);
    assert_non_null(strstr(msg, "bogus_field"));
    json_decref(r.body);
    /* the refused paths above count as failed ingests for /health: start the next test clean */
    metrics_reset();
}

static void test_ingest_run(void **state)
{
    fixture *f = *state;
    http_jobs *jobs = http_jobs_new();
    assert_non_null(jobs);
    char body[400], id[HTTP_JOB_ID_MAX];
    snprintf(body, sizeof body, "{\"path\": \"%s\"}", f->docs);
    http_ingest_req req = {0};
    http_reply r = {0};
    assert_int_equal(ingest_parse(f, body, strlen(body), &req, &r), 0);
    ragd_err err = {0};
    assert_int_equal(http_jobs_start(jobs, req.path, req.reset, req.wait, id, &err), RAGD_OK);
    r = http_ingest_req_run(f->e, jobs, id, &req);
    http_ingest_req_free(&req);
    assert_int_equal(r.status, 200);
    json_t *d = json_object_get(r.body, "documents");
    assert_true(json_is_object(d));
    assert_int_equal(json_integer_value(json_object_get(d, "unchanged")), 3);
    assert_int_equal(json_integer_value(json_object_get(d, "added")), 0);
    assert_true(json_is_array(json_object_get(r.body, "errors")));
    assert_string_equal(json_string_value(json_object_get(r.body, "job_id")), id);
    json_decref(r.body);
    /* the job keeps the final report */
    json_t *job = http_jobs_json(jobs, id);
    assert_non_null(job);
    assert_string_equal(json_string_value(json_object_get(job, "state")), "done");
    assert_true(json_is_object(json_object_get(job, "report")));
    json_decref(job);
    http_jobs_free(jobs);
}

/* ---- POST /retrieve validation ------------------------------------------------------------- */

static void test_retrieve_body_errors(void **state)
{
    fixture *f = *state;
    retrieve_bad(f, NULL, "invalid_json");
    retrieve_bad(f, "", "invalid_json");
    retrieve_bad(f, "{\"query\": ", "invalid_json");
    retrieve_bad(f, "{'query': 'x'}", "invalid_json");
    retrieve_bad(f, "{\"query\": \"a\", \"query\": \"b\"}", "invalid_json");
    retrieve_bad(f, "[1, 2]", "invalid_request");
    retrieve_bad(f, "\"refund\"", "invalid_request");
    retrieve_bad(f, "null", "invalid_request");
}

static void test_retrieve_query_errors(void **state)
{
    fixture *f = *state;
    retrieve_bad(f, "{}", "invalid_request");
    retrieve_bad(f, "{\"k\": 3}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"\"}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"   \"}", "invalid_request");
    retrieve_bad(f, "{\"query\": \" \\t\\n\\r \"}", "invalid_request");
    retrieve_bad(f, "{\"query\": 42}", "invalid_request");
    retrieve_bad(f, "{\"query\": null}", "invalid_request");
    retrieve_bad(f, "{\"query\": [\"refund\"]}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"a\\u0000b\"}", "invalid_request|invalid_json");

    /* Unknown fields are refused, and the message names the field. */
    http_reply r = retrieve(f, "{\"query\": \"refund\", \"top_k\": 3}");
    const char *msg =
        json_string_value(json_object_get(json_object_get(r.body, "error"), "message"));
    assert_non_null(msg);
    assert_non_null(strstr(msg, "top_k"));
    expect_error(r, 400, "invalid_request", "unknown field top_k");

    /* Query size: 8192 bytes are fine, 8193 are not. */
    const size_t max = 8192;
    char *body = malloc(max + 64);
    assert_non_null(body);
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = max + (size_t)extra;
        size_t at = (size_t)sprintf(body, "{\"query\": \"");
        for (size_t i = 0; i < n; i++) body[at + i] = (i % 7 == 6) ? ' ' : (char)('a' + i % 26);
        at += n;
        strcpy(body + at, "\"}");
        r = retrieve(f, body);
        if (extra == 0) {
            if (r.status != 200) fail_msg("8192-byte query refused: %u", r.status);
            json_decref(r.body);
        } else {
            expect_error(r, 400, "invalid_request", "8193-byte query");
        }
    }
    free(body);
}

static void test_retrieve_k_and_score_errors(void **state)
{
    fixture *f = *state;
    char body[256];
    retrieve_bad(f, "{\"query\": \"refund\", \"k\": 0}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"k\": -1}", "invalid_request");
    snprintf(body, sizeof body, "{\"query\": \"refund\", \"k\": %d}", f->cfg.retrieve_max_k + 1);
    retrieve_bad(f, body, "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"k\": 2.5}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"k\": 3.0}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"k\": \"3\"}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"k\": true}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"k\": 99999999999999999}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"k\": null}", "invalid_request");

    retrieve_bad(f, "{\"query\": \"refund\", \"min_score\": 1.5}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"min_score\": -1.01}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"min_score\": 2}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"min_score\": \"0.5\"}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"min_score\": 1e400}", "invalid_json");

    retrieve_bad(f, "{\"query\": \"refund\", \"intent\": 5}", "invalid_request");

    /* Edges that are valid. */
    snprintf(body, sizeof body, "{\"query\": \"refund\", \"k\": %d}", f->cfg.retrieve_max_k);
    http_reply r = retrieve(f, body);
    assert_int_equal(r.status, 200);
    json_decref(r.body);
    static const char *const ok[] = {
        "{\"query\": \"refund\", \"k\": 1}",
        "{\"query\": \"refund\", \"min_score\": 1}",
        "{\"query\": \"refund\", \"min_score\": -1}",
        "{\"query\": \"refund\", \"min_score\": 0}",
        "{\"query\": \"refund\", \"intent\": \"support\"}",
        "{\"query\": \"refund\", \"filters\": {}}",
        "{\"query\": \"refund\", \"filters\": {\"tags\": []}}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        r = retrieve(f, ok[i]);
        if (r.status != 200) fail_msg("%s: status %u", ok[i], r.status);
        json_decref(r.body);
    }
    /* min_score 1: nothing scores above a perfect match, so at most exact hits remain. */
    r = retrieve(f, "{\"query\": \"refund\", \"min_score\": 1}");
    json_t *res = json_object_get(r.body, "results");
    for (size_t i = 0; i < json_array_size(res); i++)
        assert_true(json_real_value(json_object_get(json_array_get(res, i), "score")) >= 1.0);
    json_decref(r.body);
}

static void test_retrieve_filter_errors(void **state)
{
    fixture *f = *state;
    retrieve_bad(f, "{\"query\": \"refund\", \"filters\": []}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"filters\": \"billing\"}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"filters\": 1}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"filters\": null}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"filters\": {\"tags\": \"billing\"}}",
                 "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"filters\": {\"tags\": [1]}}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"filters\": {\"tags\": [\"a\", null]}}",
                 "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"filters\": {\"tags\": {\"a\": 1}}}",
                 "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"filters\": {\"source\": 3}}", "invalid_request");
    retrieve_bad(f, "{\"query\": \"refund\", \"filters\": {\"sources\": \"a\"}}",
                 "invalid_request");
    /* 32 tags are accepted, 33 are not. */
    char body[1024];
    for (int n = 32; n <= 33; n++) {
        size_t at = (size_t)snprintf(body, sizeof body,
                                     "{\"query\": \"refund\", \"filters\": {\"tags\": [");
        for (int i = 0; i < n; i++)
            at += (size_t)snprintf(body + at, sizeof body - at, "%s\"t%d\"", i ? "," : "", i);
        snprintf(body + at, sizeof body - at, "]}}");
        http_reply r = retrieve(f, body);
        if (n == 32) {
            assert_int_equal(r.status, 200);
            assert_int_equal(json_array_size(json_object_get(r.body, "results")), 0);
            json_decref(r.body);
        } else {
            expect_error(r, 400, "invalid_request", "33 tags");
        }
    }
}

/* ---- POST /retrieve answers ---------------------------------------------------------------- */

/* The reply text of real /retrieve answers (hybrid, vector, keyword) is json_dumps's text. */
static void test_retrieve_reply_text(void **state)
{
    fixture *f = *state;
    static const char *const bodies[] = {
        "{\"query\": \"how many days to request a refund\", \"k\": 3}",
        "{\"query\": \"refund \\\"policy\\\"\\n days\", \"k\": 5, \"mode\": \"vector\"}",
        "{\"query\": \"refund\", \"mode\": \"keyword\", \"diversity\": true}",
        "{\"query\": \"zzzz qqqq unknown words\"}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        http_reply r = retrieve(f, bodies[i]);
        assert_int_equal(r.status, 200);
        char *want = json_dumps(r.body, JSON_COMPACT);
        char *got = util_json_text(r.body, 0, NULL);
        assert_non_null(want);
        assert_non_null(got);
        assert_string_equal(got, want);
        free(want);
        free(got);
        json_decref(r.body);
        free(r.text);
    }
}

static void test_retrieve_happy_path(void **state)
{
    fixture *f = *state;
    http_reply r = retrieve(f, "{\"query\": \"how many days to request a refund\", \"k\": 2}");
    assert_int_equal(r.status, 200);
    assert_null(r.allow);
    json_t *b = r.body;
    assert_string_equal(json_string_value(json_object_get(b, "query")),
                        "how many days to request a refund");
    assert_true(json_is_true(json_object_get(b, "rag_enabled")));
    assert_true(json_is_false(json_object_get(b, "low_confidence")));
    json_t *res = json_object_get(b, "results");
    assert_true(json_is_array(res));
    assert_int_equal(json_array_size(res), 2);
    double prev = 2.0;
    for (size_t i = 0; i < json_array_size(res); i++) {
        json_t *h = json_array_get(res, i);
        assert_int_equal(json_integer_value(json_object_get(h, "rank")), (json_int_t)(i + 1));
        double s = json_real_value(json_object_get(h, "score"));
        assert_true(s <= prev);
        prev = s;
        assert_true(json_is_string(json_object_get(h, "text")));
        assert_true(json_is_string(json_object_get(h, "source")));
        assert_true(json_is_string(json_object_get(h, "heading")));
        assert_true(json_is_array(json_object_get(h, "tags")));
        assert_true(json_is_object(json_object_get(h, "metadata")));
        assert_true(json_integer_value(json_object_get(h, "chunk_id")) > 0);
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 0), "source")),
                        "refunds.md");
    json_t *tags = json_object_get(json_array_get(res, 0), "tags");
    assert_int_equal(json_array_size(tags), 1);
    assert_string_equal(json_string_value(json_array_get(tags, 0)), "billing");
    const char *ctx = json_string_value(json_object_get(b, "context"));
    assert_non_null(ctx);
    assert_int_equal(strncmp(ctx, "[1] ", 4), 0);
    assert_null(strstr(ctx, "[3] "));
    /* one source per context block; adjacent chunks of one document share a block */
    json_t *sources = json_object_get(b, "sources");
    size_t ns = json_array_size(sources);
    assert_true(ns == 1 || ns == 2);
    if (ns == 2) assert_non_null(strstr(ctx, "\n\n[2] "));
    for (size_t i = 0; i < ns; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(sources, i), "n")),
                         (json_int_t)(i + 1));
    for (size_t i = 0; i < json_array_size(res); i++) {
        json_int_t n = json_integer_value(json_object_get(json_array_get(res, i), "context_n"));
        assert_true(n >= 1 && n <= (json_int_t)ns);
    }
    json_t *t = json_object_get(b, "timings_ms");
    assert_true(json_is_number(json_object_get(t, "total")));
    assert_true(json_is_number(json_object_get(t, "embed")));
    json_decref(b);

    /* default k is the configured one (chunks that share nothing with the query, score 0, are
     * never returned, so fewer may come back). */
    r = retrieve(f, "{\"query\": \"parcels courier\"}");
    assert_int_equal(r.status, 200);
    size_t got = json_array_size(json_object_get(r.body, "results"));
    assert_true(got >= 1 && got <= (size_t)f->cfg.retrieve_default_k);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r.body, "results"), 0), "source")),
                        "shipping.md");
    json_decref(r.body);
    r = retrieve(f, "{\"query\": \"parcels courier\", \"k\": 50, \"mode\": \"vector\"}");
    res = json_object_get(r.body, "results");
    assert_true(json_array_size(res) > 0);
    assert_true(json_array_size(res) <= (size_t)f->chunks);
    for (size_t i = 0; i < json_array_size(res); i++) /* vector mode: cosines <= 0 dropped */
        assert_true(json_real_value(json_object_get(json_array_get(res, i), "score")) > 0.0);
    json_decref(r.body);

    /* filters */
    r = retrieve(f, "{\"query\": \"parcels courier refund receipt\", \"k\": 1, "
                    "\"filters\": {\"tags\": [\"billing\"]}}");
    assert_int_equal(r.status, 200);
    res = json_object_get(r.body, "results");
    assert_true(json_array_size(res) > 0);
    for (size_t i = 0; i < json_array_size(res); i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(res, i), "source")),
                            "refunds.md");
    json_decref(r.body);
    r = retrieve(f, "{\"query\": \"refund tomatoes\", \"k\": 50, "
                    "\"filters\": {\"source\": \"garden\"}}");
    res = json_object_get(r.body, "results");
    assert_true(json_array_size(res) > 0);
    for (size_t i = 0; i < json_array_size(res); i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(res, i), "source")),
                            "garden.txt");
    json_decref(r.body);

    /* No match: 200, empty results, low confidence, empty context. */
    r = retrieve(f, "{\"query\": \"refund\", \"filters\": {\"source\": \"zzz/\"}}");
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.body, "results")), 0);
    assert_true(json_is_true(json_object_get(r.body, "low_confidence")));
    assert_string_equal(json_string_value(json_object_get(r.body, "context")), "");
    json_decref(r.body);
}

static void test_retrieve_rag_disabled(void **state)
{
    fixture *f = *state;
    f->cfg.rag_enabled = 0;
    http_reply r = retrieve(f, "{\"query\": \"refund\"}");
    http_reply h = call(f, "GET", "/health", NULL);
    /* validation still applies */
    http_reply bad = retrieve(f, "{\"query\": \"\"}");
    f->cfg.rag_enabled = 1;
    assert_int_equal(r.status, 200);
    assert_true(json_is_false(json_object_get(r.body, "rag_enabled")));
    assert_int_equal(json_array_size(json_object_get(r.body, "results")), 0);
    assert_true(json_is_string(json_object_get(r.body, "message")));
    json_decref(r.body);
    assert_int_equal(h.status, 200);
    assert_true(json_is_false(json_object_get(h.body, "rag_enabled")));
    json_decref(h.body);
    expect_error(bad, 400, "invalid_request", "empty query with RAG disabled");
}

/* ---- GET /health, GET /, unknown ----------------------------------------------------------- */

static void test_health(void **state)
{
    fixture *f = *state;
    http_reply r = call(f, "GET", "/health", NULL);
    assert_int_equal(r.status, 200);
    json_t *b = r.body;
    assert_string_equal(json_string_value(json_object_get(b, "status")), "ok");
    assert_string_equal(json_string_value(json_object_get(b, "version")), RAGD_VERSION);
    assert_true(json_is_true(json_object_get(b, "rag_enabled")));
    json_t *st = json_object_get(b, "store");
    assert_int_equal(json_integer_value(json_object_get(st, "documents")), 3);
    assert_int_equal(json_integer_value(json_object_get(st, "chunks")), f->chunks);
    assert_int_equal(json_integer_value(json_object_get(st, "index_vectors")), f->chunks);
    assert_true(json_integer_value(json_object_get(st, "embeddings")) > 0);
    assert_true(json_integer_value(json_object_get(st, "index_bytes")) > 0);
    assert_true(json_is_true(json_object_get(st, "consistent")));
    json_t *em = json_object_get(b, "embedder");
    assert_string_equal(json_string_value(json_object_get(em, "provider")), "local");
    assert_string_equal(json_string_value(json_object_get(em, "model")), "ragd-local-v1");
    assert_int_equal(json_integer_value(json_object_get(em, "dims")), f->cfg.embed_dims);
    json_t *in = json_object_get(b, "ingest");
    assert_true(json_is_false(json_object_get(in, "running")));
    assert_true(json_integer_value(json_object_get(in, "last_at")) > 0);
    assert_true(json_is_true(json_object_get(in, "last_ok")));
    assert_true(json_is_array(json_object_get(b, "reasons")));
    assert_int_equal(json_array_size(json_object_get(b, "reasons")), 0);
    json_decref(b);
}

static void test_root_and_unknown(void **state)
{
    fixture *f = *state;
    http_reply r = call(f, "GET", "/", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.body, "name")), "ragd");
    assert_string_equal(json_string_value(json_object_get(r.body, "version")), RAGD_VERSION);
    json_t *endpoints = json_object_get(r.body, "endpoints");
    assert_int_equal(json_array_size(endpoints), 14);
    int collections = 0;
    for (size_t i = 0; i < json_array_size(endpoints); i++) {
        const char *line = json_string_value(json_array_get(endpoints, i));
        collections += strcmp(line, "GET /collections") == 0 ||
                       strcmp(line, "DELETE /collections/{name}") == 0;
    }
    assert_int_equal(collections, 2);
    json_decref(r.body);
    expect_error(call(f, "GET", "/nope", NULL), 404, "not_found",
                 "unknown route");
}

/* POST /v1/chat/completions through the table: a bad body is answered at once in OpenAI's error
 * shape (code, message, type, param); a good one becomes a chat turn for the server to start. */
static void test_chat_route(void **state)
{
    fixture *f = *state;
    http_reply r = call(f, "POST", "/v1/chat/completions", "{\"messages\": []}");
    json_t *e = json_object_get(r.body, "error");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "invalid_request_error");
    assert_non_null(json_object_get(e, "param"));
    expect_error(r, 400, "invalid_request", "empty messages");
    expect_error(call(f, "POST", "/v1/chat/completions",
                      "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": "
                      "[{\"type\": \"function\", \"function\": {\"name\": \"rm\"}}]}"),
                 400, "tool_not_allowed", "tool outside the whitelist");
    expect_error(call(f, "GET", "/v1/chat/completions", NULL), 405, "method_not_allowed",
                 "GET on the chat route");
    r = call(f, "POST", "/v1/chat/completions",
             "{\"messages\": [{\"role\": \"user\", \"content\": \"hello\"}]}");
    assert_non_null(r.chat);
    assert_null(r.task_run);
    http_chat_release(r.chat); /* never started: dropped whole */
    json_decref(r.body);
}

/* Returns: 1 when the health reply's reasons include one containing needle. */
static int reasons_have(json_t *body, const char *needle)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(body, "reasons"), i, v)
        if (strstr(json_string_value(v), needle) != NULL) return 1;
    return 0;
}

static void test_health_degraded(void **state)
{
    fixture *f = *state;
    metrics_reset();
    /* RAG switched off: still 200, "degraded", a reason, rag.available false. */
    f->cfg.rag_enabled = 0;
    http_reply r = call(f, "GET", "/health", NULL);
    f->cfg.rag_enabled = 1;
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.body, "status")), "degraded");
    assert_true(reasons_have(r.body, "RAG is disabled"));
    assert_true(json_is_false(json_object_get(json_object_get(r.body, "rag"), "available")));
    json_decref(r.body);

    /* The embedder's last call failed: degraded, reachable false, the error shown. */
    metrics_embed_note(-1, 0, "connection refused");
    r = call(f, "GET", "/health", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.body, "status")), "degraded");
    assert_true(reasons_have(r.body, "connection refused"));
    json_t *em = json_object_get(r.body, "embedder");
    assert_true(json_is_false(json_object_get(em, "reachable")));
    json_decref(r.body);

    /* It answers again, then a whole ingest fails: degraded with the ingest's message. */
    metrics_embed_note(2.0, 1, NULL);
    metrics_embed_note(4.0, 1, NULL);
    metrics_ingest_note(1700000000, "failed", "path not found: /nope");
    r = call(f, "GET", "/health", NULL);
    assert_string_equal(json_string_value(json_object_get(r.body, "status")), "degraded");
    assert_true(reasons_have(r.body, "last ingest failed: path not found"));
    json_t *in = json_object_get(r.body, "ingest");
    assert_string_equal(json_string_value(json_object_get(in, "last_result")), "failed");
    em = json_object_get(r.body, "embedder");
    assert_true(json_is_true(json_object_get(em, "reachable")));
    json_t *lat = json_object_get(em, "latency_ms");
    assert_int_equal(json_integer_value(json_object_get(lat, "samples")), 2);
    assert_true(json_real_value(json_object_get(lat, "p50")) == 2.0);
    assert_true(json_real_value(json_object_get(lat, "p95")) == 4.0);
    json_decref(r.body);

    metrics_reset();
    r = call(f, "GET", "/health", NULL);
    assert_string_equal(json_string_value(json_object_get(r.body, "status")), "ok");
    json_decref(r.body);
}

/* GET /metrics: text exposition, and a retrieval moves exactly one of hits and misses. */
static void test_metrics_route(void **state)
{
    fixture *f = *state;
    metrics_reset();
    const char *hit = "{\"query\": \"refund within thirty days\"}";
    http_reply r = retrieve(f, hit);
    assert_int_equal(r.status, 200);
    json_decref(r.body);
    assert_int_equal(metrics_counter_get(RAGD_METRIC_RETRIEVAL_HITS), 1);
    assert_int_equal(metrics_counter_get(RAGD_METRIC_RETRIEVAL_MISSES), 0);
    const char *miss = "{\"query\": \"refund within thirty days\", \"min_score\": 1.0, "
                       "\"mode\": \"vector\"}";
    r = retrieve(f, miss);
    assert_int_equal(r.status, 200);
    json_decref(r.body);
    assert_int_equal(metrics_counter_get(RAGD_METRIC_RETRIEVAL_HITS), 1);
    assert_int_equal(metrics_counter_get(RAGD_METRIC_RETRIEVAL_MISSES), 1);

    r = call(f, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 200);
    assert_null(r.body);
    assert_non_null(r.text);
    assert_non_null(strstr(r.content_type, "text/plain; version=0.0.4"));
    assert_non_null(strstr(r.text, "\nragd_retrieval_hits_total 1\n"));
    assert_non_null(strstr(r.text, "\nragd_retrieval_misses_total 1\n"));
    assert_non_null(strstr(r.text, "\nragd_retrieval_duration_seconds_count 2\n"));
    char want[64];
    snprintf(want, sizeof want, "\nragd_chunks %lld\n", (long long)f->chunks);
    assert_non_null(strstr(r.text, want));
    assert_non_null(strstr(r.text, "\nragd_documents 3\n"));
    free(r.text);
    metrics_reset();
}


/* ---- request heads and chunked framing (src/http_head.c) ----------------------------------- */

static int name_compare(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs one tests/data/http_head/<name>/{input,expected} case. Returns: 0, or 1 when it failed. */
static int head_case_run(const char *dir, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s/input", dir, name);
    char *input = NULL, *expected = NULL;
    size_t in_len = 0, exp_len = 0;
    ragd_err err = {0};
    if (util_file_read(path, 1 << 20, &input, &in_len, &err) != RAGD_OK) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return 1;
    }
    snprintf(path, sizeof path, "%s/%s/expected", dir, name);
    if (util_file_read(path, 4096, &expected, &exp_len, &err) != RAGD_OK) {
        free(input);
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return 1;
    }
    while (exp_len > 0 && expected[exp_len - 1] == '\n') expected[--exp_len] = '\0';
    http_head h;
    int rc = http_head_check(input, in_len, 1048576, &h);
    char got[256];
    if (rc == 0) {
        snprintf(got, sizeof got, "incomplete");
    } else if (rc < 0) {
        snprintf(got, sizeof got, "refuse %u %s", h.status, h.code);
    } else {
        int n = snprintf(got, sizeof got, "ok");
        if (h.content_length >= 0) n += snprintf(got + n, sizeof got - n, " cl=%lld",
                                                 h.content_length);
        if (h.chunked) n += snprintf(got + n, sizeof got - n, " chunked");
        if (h.expect_continue) snprintf(got + n, sizeof got - n, " expect");
    }
    int bad = strcmp(got, expected) != 0;
    /* a refusal's message is valid UTF-8 and non-empty; an accepted head ends inside input */
    if (rc < 0 && (h.message[0] == '\0' || !util_utf8_valid(h.message, strlen(h.message))))
        bad = 1;
    if (rc > 0 && (h.head_len == 0 || h.head_len > in_len)) bad = 1;
    if (bad) fprintf(stderr, "http_head case %s: got '%s', want '%s'\n", name, got, expected);
    free(input);
    free(expected);
    return bad;
}

static void test_head_cases(void **state)
{
    (void)state;
    const char *root = getenv("RAGD_TEST_DATA");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/http_head", root && root[0] ? root : "tests/data");
    DIR *d = opendir(dir);
    if (d == NULL) fail_msg("cannot open %s (run from the repo root or set RAGD_TEST_DATA)", dir);
    char *names[256];
    size_t n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (de->d_name[0] == '.' || n >= 256) continue;
        names[n] = strdup(de->d_name);
        assert_non_null(names[n]);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof names[0], name_compare);
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        failures += head_case_run(dir, names[i]);
        free(names[i]);
    }
    assert_true(n >= 30);
    assert_int_equal(failures, 0);
    /* every prefix of a good head is incomplete, never refused */
    static const char good[] = "POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n";
    for (size_t k = 0; k + 1 < sizeof good; k++) {
        http_head h;
        if (http_head_check(good, k, 1048576, &h) != 0)
            fail_msg("prefix of %zu bytes: not 'incomplete' (%s)", k, h.message);
    }
}

static void test_chunked_check(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int want;
    } cases[] = {
        {"0\r\n\r\n", 1},
        {"2\r\n{}\r\n0\r\n\r\n", 1},
        {"2;ext=1\r\n{}\r\n0\r\nX-Trailer: y\r\n\r\n", 1},
        {"a\n0123456789\n0\n\n", 1},
        {"2\r\n{}", 0},
        {"2\r\n{", 0},
        {"", 0},
        {"1f", 0},
        {"2\r\n{}\r\n0\r\n", 0},
        {"zz\r\n{}\r\n0\r\n\r\n", -1},
        {"2\r\n{}xx\r\n0\r\n\r\n", -1},
        {"-1\r\n", -1},
        {"2 \r\n{}\r\n", -1},
        {"2\rx{}", -1},
        {"1000000000000000\r\n", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = http_chunked_check(cases[i].body, strlen(cases[i].body));
        if (got != cases[i].want)
            fail_msg("chunked %zu (%s): got %d, want %d", i, cases[i].body, got, cases[i].want);
    }
}

/* http_chunked_parse decodes the data, measures it, and says where the body ends (what follows
 * is the next pipelined request). */
/* A chunked body arriving a few bytes at a time (issue 18 review): resuming from the last whole
 * chunk gives what one pass over the whole body gives, and each call starts past the chunks
 * already seen (a body of many tiny chunks costs linear time, not a rescan from byte 0 per
 * read); extension lines and trailers are bounded, so an unfinished one cannot be rescanned
 * without end. */
static void test_chunked_resume(void **state)
{
    (void)state;
    util_buf body = {0};
    for (int i = 0; i < 3000; i++) util_buf_puts(&body, i % 7 ? "1\r\nX\r\n" : "2;e=1\r\nYZ\r\n");
    util_buf_puts(&body, "0\r\nTrailer: t\r\n\r\n");
    size_t whole_consumed = 0, whole_len = 0;
    assert_int_equal(http_chunked_parse(body.data, body.len, &whole_consumed, &whole_len, NULL),
                     1);
    http_chunked_pos pos = {0};
    size_t consumed = 0, data_len = 0, last_offset = 0;
    int rc = 0;
    for (size_t have = 1; have <= body.len; have += 3) {
        rc = http_chunked_resume(body.data, have, &pos, &consumed, &data_len, NULL);
        if (rc != 0) break;
        assert_true(pos.offset >= last_offset);     /* never goes back */
        assert_true(have - pos.offset <= 64);       /* only the unfinished chunk is walked again */
        last_offset = pos.offset;
    }
    if (rc == 0) rc = http_chunked_resume(body.data, body.len, &pos, &consumed, &data_len, NULL);
    assert_int_equal(rc, 1);
    assert_int_equal(consumed, whole_consumed);
    assert_int_equal(data_len, whole_len);
    util_buf_free(&body);
    /* an extension line or trailers that never end are malformed, not waited for */
    util_buf ext = {0};
    util_buf_puts(&ext, "1;");
    for (int i = 0; i < HTTP_HEAD_MAX + 10; i++) util_buf_append(&ext, "e", 1);
    size_t c2 = 0, d2 = 0;
    assert_int_equal(http_chunked_parse(ext.data, ext.len, &c2, &d2, NULL), -1);
    util_buf_free(&ext);
    util_buf tr = {0};
    util_buf_puts(&tr, "0\r\n");
    for (int i = 0; i < HTTP_HEAD_MAX / 8 + 10; i++) util_buf_puts(&tr, "X: abc\r\n");
    assert_int_equal(http_chunked_parse(tr.data, tr.len, &c2, &d2, NULL), -1);
    util_buf_free(&tr);
}

static void test_chunked_parse(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        int want;
        const char *data;  /* decoded (complete cases) */
        size_t consumed;   /* complete cases */
        size_t data_len;   /* decoded so far */
    } cases[] = {
        {"0\r\n\r\n", 1, "", 5, 0},
        {"2\r\n{}\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 1, "{}", 12, 2},
        {"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n", 1, "abcde", 30, 5},
        {"a\n0123456789\n0\n\n", 1, "0123456789", 16, 10},
        {"5\r\nabc", 0, NULL, 0, 3},
        {"2\r\nab\r\n3\r\nc", 0, NULL, 0, 3},
        {"2\r\nab\r\nzz\r\n", -1, NULL, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t consumed = 0, data_len = 0;
        util_buf out = {0};
        int got = http_chunked_parse(cases[i].raw, strlen(cases[i].raw), &consumed, &data_len,
                                     &out);
        if (got != cases[i].want)
            fail_msg("chunked parse %zu: got %d, want %d", i, got, cases[i].want);
        if (got >= 0 && data_len != cases[i].data_len)
            fail_msg("chunked parse %zu: data_len %zu, want %zu", i, data_len, cases[i].data_len);
        if (got == 1) {
            assert_int_equal(consumed, cases[i].consumed);
            assert_int_equal(out.len, strlen(cases[i].data));
            assert_memory_equal(out.data ? out.data : "", cases[i].data, out.len);
        }
        util_buf_free(&out);
    }
    /* a bad chunk 40 KiB into a body is found (libmicrohttpd answered this one in HTML) */
    util_buf big = {0};
    for (int i = 0; i < 40; i++) {
        util_buf_printf(&big, "400\r\n");
        for (int j = 0; j < 1024; j++) util_buf_append(&big, "x", 1);
        util_buf_puts(&big, "\r\n");
    }
    util_buf_puts(&big, "zz\r\n");
    size_t consumed = 0, data_len = 0;
    assert_int_equal(http_chunked_parse(big.data, big.len, &consumed, &data_len, NULL), -1);
    assert_int_equal(http_chunked_check(big.data, big.len), -1);
    util_buf_free(&big);
}

/* Error replies are valid UTF-8 whatever bytes their message echoes. */
static void test_error_message_utf8(void **state)
{
    (void)state;
    static const char *const messages[] = {"no such endpoint: GET /\xe7", "cut \xc3", "\xff\xfe",
                                           "ok \xc3\xa9 fine"};
    for (size_t i = 0; i < sizeof messages / sizeof messages[0]; i++) {
        http_reply r = http_reply_error(RAGD_ERR_NOT_FOUND, NULL, messages[i]);
        assert_non_null(r.body);
        const char *m = json_string_value(json_object_get(json_object_get(r.body, "error"),
                                                          "message"));
        assert_non_null(m);
        assert_true(util_utf8_valid(m, strlen(m)));
        json_decref(r.body);
    }
    /* a field name of 63 bytes then a two-byte character, and 300 of them: 400, not 500 */
    char body[2048];
    for (size_t len = 50; len < 110; len++) {
        char name[200];
        memset(name, 'a', len);
        memcpy(name + len, "\xc3\xa9\xc3\xa9", 5);
        snprintf(body, sizeof body, "{\"query\": \"x\", \"%s\": 1}", name);
        json_t *o = json_loads(body, 0, NULL);
        assert_non_null(o);
        static const http_field spec[] = {{"query", HTTP_FIELD_STRING, 0, 0, 0, NULL, NULL}};
        http_reply r = {0};
        assert_int_equal(http_fields_check(o, spec, 1, "", NULL, &r), -1);
        json_decref(o);
        expect_error(r, 400, "invalid_request", "long multibyte field name");
    }
}


/* The table's auth rule: without the token every route but /health (and any unknown path) is
 * 401; /health answers the status only. */
static void test_dispatch_auth(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *method, *path;
        unsigned status;
    } cases[] = {
        {"POST", "/retrieve", 401}, {"GET", "/", 401},          {"GET", "/metrics", 401},
        {"GET", "/nope", 401},      {"GET", "/jobs/1", 401},    {"DELETE", "/documents/x", 401},
        {"PUT", "/retrieve", 401},  {"GET", "/health", 200},    {"HEAD", "/health", 200},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char allow[HTTP_ALLOW_MAX];
        http_request req = {.method = cases[i].method, .path = cases[i].path, .authorized = 0,
                            .engine = f->e, .cfg = &f->cfg, .request_id = "t"};
        http_reply r = http_dispatch(&req, allow);
        if (r.status != cases[i].status)
            fail_msg("%s %s unauthorized: %u, want %u", cases[i].method, cases[i].path, r.status,
                     cases[i].status);
        if (r.status == 200) { /* the status only */
            assert_int_equal(json_object_size(r.body), 1);
            assert_string_equal(json_string_value(json_object_get(r.body, "status")), "ok");
        }
        json_decref(r.body);
        free(r.text);
    }
}

/* ---- reply text (src/util_json.c) ---------------------------------------------------------- */

/* Asserts that util_json_text(v) is byte for byte json_dumps(v, JSON_COMPACT), with and
 * without JSON_ENSURE_ASCII (the log's lines). */
static void json_text_check(const json_t *v)
{
    for (int ascii = 0; ascii <= 1; ascii++) {
        char *want = json_dumps(v, JSON_COMPACT | (ascii ? JSON_ENSURE_ASCII : 0));
        size_t len = 0;
        char *got = util_json_text(v, ascii, &len);
        assert_non_null(want);
        assert_non_null(got);
        if (strcmp(want, got) != 0)
            fail_msg("util_json_text (ascii %d): %s\njson_dumps: %s", ascii, got, want);
        assert_int_equal(len, strlen(want));
        free(want);
        free(got);
    }
}

static uint64_t json_rand_state = 0x9E3779B97F4A7C15ull;

static uint64_t json_rand(void)
{
    return test_rand64(&json_rand_state);
}

static void test_json_text_as_jansson(void **state)
{
    (void)state;
    /* strings: every control character, quotes, backslash, slash, DEL, 2/3/4-byte UTF-8, NUL */
    char all[160];
    size_t n = 0;
    for (int c = 1; c < 0x20; c++) all[n++] = (char)c;
    memcpy(all + n, "\"\\/\x7f plain caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 end", 29);
    n += 29;
    json_t *o = json_object();
    json_object_set_new(o, "all", json_stringn(all, n));
    json_object_set_new(o, "nul", json_stringn("a\0b", 3));
    /* the edges of each UTF-8 length: U+0080, U+07FF, U+0800, U+FFFF, U+10000, U+10FFFF */
    json_object_set_new(o, "uni \xc3\xa9", json_string("\xc2\x80 \xdf\xbf \xe0\xa0\x80 \xef\xbf\xbf "
                                                    "\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf"));
    json_object_set_new(o, "empty", json_string(""));
    json_object_set_new(o, "key \"with\"\n escapes\\", json_true());
    json_object_set_new(o, "f", json_false());
    json_object_set_new(o, "n", json_null());
    json_object_set_new(o, "ea", json_array());
    json_object_set_new(o, "eo", json_object());
    json_object_set_new(o, "nested", json_pack("{s:[i,{s:[]},[[]]], s:{s:{s:s}}}", "a", 1, "b",
                                               "c", "d", "e", "f"));
    static const json_int_t ints[] = {0, 1, -1, 42, INT64_MAX, INT64_MIN, 1000000007};
    json_t *ia = json_array();
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        json_array_append_new(ia, json_integer(ints[i]));
    json_object_set_new(o, "ints", ia);
    /* reals: integral values get ".0", exponents lose "+" and leading zeros */
    static const double reals[] = {0.0,   -0.0,   0.1,     1.0 / 3,  3.0,     -2.5,  1e16,
                                   1e17,  1e20,   1e-5,    2.5e-7,   1e300,   1e-300, 5e-324,
                                   1.7976931348623157e308, 123456789012345678.0, 0.45312};
    json_t *ra = json_array();
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++)
        json_array_append_new(ra, json_real(reals[i]));
    for (int i = 0; i < 2000; i++) { /* random finite bit patterns and random scores */
        uint64_t bits = json_rand();
        double d;
        memcpy(&d, &bits, sizeof d);
        if (d == d && d - d == 0.0) json_array_append_new(ra, json_real(d));
        json_array_append_new(ra, json_real((double)(json_rand() >> 11) / 9007199254740992.0));
    }
    json_object_set_new(o, "reals", ra);
    json_text_check(o);
    json_text_check(json_object_get(o, "ints"));
    json_decref(o);
}

static void test_json_text_refuses(void **state)
{
    (void)state;
    /* not a container: json_dumps refuses it without JSON_ENCODE_ANY, and so does the writer */
    json_t *s = json_string("x");
    assert_null(util_json_text(s, 0, NULL));
    json_decref(s);
    assert_null(util_json_text(NULL, 0, NULL));
    /* a string that is not UTF-8 (only the unchecked constructor makes one): NULL, as json_dumps */
    json_t *a = json_array();
    json_array_append_new(a, json_stringn_nocheck("bad \xff byte", 10));
    assert_null(util_json_text(a, 1, NULL));
    assert_null(json_dumps(a, JSON_COMPACT));
    json_decref(a);
    /* random bytes, at every alignment of the 8-byte scan: the writer refuses exactly the
     * strings json_dumps refuses, and writes the others as it does, in both modes */
    static const unsigned char pick[] = {'a', ' ', '"', '\\', '/', 0x01, 0x1f, 0x7f, 0x80,
                                         0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4,
                                         0xf5, 0xff, 0xa0, 0x90, 0x8f, 'z'};
    for (int round = 0; round < 3000; round++) {
        char bytes[40];
        size_t n = (size_t)(json_rand() % sizeof bytes);
        for (size_t i = 0; i < n; i++)
            bytes[i] = json_rand() % 3 ? 'x' : (char)pick[json_rand() % sizeof pick];
        json_t *arr = json_array();
        json_array_append_new(arr, json_stringn_nocheck(bytes, n));
        for (int ascii = 0; ascii <= 1; ascii++) {
            char *want = json_dumps(arr, JSON_COMPACT | (ascii ? JSON_ENSURE_ASCII : 0));
            char *got = util_json_text(arr, ascii, NULL);
            if ((want == NULL) != (got == NULL) || (want && strcmp(want, got) != 0))
                fail_msg("round %d ascii %d: json_dumps %s, util_json_text %s", round, ascii,
                         want ? want : "NULL", got ? got : "NULL");
            free(want);
            free(got);
        }
        json_decref(arr);
    }
    /* deeper than the writer goes: NULL (the caller then uses json_dumps, which writes it) */
    json_t *deep = json_array(), *cur = deep;
    for (int i = 0; i < 100; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    assert_null(util_json_text(deep, 0, NULL));
    char *text = json_dumps(deep, JSON_COMPACT);
    assert_non_null(text);
    assert_int_equal(strlen(text), 202);
    free(text);
    json_decref(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_find),
        cmocka_unit_test(test_head_cases),
        cmocka_unit_test(test_dispatch_auth),
        cmocka_unit_test(test_chunked_check),
        cmocka_unit_test(test_chunked_parse),
        cmocka_unit_test(test_chunked_resume),
        cmocka_unit_test(test_error_message_utf8),
        cmocka_unit_test(test_reply_error_mapping),
        cmocka_unit_test(test_ingest_parse),
        cmocka_unit_test(test_retrieve_body_errors),
        cmocka_unit_test(test_retrieve_query_errors),
        cmocka_unit_test(test_retrieve_k_and_score_errors),
        cmocka_unit_test(test_retrieve_filter_errors),
        cmocka_unit_test(test_retrieve_happy_path),
        cmocka_unit_test(test_retrieve_reply_text),
        cmocka_unit_test(test_json_text_as_jansson),
        cmocka_unit_test(test_json_text_refuses),
        cmocka_unit_test(test_retrieve_rag_disabled),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_root_and_unknown),
        cmocka_unit_test(test_chat_route),
        cmocka_unit_test(test_health_degraded),
        cmocka_unit_test(test_metrics_route),
        cmocka_unit_test(test_ingest_run),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
