/* SPDX-License-Identifier: MIT */
/*
 * http_ingest.c - POST /ingest: the request fields (path, reset, wait, include, exclude), the
 * safety check that a requested path resolves (realpath, symlinks followed) inside one of the
 * allowed roots ([ingest] allowed_roots, default the configured ingest paths; 403 otherwise, so
 * neither "..", absolute paths elsewhere nor symlinks can lead ragd outside them), the run of one
 * ingest as a job, and the bearer-token check every endpoint but /health goes through.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http_int.h"
#include "ragd/ingest.h"
#include "ragd/log.h"
#include "ragd/log_event.h"
#include "ragd/util.h"

#define GLOBS_MAX 64

/* ---- auth --------------------------------------------------------------------------------- */

int http_auth_ok(const ragd_cfg *cfg, const char *header)
{
    if (cfg->auth_token == NULL || cfg->auth_token[0] == '\0') return 1;
    /* the scheme name is case-insensitive (RFC 9110) */
    if (header == NULL || strncasecmp(header, "Bearer ", 7) != 0) return 0;
    const char *given = header + 7;
    while (*given == ' ') given++;
    /* Compare digests: constant time whatever the lengths and contents. */
    char a[UTIL_SHA256_HEX_LEN + 1], b[UTIL_SHA256_HEX_LEN + 1];
    util_sha256_hex(given, strlen(given), a);
    util_sha256_hex(cfg->auth_token, strlen(cfg->auth_token), b);
    unsigned char diff = 0;
    for (size_t i = 0; i < UTIL_SHA256_HEX_LEN; i++) diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

/* ---- allowed roots ------------------------------------------------------------------------ */

/* Returns: new absolute, lexically normalised ("." and ".." resolved without following links)
 * form of path, or NULL on OOM / when the working directory is unknown. */
static char *lexical_abs(const char *path)
{
    char cwd[PATH_MAX];
    util_buf in = {0}, out = {0};
    if (path[0] != '/') {
        if (getcwd(cwd, sizeof cwd) == NULL) return NULL;
        util_buf_printf(&in, "%s/", cwd);
    }
    util_buf_puts(&in, path);
    if (in.data == NULL) return NULL;
    for (char *p = in.data; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.')) {
            /* skip */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            char *slash = out.data ? strrchr(out.data, '/') : NULL;
            if (slash) {
                *slash = '\0';
                out.len = (size_t)(slash - out.data);
            }
        } else {
            util_buf_append(&out, "/", 1);
            util_buf_append(&out, p, n);
        }
        p += n;
        while (*p == '/') p++;
    }
    util_buf_free(&in);
    if (out.data == NULL || out.len == 0) {
        util_buf_free(&out);
        return strdup("/");
    }
    return util_buf_steal(&out);
}

/* Returns: new path for the roots check of a path that does not exist: its deepest existing
 * ancestor resolved with realpath (symlinks followed), then the rest as written; so a missing
 * path behind a symlink that leaves the roots is refused like an existing one. NULL on OOM. */
static char *missing_resolved(const char *path)
{
    char *lex = lexical_abs(path);
    if (lex == NULL) return NULL;
    size_t keep = strlen(lex);
    char *out = NULL;
    while (out == NULL && keep > 0) {
        while (keep > 1 && lex[keep - 1] != '/') keep--; /* back to the previous separator */
        size_t dir_len = keep > 1 ? keep - 1 : 1;       /* "/a/b/" -> "/a/b"; "/" stays */
        char *dir = util_strndup(lex, dir_len);
        char *real = dir ? realpath(dir, NULL) : NULL;
        free(dir);
        if (real != NULL) {
            util_buf b = {0};
            util_buf_printf(&b, "%s%s%s", real, strcmp(real, "/") == 0 ? "" : "/",
                            lex + (dir_len == 1 ? 1 : dir_len + 1));
            free(real);
            out = util_buf_steal(&b);
            break;
        }
        if (dir_len == 1) break;
        keep = dir_len;
    }
    free(lex);
    return out;
}

