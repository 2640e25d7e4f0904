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

/* ---- the chat endpoint (src/http_chat.c) --------------------------------------------------- */
struct MHD_Connection;
struct MHD_Response;
typedef struct http_chat http_chat;

/* Counts a worker thread of s that uses the engine (the shutdown waits for it).
 * Returns: 0, or -1 when the server is stopping (nothing counted). */
int http_server_worker_enter(http_server *s);
void http_server_worker_leave(http_server *s);

/* Begins POST /v1/chat/completions on conn (inside the access handler). Returns: 1 with *out
 * set (the connection is suspended; the turn's worker resumes it: then call http_chat_poll),
 * or 0 with *reply set (answer at once: a bad request, or no thread). */
int http_chat_begin(http_server *s, engine *e, const ragd_cfg *cfg, struct MHD_Connection *conn,
                    const char *body, size_t len, const char *request_id, http_chat **out,
                    http_reply *reply);

/* Called when the access handler runs again for a chat request. Returns: 0 when nothing is
 * ready (return MHD_YES), 1 with *reply set (send it), 2 with *response set (queue it with
 * status 200, then destroy it: a server-sent events stream). */
int http_chat_poll(http_chat *c, http_reply *reply, struct MHD_Response **response);

/* The request is over (completed, or the client went away): drops its reference, cancels the
 * upstream call when the answer was not finished. c may be NULL. */
void http_chat_release(http_chat *c);

#endif
