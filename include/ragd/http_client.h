/* SPDX-License-Identifier: MIT */
/*
 * http_client.h - the one small HTTP client the CLI uses to talk to a running daemon (`ragd
 * health`, `ragd ingest` forwarded to the daemon that holds the data dir, `ragd eval --url`):
 * JSON requests over libcurl with the configured bearer token, a kept-alive connection, and the
 * daemon's JSON error message surfaced.
 */
#ifndef RAGD_HTTP_CLIENT_H
#define RAGD_HTTP_CLIENT_H

#include <stddef.h>

#include <jansson.h>

#include "ragd/ragd.h"

typedef struct http_client http_client;

/* A client for base_url ("http://127.0.0.1:8088", no trailing path needed; a trailing slash is
 * dropped). token: the bearer token sent on every request, NULL or "" for none (copied).
 * timeout_s: the whole-request timeout (0: none). Returns: new (free with http_client_free), or
 * NULL on OOM. */
http_client *http_client_new(const char *base_url, const char *token, long timeout_s);
void http_client_free(http_client *c);

/* Returns: the base URL of a listen address (an IPv6 host gets brackets) in buf; buf. */
char *http_client_url_of_listen(const char *host, int port, char *buf, size_t size);

/* Sends method base_url+path with body (a JSON text, may be NULL). On an answer of any status:
 * RAGD_OK, *status, *reply (new reference, NULL when the answer is not JSON) and, when raw is not
 * NULL, the body text (new string, free()). When the daemon cannot be reached: RAGD_ERR_IO with
 * err naming the URL. */
ragd_rc http_client_call(http_client *c, const char *method, const char *path, const char *body,
                         long *status, json_t **reply, char **raw, ragd_err *err);

/* Returns: the "error.message" of an error reply, or fallback; borrowed from reply. */
const char *http_client_error_message(json_t *reply, const char *fallback);

#endif
