/* SPDX-License-Identifier: MIT */
/*
 * http_int.h - declarations shared by the HTTP module's files: the ingest job table
 * (http_jobs.c), POST /ingest parsing with the allowed-roots check and its run (http_ingest.c),
 * the pushed-document routes (http_documents.c), and the bearer-token check. Not public.
 */
#ifndef RAGD_HTTP_INT_H
#define RAGD_HTTP_INT_H

#include <stddef.h>

#include "ragd/cfg.h"
#include "ragd/engine.h"
#include "ragd/http.h"

/* ---- jobs (src/http_jobs.c) ---------------------------------------------------------------- */
#define HTTP_JOB_ID_MAX 40

typedef struct http_jobs http_jobs;

/* Returns: a new empty table (free with http_jobs_free), or NULL on OOM. */
http_jobs *http_jobs_new(void);
void http_jobs_free(http_jobs *j);

/* Registers a running job. Fails with RAGD_ERR_BUSY when one is running, with its id in id.
 * Returns: RAGD_OK and the new job's id in id. */
ragd_rc http_jobs_start(http_jobs *j, const char *path, int reset, int wait,
                        char id[HTTP_JOB_ID_MAX], ragd_err *err);

/* Records progress / the final reply (its body is copied) of job id. */
void http_jobs_progress(http_jobs *j, const char *id, const engine_ingest_progress *p);
void http_jobs_finish(http_jobs *j, const char *id, const http_reply *reply);

/* Returns: the job as JSON (new reference), or NULL when there is no such job. */
json_t *http_jobs_json(http_jobs *j, const char *id);

/* Returns: the first key of obj that is not in allowed (NULL-terminated), borrowed from obj;
 * NULL when every key is allowed. */
const char *http_json_unknown_key(json_t *obj, const char *const *allowed);

/* ---- POST /ingest (src/http_ingest.c) ------------------------------------------------------- */
typedef struct http_ingest_req {
    char *path; /* the real path (inside an allowed root); owned */
    int reset;
    int wait;   /* default 1 */
    char **include; /* owned; NULL when the request gave none */
    size_t include_count;
    char **exclude;
    size_t exclude_count;
} http_ingest_req;

/* Parses and checks a POST /ingest body: fields, globs, and that the path resolves inside the
 * allowed roots (403 otherwise; 404 for a missing path inside them). Returns: 0 and *out (free
 * with http_ingest_req_free), or -1 with *reply set. */
int http_ingest_req_parse(const ragd_cfg *cfg, const char *body, size_t len, http_ingest_req *out,
                          http_reply *reply);
void http_ingest_req_free(http_ingest_req *r);

/* Runs the ingest of job job_id, recording its progress and result in jobs. */
http_reply http_ingest_req_run(engine *e, http_jobs *jobs, const char *job_id,
                               const http_ingest_req *r);

/* Returns: 1 if the Authorization header value carries cfg's bearer token (constant-time
 * compare), or no token is configured; 0 otherwise. header may be NULL. */
int http_auth_ok(const ragd_cfg *cfg, const char *header);

/* ---- pushed documents (src/http_documents.c) ------------------------------------------------ */

/* Handles POST/GET /documents and GET/DELETE /documents/{id}. url is the path (no query);
 * offset and limit are the query arguments (may be NULL). */
http_reply http_documents_handle(engine *e, const ragd_cfg *cfg, const char *method,
                                 const char *url, const char *offset, const char *limit,
                                 const char *body, size_t len);

/* ---- reranking in answers and /health (src/http_rerank.c) --------------------------------- */
/* Adds "rerank" (requested, applied, provider..., fallback, error, ms, candidates, cache_hits) to
 * the answer object o, and "rerank_score" (null when not reranked) to each of results' items. */
void http_rerank_answer(const engine_answer *a, json_t *results, json_t *o);
/* Adds "reranker" (provider, model, calls, failures, timeouts, cache, tokens, spend, last call)
 * to a /health body. */
void http_rerank_health(const engine_stats *s, json_t *body);

#endif
