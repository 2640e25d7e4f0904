/* SPDX-License-Identifier: MIT */
/*
 * chat_int.h - declarations private to the chat module: the upstream HTTP client
 * (src/chat_upstream.c) that src/http_chat.c drives. Not a public contract.
 */
#ifndef RAGD_CHAT_INT_H
#define RAGD_CHAT_INT_H

#include <stddef.h>

#include "ragd/chat.h"
#include "ragd/ragd.h"
#include "ragd/util.h"

typedef struct chat_upstream_req {
    const char *url;      /* {base_url}/chat/completions; borrowed */
    const char *api_key;  /* may be NULL or ""; borrowed; only ever sent in Authorization */
    const char *body;     /* the JSON body; borrowed */
    size_t body_len;
    int stream;           /* 1: a 2xx answer is read as server-sent events */
    long connect_timeout_ms, timeout_ms;
    int max_retries;
    double retry_budget_ms;
    /* Streaming: on_start is called once when a 2xx stream begins (no retry after it); on_event
     * with each event's data (borrowed for the call). Returning non-zero aborts the transfer. */
    int (*on_start)(void *ctx);
    int (*on_event)(void *ctx, const char *data, size_t len);
    /* Polled during the transfer and the pauses between attempts; 1 aborts. May be NULL. */
    int (*cancelled)(void *ctx);
    void *ctx;
} chat_upstream_req;

typedef struct chat_upstream_result {
    long status;          /* HTTP status of the last attempt; 0 when none answered */
    util_buf body;        /* the answer (whole requests) or the error body; owned */
    int started;          /* a stream began: events went to on_event */
    int cancelled;        /* the caller cancelled */
    int network;          /* the last attempt failed below HTTP (connect, timeout, reset) */
    int attempts;
    double first_event_ms; /* from the last attempt's start to its first event; -1: none */
    double total_ms;
    char message[400], code[64], type[64]; /* from an OpenAI-shaped error body */
} chat_upstream_result;

/* Sends one chat-completions request, retrying before the first byte went out. Returns:
 * RAGD_OK for a 2xx answer (whole in res->body, or streamed to on_event); RAGD_ERR_UPSTREAM_REFUSED
 * for an HTTP error (res->status and the error fields set) or a connection failure
 * (res->network); RAGD_ERR_TIMEOUT; RAGD_ERR_UNAVAILABLE when cancelled. res is always filled:
 * free with chat_upstream_result_free. */
ragd_rc chat_upstream_call(const chat_upstream_req *req, chat_upstream_result *res,
                           ragd_err *err);
void chat_upstream_result_free(chat_upstream_result *res);

#endif