static int path_inside(const char *p, const char *root)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') return 1;
    return strncmp(p, root, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* Checks path against the allowed roots. Returns: 0 and *resolved (new), or -1 with *reply. */
static int path_allowed(const ragd_cfg *cfg, const char *path, char **resolved, http_reply *reply)
{
    char *const *roots = cfg->ingest_allowed_root_count ? cfg->ingest_allowed_roots
                                                        : cfg->ingest_paths;
    size_t nroots = cfg->ingest_allowed_root_count ? cfg->ingest_allowed_root_count
                                                   : cfg->ingest_path_count;
    char *real = realpath(path, NULL);
    char *lexical = real ? NULL : missing_resolved(path);
    int inside = 0;
    for (size_t i = 0; i < nroots && !inside; i++) {
        char *root = realpath(roots[i], NULL);
        if (root == NULL) continue; /* a root that does not exist allows nothing */
        inside = path_inside(real ? real : lexical ? lexical : "", root);
        free(root);
    }
    char shown[320];
    util_utf8_clip(shown, sizeof shown, path, strlen(path));
    if (!inside) {
        *reply = http_reply_errorf(RAGD_ERR_FORBIDDEN, NULL, "path %s is outside the allowed "
                                   "ingest roots ([ingest] allowed_roots / "
                                   "RAGD_INGEST_ALLOWED_ROOTS)", shown);
        free(real);
        free(lexical);
        return -1;
    }
    free(lexical);
    if (real == NULL) {
        *reply = http_reply_errorf(RAGD_ERR_NOT_FOUND, NULL, "path not found: %s", shown);
        return -1;
    }
    *resolved = real;
    return 0;
}

/* ---- request ------------------------------------------------------------------------------ */

void http_ingest_req_free(http_ingest_req *r)
{
    if (r == NULL) return;
    free(r->path);
    for (size_t i = 0; i < r->include_count; i++) free(r->include[i]);
    for (size_t i = 0; i < r->exclude_count; i++) free(r->exclude[i]);
    free(r->include);
    free(r->exclude);
    free(r->collection);
    memset(r, 0, sizeof *r);
}

static const http_field ingest_fields[] = {
    {"path", HTTP_FIELD_STRING, HTTP_FIELD_REQUIRED, 1, 4096, NULL, NULL},
    {"reset", HTTP_FIELD_BOOL, 0, 0, 0, NULL, NULL},
    {"wait", HTTP_FIELD_BOOL, 0, 0, 0, NULL, NULL},
    {"include", HTTP_FIELD_STRINGS, 0, 0, GLOBS_MAX, NULL, NULL},
    {"exclude", HTTP_FIELD_STRINGS, 0, 0, GLOBS_MAX, NULL, NULL},
    {"collection", HTTP_FIELD_STRING, 0, 0, 0, NULL, NULL},
};

/* Copies a glob list field (already checked as an array of strings). Returns: 0 (absent fields
 * leave *list NULL), or -1 with *reply. */
static int globs_get(json_t *root, const char *name, char ***list, size_t *count,
                     http_reply *reply)
{
    json_t *v = json_object_get(root, name);
    if (v == NULL) return 0;
    *list = calloc(json_array_size(v) + 1, sizeof **list);
    if (*list == NULL) {
        *reply = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
        return -1;
    }
    size_t i;
    json_t *g;
    json_array_foreach(v, i, g) {
        if (!ingest_glob_valid(json_string_value(g))) {
            *reply = http_reply_errorf(RAGD_ERR_INVALID, NULL, "field '%s[%zu]' must be a "
                                       "non-empty glob of at most 256 bytes", name, i);
            return -1;
        }
        if (((*list)[i] = strdup(json_string_value(g))) == NULL) {
            *reply = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
            return -1;
        }
        (*count)++;
    }
    return 0;
}

int http_ingest_req_parse(const ragd_cfg *cfg, const char *body, size_t len, http_ingest_req *out,
                          http_reply *reply)
{
    http_ingest_req r = {.wait = 1};
    json_t *root = http_body_object(body, len, reply);
    if (root == NULL) return -1;
    int rc = -1;
    if (http_fields_check(root, ingest_fields, sizeof ingest_fields / sizeof ingest_fields[0],
                          "", cfg, reply) != 0)
        goto out;
    json_t *p = json_object_get(root, "path");
    if (strlen(json_string_value(p)) != json_string_length(p)) {
        *reply = http_reply_error(RAGD_ERR_INVALID, NULL, "field 'path' must not contain NUL");
        goto out;
    }
    json_t *coll = json_object_get(root, "collection");
    if (coll != NULL && !http_collection_json_ok(coll)) {
        *reply = http_reply_errorf(RAGD_ERR_INVALID, NULL, "field 'collection': %s",
                                   HTTP_COLLECTION_RULE);
        goto out;
    }
    if (coll != NULL && (r.collection = strdup(json_string_value(coll))) == NULL) {
        *reply = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
        goto out;
    }
    json_t *wait = json_object_get(root, "wait");
    r.reset = json_is_true(json_object_get(root, "reset"));
    r.max_file_bytes = cfg->max_file_bytes;
    r.wait = wait == NULL || json_is_true(wait);
    if (globs_get(root, "include", &r.include, &r.include_count, reply) != 0 ||
        globs_get(root, "exclude", &r.exclude, &r.exclude_count, reply) != 0)
        goto out;
    if (path_allowed(cfg, json_string_value(p), &r.path, reply) != 0) {
        /* A refused request is not an ingest: nothing was opened, the last ingest's state (and
         * /health) stays as it was. The operator still sees it in the log. */
        RAGD_LOG(RAGD_LOG_INFO, "http", "ingest refused (%u): %s", reply->status,
                 json_string_value(json_object_get(json_object_get(reply->body, "error"),
                                                   "message")));
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    if (rc == 0)
        *out = r;
    else
        http_ingest_req_free(&r);
    return rc;
}

/* ---- run ---------------------------------------------------------------------------------- */

typedef struct progress_ctx {
    http_jobs *jobs;
    const char *id;
} progress_ctx;

static void on_progress(void *ctx, const engine_ingest_progress *p)
{
    progress_ctx *c = ctx;
    http_jobs_progress(c->jobs, c->id, p);
}

http_reply http_ingest_req_run(engine *e, http_jobs *jobs, const char *job_id,
                               const http_ingest_req *r)
{
    progress_ctx pc = {jobs, job_id};
    engine_ingest_opts o = {.path = r->path,
                            .reset = r->reset,
                            .include = (const char *const *)r->include,
                            .include_count = r->include_count,
                            .exclude = (const char *const *)r->exclude,
                            .exclude_count = r->exclude_count,
                            .progress2 = on_progress,
                            .progress_ctx = &pc,
                            .max_file_bytes = r->max_file_bytes,
                            .collection = r->collection,
                            .path_canonical = 1};
    engine_ingest_report report;
    ragd_err err = {0};
    http_reply reply;
    if (engine_ingest_run(e, &o, &report, &err) != RAGD_OK) {
        /* A refused start (another ingest runs) is not an ingest of its own. */
        if (err.rc != RAGD_ERR_BUSY) log_record_ingest(r->path, NULL, &err);
        reply = http_reply_error(err.rc, NULL, err.msg);
    } else {
        log_record_ingest(r->path, &report, NULL);
        char *text = engine_ingest_report_json(&report);
        engine_ingest_report_free(&report);
        reply = (http_reply){.status = 200};
        reply.body = text ? json_loads(text, 0, NULL) : NULL;
        free(text);
        if (reply.body == NULL) reply = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
        else json_object_set_new(reply.body, "job_id", json_string(job_id));
    }
    http_jobs_finish(jobs, job_id, &reply);
    return reply;
}

/* ---- the route: POST /ingest -------------------------------------------------------------- */

/* An ingest handed to a worker thread: owns its request. */
typedef struct ingest_task {
    engine *engine;
    http_jobs *jobs;
    http_ingest_req ingest;
    char job_id[HTTP_JOB_ID_MAX];
    char request_id[RAGD_REQUEST_ID_MAX];
} ingest_task;

static http_reply ingest_task_run(void *arg)
{
    ingest_task *t = arg;
    log_record_request_id_set(t->request_id);
    http_reply reply = http_ingest_req_run(t->engine, t->jobs, t->job_id, &t->ingest);
    log_record_request_id_set(NULL);
    http_ingest_req_free(&t->ingest);
    free(t);
    return reply;
}

static void ingest_task_drop(void *arg, const http_reply *why)
{
    ingest_task *t = arg;
    http_jobs_finish(t->jobs, t->job_id, why);
    http_ingest_req_free(&t->ingest);
    free(t);
}

http_reply http_handle_ingest(const http_request *req)
{
    http_reply r = {0};
    if (req->jobs == NULL)
        return http_reply_error(RAGD_ERR_UNAVAILABLE, NULL, "ingest jobs are not available here");
    ingest_task *t = calloc(1, sizeof *t);
    if (t == NULL) return http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
    if (http_ingest_req_parse(req->cfg, req->body, req->body_len, &t->ingest, &r) != 0) {
        free(t);
        return r;
    }
    ragd_err jerr = {0};
    if (http_jobs_start(req->jobs, t->ingest.path, t->ingest.reset, t->ingest.wait, t->job_id,
                        &jerr) != RAGD_OK) {
        r = http_reply_error(jerr.rc, NULL, jerr.msg);
        if (jerr.rc == RAGD_ERR_BUSY)
            json_object_set_new(json_object_get(r.body, "error"), "job_id",
                                json_string(t->job_id));
        http_ingest_req_free(&t->ingest);
        free(t);
        return r;
    }
    t->engine = req->engine;
    t->jobs = req->jobs;
    snprintf(t->request_id, sizeof t->request_id, "%s", req->request_id ? req->request_id : "");
    if (!t->ingest.wait) { /* answered at once; GET /jobs/{id} follows it */
        char status_url[HTTP_JOB_ID_MAX + 8];
        snprintf(status_url, sizeof status_url, "/jobs/%s", t->job_id);
        r = (http_reply){.status = 202, .task_detached = 1};
        r.body = json_pack("{s:s, s:s, s:s}", "job_id", t->job_id, "state", "running",
                           "status_url", status_url);
    }
    r.task_run = ingest_task_run;
    r.task_drop = ingest_task_drop;
    r.task_arg = t;
    return r;
}
