/* SPDX-License-Identifier: MIT */
/*
 * http_chat.c - POST /v1/chat/completions on the connection engine. The body is checked at once
 * (a bad request gets its 400 without a thread); then a thread of its own runs the turn
 * (src/chat.c: retrieval, budget, prompt; src/chat_upstream.c: the upstream call), so a slow
 * upstream never holds a worker of the pool. A whole answer is sent as a JSON reply. A streamed
 * answer becomes a 200 server-sent events stream once the upstream's stream has begun (an
 * upstream error before that is still a JSON error with the upstream's status); each filtered
 * event is handed to the engine as it comes (src/http_front.c writes it as a chunk). The client
 * going away (its connection reset or failed; one that only shut its sending side still gets
 * the answer) cancels the upstream request.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_int.h"
#include "http_int.h"
#include "ragd/chat.h"
#include "ragd/log.h"
#include "ragd/log_event.h"
#include "ragd/metrics.h"
#include "ragd/util.h"

struct http_chat {
    http_server *server;    /* borrowed */
    engine *engine;         /* borrowed */
    const ragd_cfg *cfg;    /* borrowed (the exchange's snapshot) */
    http_exchange *x;       /* a reference, once started */
    char request_id[RAGD_REQUEST_ID_MAX];
    chat_request req;
    chat_plan plan;
    double t0;
};

static void chat_free(http_chat *c)
{
    chat_request_free(&c->req);
    chat_plan_free(&c->plan);
    free(c);
}

/* An OpenAI-shaped error reply: ragd's {"error": {"code", "message"}} (status and code from
 * src/http_error.c's table) plus OpenAI's "type" and "param", so both kinds of client read it. */
static http_reply error_reply(ragd_rc rc, const char *code, const char *type,
                              const char *message)
{
    http_reply r = http_reply_error(rc, code, message);
    json_t *e = json_object_get(r.body, "error");
    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "param", json_null());
    return r;
}

/* The reply for a failed upstream call: the upstream's own status and error for an HTTP error,
 * 504 for a timeout, 502 when it could not be reached or answered nonsense. */
static http_reply upstream_error_reply(const chat_upstream_result *res, ragd_rc rc,
                                       const char *msg)
{
    if (rc == RAGD_ERR_TIMEOUT)
        return error_reply(rc, "upstream_timeout", "upstream_error", msg);
    if (res->network || res->status == 0)
        return error_reply(rc, "upstream_unavailable", "upstream_error", msg);
    /* The upstream's HTTP error goes on as it said it: its status, code, type and message. */
    http_reply r = error_reply(rc, NULL, res->type[0] ? res->type : "upstream_error",
                               res->message[0] ? res->message : msg);
    if (res->status >= 400 && res->status <= 599) r.status = (unsigned)res->status;
    json_object_set_new(json_object_get(r.body, "error"), "code",
                        json_string(res->code[0] ? res->code : "upstream_error"));
    return r;
}

/* Sends the turn's reply. */
static void reply_ready(http_chat *c, http_reply r)
{
    http_server_reply(c->x, &r);
}

/* Queues SSE bytes for the client. Returns: 0, or -1 when the client is gone. */
static int queue_push(http_chat *c, const char *data, size_t len, int last)
{
    return http_exchange_stream_write(c->x, data, len, last);
}

/* ---- the upstream's callbacks (worker thread) --------------------------------------------- */

typedef struct stream_ctx {
    http_chat *chat;
    chat_stream stream;
    util_buf out;
} stream_ctx;

static int on_cancelled(void *ctx)
{
    return http_exchange_client_gone(((stream_ctx *)ctx)->chat->x);
}

/* Begins the 200 stream. Returns: 0, or -1 when the client is gone. */
static int stream_begin(http_chat *c)
{
    if (http_exchange_stream_begin(c->x, "text/event-stream") != 0) return -1;
    metrics_http_request_add("/v1/chat/completions", 200);
    return 0;
}

static int on_start(void *ctx)
{
    return stream_begin(((stream_ctx *)ctx)->chat);
}

static int on_event(void *ctx, const char *data, size_t len)
{
    stream_ctx *s = ctx;
    http_chat *c = s->chat;
    s->out.len = 0;
    if (s->out.data) s->out.data[0] = '\0';
    int bad = chat_stream_event(&s->stream, data, len, &s->out);
    if (queue_push(c, s->out.data ? s->out.data : "", s->out.len, 0) != 0) return -1;
    return bad ? -1 : 0;
}

