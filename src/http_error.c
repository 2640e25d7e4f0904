/* SPDX-License-Identifier: MIT */
/*
 * http_error.c - the API's one vocabulary of error codes: the table below maps each ragd_rc to
 * its HTTP status and error.code, and lists the HTTP-only codes (framing, method, JSON syntax)
 * with theirs. Every error body is built here, {"error": {"code", "message"}}, with the message
 * made valid UTF-8 whatever bytes it echoes (a URL, a method, a field name), so an error reply can
 * never fail to build.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "http_int.h"
#include "ragd/log.h"
#include "ragd/log_event.h"
#include "ragd/util.h"

#define MESSAGE_MAX 1024

/* The one table. Rows with rc RAGD_OK are HTTP-level conditions with no ragd_rc of their own,
 * used through code_override. */
static const struct {
    ragd_rc rc;
    unsigned status;
    const char *code;
} error_table[] = {
    {RAGD_ERR_INVALID, 400, "invalid_request"},
    {RAGD_ERR_UNSUPPORTED, 400, "unsupported"},
    {RAGD_ERR_UNAUTHORIZED, 401, "unauthorized"},
    {RAGD_ERR_FORBIDDEN, 403, "forbidden"},
    {RAGD_ERR_NOT_FOUND, 404, "not_found"},
    {RAGD_ERR_BUSY, 409, "busy"},
    {RAGD_ERR_LOCKED, 409, "locked"},
    {RAGD_ERR_MODEL_MISMATCH, 409, "model_mismatch"},
    {RAGD_ERR_TOO_LARGE, 413, "payload_too_large"},
    {RAGD_ERR_EMBED, 502, "embed_error"},
    {RAGD_ERR_UPSTREAM_REFUSED, 502, "upstream_refused"},
    {RAGD_ERR_TIMEOUT, 504, "timeout"},
    {RAGD_ERR_DISABLED, 503, "disabled"},
    {RAGD_ERR_UNAVAILABLE, 503, "unavailable"},
    /* HTTP-only */
    {RAGD_OK, 400, "invalid_json"},
    {RAGD_OK, 400, "bad_request"},          /* malformed request line, headers or framing */
    {RAGD_OK, 405, "method_not_allowed"},
    {RAGD_OK, 408, "request_timeout"},      /* [server] request_timeout passed for the head */
    {RAGD_OK, 413, "payload_too_large"},
    {RAGD_OK, 414, "uri_too_long"},
    {RAGD_OK, 431, "headers_too_large"},
    {RAGD_OK, 503, "too_many_connections"}, /* [server] max_connections / max_connections_per_ip */
    {RAGD_OK, 400, "http_version_not_supported"}, /* client input: 400, not 505 */
    /* POST /v1/chat/completions (src/http_chat.c); the upstream's own errors keep its status */
    {RAGD_OK, 400, "tool_not_allowed"},     /* a tool outside [prompt] tools offered */
    {RAGD_OK, 502, "upstream_unavailable"}, /* the chat upstream could not be reached */
    {RAGD_OK, 502, "bad_upstream_reply"},   /* its answer is not a chat completion */
    {RAGD_OK, 504, "upstream_timeout"},     /* no answer within [chat] timeout */
    {RAGD_OK, 499, "client_closed"},        /* the client went away (never seen by it) */
};

/* Returns: the table row of code, or -1. */
static int code_row(const char *code)
{
    for (size_t i = 0; code && i < sizeof error_table / sizeof error_table[0]; i++)
        if (strcmp(error_table[i].code, code) == 0) return (int)i;
    return -1;
}

unsigned http_error_status(const char *code)
{
    int i = code_row(code);
    return i < 0 ? 400 : error_table[i].status;
}

http_reply http_reply_error(ragd_rc rc, const char *code_override, const char *message)
{
    unsigned status = 500;
    const char *code = "internal";
    for (size_t i = 0; i < sizeof error_table / sizeof error_table[0]; i++) {
        if (error_table[i].rc == rc && rc != RAGD_OK) {
            status = error_table[i].status;
            code = error_table[i].code;
            break;
        }
    }
    if (code_override) { /* the code's own status; an unlisted code keeps the rc's */
        int i = code_row(code_override);
        code = code_override;
        if (i >= 0) status = error_table[i].status;
    }
    char text[MESSAGE_MAX];
    util_utf8_clip(text, sizeof text, message ? message : "", message ? strlen(message) : 0);
    http_reply r = {.status = status};
    r.body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", text);
    if (status >= 500 && strcmp(code, "too_many_connections") != 0)
        RAGD_LOG(RAGD_LOG_ERROR, "http", "%u %s: %s request_id=%s", status, code, text,
                 log_record_request_id());
    return r;
}

http_reply http_reply_errorf(ragd_rc rc, const char *code_override, const char *fmt, ...)
{
    char msg[MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return http_reply_error(rc, code_override, msg);
}
