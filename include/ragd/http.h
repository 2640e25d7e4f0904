/* SPDX-License-Identifier: MIT */
/*
 * http.h - the HTTP API over libmicrohttpd: the server (src/http_server.c: thread pool, bodies,
 * limits, suspended connections for long ingests, shutdown) and the routes (src/http_routes.c:
 * request validation, JSON responses, the one ragd_rc -> HTTP status mapping).
 */
#ifndef RAGD_HTTP_H
#define RAGD_HTTP_H

#include <stddef.h>

#include <jansson.h>

#include "ragd/cfg.h"
#include "ragd/engine.h"
#include "ragd/ragd.h"

/* ---- server ------------------------------------------------------------------------------- */
typedef struct http_server http_server;

/* Binds cfg->listen_host:cfg->listen_port and starts serving e (both borrowed until stop).
 * Returns: *out new (stop and free with http_server_stop). */
ragd_rc http_server_start(engine *e, const ragd_cfg *cfg, http_server **out, ragd_err *err);

/* Stops accepting (new connections are refused, new requests on open connections get 503),
 * interrupts a running ingest between documents, waits for requests in flight up to
 * [server] shutdown_timeout seconds, then closes what is left and frees s. s may be NULL.
 * Returns: 0 when everything in flight finished; 1 when the deadline passed and the requests
 * left were closed; -1 when it passed with the ingest worker still inside a document: then s is
 * NOT freed (the worker still uses it and the engine) and the caller should exit at once. */
int http_server_stop(http_server *s);

/* Runs an ingest of path that did not come over HTTP (serve's start-up ingest) as an ingest job
 * of s, in the calling thread: a POST /ingest meanwhile gets 409 with this job's job_id, GET
 * /jobs/{id} follows it, and shutdown drains it like any job. Blocks until it is done.
 * Returns: RAGD_OK; RAGD_ERR_BUSY when another job runs (nothing done); RAGD_ERR_UNAVAILABLE
 * when s is stopping; else RAGD_ERR_IO with the ingest's message (GET /jobs/{id} has its code). */
ragd_rc http_server_ingest_job(http_server *s, const char *path, ragd_err *err);

/* ---- routes ------------------------------------------------------------------------------- */
typedef struct http_reply {
    unsigned status;
    json_t *body;      /* new reference, owned by the reply */
    const char *allow; /* static; set for 405 */
    char *text;               /* instead of body: a text body, owned (free()); e.g. /metrics */
    const char *content_type; /* static; the text body's type */
} http_reply;

typedef enum http_route {
    RAGD_ROUTE_NONE = 0, /* unknown path: 404 */
    RAGD_ROUTE_ROOT,
    RAGD_ROUTE_HEALTH,
    RAGD_ROUTE_RETRIEVE,
    RAGD_ROUTE_INGEST,
    RAGD_ROUTE_METRICS,
    RAGD_ROUTE_DOCUMENTS, /* GET, POST /documents */
    RAGD_ROUTE_DOCUMENT,  /* GET, DELETE /documents/{id} */
    RAGD_ROUTE_JOB,       /* GET /jobs/{id} */
    RAGD_ROUTE_CONTEXT    /* POST /context */
} http_route;

/* Maps a path to a route and checks the method. Returns: the route; *allow is set (static) and
 * *method_ok 0 when the path exists but not for this method. */
http_route http_route_find(const char *method, const char *url, const char **allow,
                           int *method_ok);

/* Returns: the route's name for logs and metrics ("/retrieve"); static. */
const char *http_route_name(http_route route);

/* Handles GET /, GET /health, POST /retrieve and POST /context synchronously. body may be
 * NULL. */
http_reply http_route_handle(engine *e, const ragd_cfg *cfg, http_route route, const char *body,
                             size_t len);


/* The /retrieve response body for an answer (also `ragd query --json`). Returns: new reference. */
json_t *http_answer_json(const engine_query *q, const engine_answer *a);

/* The system prompt POST /context returns for an answer: the [prompt] template file (read at
 * each call; the built-in template when none is set) rendered with the persona, tools, context
 * and sources (no context when the answer is low_confidence). Returns: new string (free()), or
 * NULL with err set (RAGD_ERR_INTERNAL for an unreadable or malformed template). */
char *http_prompt_build(const ragd_cfg *cfg, const engine_query *q, const engine_answer *a,
                        ragd_err *err);

/* Builds an error reply {"error": {"code", "message"}} for rc: the one place where ragd_rc
 * becomes an HTTP status. code_override may be NULL. */
http_reply http_reply_error(ragd_rc rc, const char *code_override, const char *message);

#endif
