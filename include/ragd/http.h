/* SPDX-License-Identifier: MIT */
/*
 * http.h - the HTTP API (ragd's own HTTP/1.1 engine), as the rest of ragd sees it: start and
 * stop the server (src/http_server.c), and the two renderings the CLI shares with the routes (the
 * /retrieve answer and the /context system prompt). The router, its table, the request and reply
 * types and the field specs are internal to the module: src/http_int.h.
 */
#ifndef RAGD_HTTP_H
#define RAGD_HTTP_H

#include <stddef.h>

#include <jansson.h>

#include "ragd/cfg.h"
#include "ragd/cfg_snapshot.h"
#include "ragd/engine.h"
#include "ragd/ragd.h"

/* ---- server ------------------------------------------------------------------------------- */
typedef struct http_server http_server;

/* Binds cfg->listen_host:cfg->listen_port and starts serving e (e, cfg and live borrowed until
 * stop). Each request runs under the snapshot of live current when it began (cfg_snapshot.h);
 * live may be NULL: then every request uses cfg. Returns: *out new (stop and free with
 * http_server_stop). */
ragd_rc http_server_start(engine *e, const ragd_cfg *cfg, cfg_live *live, http_server **out,
                          ragd_err *err);

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

/* ---- renderings shared with the CLI ------------------------------------------------------- */

/* The /retrieve response body for an answer (also `ragd query --json`). Returns: new reference. */
json_t *http_answer_json(const engine_query *q, const engine_answer *a);

/* The system prompt POST /context returns for an answer: the [prompt] template file (read at
 * each call; the built-in template when none is set) rendered with the persona, tools, context
 * and sources (no context when the answer is low_confidence). Returns: new string (free()), or
 * NULL with err set (RAGD_ERR_INTERNAL for an unreadable or malformed template). */
char *http_prompt_build(const ragd_cfg *cfg, const engine_query *q, const engine_answer *a,
                        ragd_err *err);

#endif