/* ---- the worker ---------------------------------------------------------------------------- */

/* Returns: the upstream URL for a route, new (free()), or NULL on OOM. */
static char *completions_url(const chat_route *route)
{
    size_t n = strlen(route->base_url);
    while (n > 0 && route->base_url[n - 1] == '/') n--;
    util_buf b = {0};
    if (util_buf_append(&b, route->base_url, n) != 0 ||
        util_buf_puts(&b, "/chat/completions") != 0) {
        util_buf_free(&b);
        return NULL;
    }
    return util_buf_steal(&b);
}

static void turn_run(http_chat *c)
{
    const ragd_cfg *cfg = c->cfg;
    ragd_err err = {0};
    chat_plan *p = &c->plan;
    if (chat_plan_build(c->engine, cfg, &c->req, p, &err) != RAGD_OK) {
        http_reply r = http_reply_error(err.rc, NULL, err.msg);
        reply_ready(c, r);
        return;
    }
    if (p->ask) { /* low confidence: the clarifying question, nothing paid */
        chat_turn_record(cfg, p, "clarified", 0, 0, 0, 0, -1, -1);
        if (p->stream) {
            util_buf out = {0};
            chat_clarify_stream(p, &out);
            if (stream_begin(c) == 0) queue_push(c, out.data ? out.data : "", out.len, 1);
            util_buf_free(&out);
        } else {
            http_reply r = {.status = 200, .body = chat_clarify_completion(p)};
            reply_ready(c, r);
        }
        return;
    }
    if (p->stream) {
        json_t *so = json_object_get(p->upstream, "stream_options");
        if (!json_is_object(so)) {
            so = json_object();
            json_object_set_new(p->upstream, "stream_options", so);
        }
        /* ragd counts the tokens of every turn; the usage chunk reaches the caller only when it
         * asked for it (chat_stream_end). */
        json_object_set_new(so, "include_usage", json_true());
    }
    char *body = json_dumps(p->upstream, JSON_COMPACT);
    char *url = completions_url(&p->route);
    const char *key = __atomic_load_n(&cfg->chat_api_key, __ATOMIC_ACQUIRE);
    stream_ctx sc = {.chat = c};
    chat_stream_init(&sc.stream, p);
    chat_upstream_req ur = {
        .url = url,
        .api_key = key,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .stream = p->stream,
        .connect_timeout_ms = __atomic_load_n(&cfg->chat_connect_timeout_s, __ATOMIC_RELAXED) *
                              1000L,
        .timeout_ms = __atomic_load_n(&cfg->chat_timeout_s, __ATOMIC_RELAXED) * 1000L,
        .max_retries = __atomic_load_n(&cfg->chat_max_retries, __ATOMIC_RELAXED),
        .retry_budget_ms = __atomic_load_n(&cfg->chat_retry_max_time_s, __ATOMIC_RELAXED) *
                           1000.0,
        .on_start = on_start,
        .on_event = on_event,
        .cancelled = on_cancelled,
        .ctx = &sc};
    chat_upstream_result res = {0};
    ragd_rc rc = RAGD_ERR_NOMEM;
    if (body && url) rc = chat_upstream_call(&ur, &res, &err);
    else ragd_err_set(&err, RAGD_ERR_NOMEM, "out of memory");
    if (rc == RAGD_OK && p->stream && res.started && !sc.stream.done)
        rc = ragd_err_set(&err, RAGD_ERR_UPSTREAM_REFUSED, "the chat upstream's stream ended "
                          "before its [DONE] event");
    /* The answer is decided first and delivered after the turn is recorded, so a client that
     * reads /metrics after its answer sees the turn counted. */
    const char *outcome = "answered";
    int blocked = 0, deliver_tail = 0;
    int64_t prompt_tokens = 0, completion_tokens = 0;
    http_reply reply = {0};
    util_buf tail = {0};
    if (res.cancelled) {
        outcome = "cancelled";
        if (p->stream) deliver_tail = 1;
        else reply = error_reply(RAGD_ERR_UNAVAILABLE, "client_closed", "client_closed", err.msg);
    } else if (p->stream && res.started) {
        deliver_tail = 1;
        if (rc == RAGD_OK) {
            chat_stream_end(&sc.stream, &tail);
        } else { /* the stream broke after it began: an error event, no [DONE] */
            outcome = "upstream_error";
            json_t *e = json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", err.msg, "type",
                                  "upstream_error", "param", "code",
                                  rc == RAGD_ERR_TIMEOUT ? "upstream_timeout"
                                                         : "upstream_stream_broken");
            char *t = e ? json_dumps(e, JSON_COMPACT) : NULL;
            if (t) util_buf_printf(&tail, "data: %s\n\n", t);
            free(t);
            json_decref(e);
        }
        blocked = sc.stream.blocked;
        prompt_tokens = sc.stream.prompt_tokens;
        completion_tokens = sc.stream.completion_tokens;
    } else if (rc != RAGD_OK) {
        outcome = "upstream_error";
        reply = upstream_error_reply(&res, rc, err.msg);
    } else if (p->stream) { /* a 2xx with an empty body: nothing was streamed */
        outcome = "upstream_error";
        reply = error_reply(RAGD_ERR_UPSTREAM_REFUSED, "bad_upstream_reply", "upstream_error",
                            "the chat upstream answered with an empty stream");
    } else {
        json_t *o = res.body.data ? json_loadb(res.body.data, res.body.len, 0, NULL) : NULL;
        if (!json_is_object(o) || !json_is_array(json_object_get(o, "choices"))) {
            json_decref(o);
            outcome = "upstream_error";
            reply = error_reply(RAGD_ERR_UPSTREAM_REFUSED, "bad_upstream_reply",
                                "upstream_error",
                                "the chat upstream's answer is not a chat.completion");
        } else {
            blocked = chat_completion_finish(p, o);
            json_t *usage = json_object_get(o, "usage");
            prompt_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
            completion_tokens = json_integer_value(json_object_get(usage, "completion_tokens"));
            reply = (http_reply){.status = 200, .body = o};
        }
    }
    chat_turn_record(cfg, p, outcome, res.status, prompt_tokens, completion_tokens, blocked,
                     res.total_ms, p->stream ? res.first_event_ms : -1);
    if (deliver_tail) queue_push(c, tail.data ? tail.data : "", tail.len, 1);
    else reply_ready(c, reply);
    util_buf_free(&tail);
    chat_stream_free(&sc.stream);
    util_buf_free(&sc.out);
    chat_upstream_result_free(&res);
    free(body);
    free(url);
}

