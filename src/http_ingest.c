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
    if (!inside) {
        char msg[600];
        snprintf(msg, sizeof msg, "path %.300s is outside the allowed ingest roots "
                 "([ingest] allowed_roots / RAGD_INGEST_ALLOWED_ROOTS)", path);
        *reply = http_reply_error(RAGD_ERR_FORBIDDEN, NULL, msg);
        free(real);
        free(lexical);
        return -1;
    }
    free(lexical);
    if (real == NULL) {
        char msg[400];
        snprintf(msg, sizeof msg, "path not found: %.300s", path);
        *reply = http_reply_error(RAGD_ERR_NOT_FOUND, NULL, msg);
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
    memset(r, 0, sizeof *r);
}

static http_reply invalid(const char *msg)
{
    return http_reply_error(RAGD_ERR_INVALID, NULL, msg);
}

/* Reads a glob list field. Returns: 0 (absent fields leave *list NULL), or -1 with *reply. */
static int globs_get(json_t *root, const char *name, char ***list, size_t *count,
                     http_reply *reply)
{
    json_t *v = json_object_get(root, name);
    if (v == NULL) return 0;
    char msg[200];
    if (!json_is_array(v) || json_array_size(v) > GLOBS_MAX) {
        snprintf(msg, sizeof msg, "field '%s' must be an array of at most %d glob strings", name,
                 GLOBS_MAX);
        *reply = invalid(msg);
        return -1;
    }
    *list = calloc(json_array_size(v) + 1, sizeof **list);
    if (*list == NULL) {
        *reply = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
        return -1;
    }
    size_t i;
    json_t *g;
    json_array_foreach(v, i, g) {
        if (!json_is_string(g) || !ingest_glob_valid(json_string_value(g))) {
            snprintf(msg, sizeof msg, "field '%s[%zu]' must be a non-empty glob of at most 256 "
                     "bytes", name, i);
            *reply = invalid(msg);
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
    static const char *const fields[] = {"path", "reset", "wait", "include", "exclude", NULL};
    http_ingest_req r = {.wait = 1};
    if (body == NULL || len == 0) {
        *reply = http_reply_error(RAGD_ERR_INVALID, "invalid_json",
                                  "request body is empty; expected a JSON object");
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        char msg[300];
        snprintf(msg, sizeof msg, "malformed JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        *reply = http_reply_error(RAGD_ERR_INVALID, "invalid_json", msg);
        return -1;
    }
    int rc = -1;
    if (!json_is_object(root)) {
        *reply = invalid("request body must be a JSON object");
        goto out;
    }
    const char *key = http_json_unknown_key(root, fields);
    if (key != NULL) {
        char msg[300];
        snprintf(msg, sizeof msg, "unknown field '%.64s' in the request; known fields: path, "
                 "reset, wait, include, exclude", key);
        *reply = invalid(msg);
        goto out;
    }
    json_t *p = json_object_get(root, "path");
    if (p == NULL || !json_is_string(p) || json_string_length(p) == 0) {
        *reply = invalid("field 'path' is required: a non-empty string (a file or directory)");
        goto out;
    }
    json_t *reset = json_object_get(root, "reset");
    json_t *wait = json_object_get(root, "wait");
    if ((reset && !json_is_boolean(reset)) || (wait && !json_is_boolean(wait))) {
        *reply = invalid(reset && !json_is_boolean(reset) ? "field 'reset' must be true or false"
                                                          : "field 'wait' must be true or false");
        goto out;
    }
    r.reset = reset && json_is_true(reset);
    r.wait = wait == NULL || json_is_true(wait);
    if (globs_get(root, "include", &r.include, &r.include_count, reply) != 0 ||
        globs_get(root, "exclude", &r.exclude, &r.exclude_count, reply) != 0)
        goto out;
    if (path_allowed(cfg, json_string_value(p), &r.path, reply) != 0) {
        /* A path that vanished or is refused is a failed ingest for the operator (a cron line
         * gone stale shows in /health and the log), though nothing was opened. */
        ragd_err perr = {0};
        json_t *e = json_object_get(reply->body, "error");
        ragd_err_set(&perr, reply->status == 404 ? RAGD_ERR_NOT_FOUND : RAGD_ERR_FORBIDDEN, "%s",
                     json_string_value(json_object_get(e, "message")));
        log_record_ingest(json_string_value(p), NULL, &perr);
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