static void *chat_worker(void *arg)
{
    http_chat *c = arg;
    http_server *s = c->server;
    log_record_request_id_set(c->request_id);
    turn_run(c);
    log_record_request_id_set(NULL);
    http_exchange_unref(c->x);
    chat_free(c);
    http_server_worker_leave(s);
    return NULL;
}

/* ---- the engine's side ---------------------------------------------------------------------- */

http_reply http_handle_chat(const http_request *req)
{
    chat_request parsed;
    const char *code = NULL;
    ragd_err err = {0};
    const char *hi = http_request_header(req, "X-Ragd-Intent");
    const char *hc = http_request_header(req, "X-Ragd-Collection");
    if (chat_request_parse(req->cfg, req->body, req->body_len, hi, hc, &parsed, &code, &err) !=
        RAGD_OK)
        return error_reply(err.rc, err.rc == RAGD_ERR_INVALID ? code : NULL,
                           "invalid_request_error", err.msg);
    http_chat *c = calloc(1, sizeof *c);
    if (c == NULL) {
        chat_request_free(&parsed);
        return http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
    }
    c->engine = req->engine;
    c->cfg = req->cfg;
    c->req = parsed;
    snprintf(c->request_id, sizeof c->request_id, "%s", req->request_id ? req->request_id : "");
    return (http_reply){.status = 202, .chat = c};
}

int http_chat_start(http_server *s, http_exchange *x, http_chat *c, http_reply *reply)
{
    c->server = s;
    c->t0 = util_now_ms();
    if (http_server_worker_enter(s) != 0) {
        chat_free(c);
        *reply = http_reply_error(RAGD_ERR_UNAVAILABLE, NULL, "ragd is shutting down");
        return 0;
    }
    http_exchange_ref(x);
    c->x = x;
    x->probe_on_eof = 1; /* a client's hang-up is noticed before anything is written */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t tid;
    int prc = pthread_create(&tid, &attr, chat_worker, c);
    pthread_attr_destroy(&attr);
    if (prc != 0) {
        http_exchange_unref(x);
        http_server_worker_leave(s);
        chat_free(c);
        *reply = http_reply_error(RAGD_ERR_UNAVAILABLE, NULL, "cannot start the chat thread");
        return 0;
    }
    return 1;
}

void http_chat_release(http_chat *c)
{
    if (c) chat_free(c);
}
