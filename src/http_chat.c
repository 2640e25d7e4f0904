/* SPDX-License-Identifier: MIT */
/*
 * http_chat.c - POST /v1/chat/completions over libmicrohttpd. The body is checked at once (a bad
 * request gets its 400 without a thread); then the connection is suspended and a worker thread
 * runs the turn (src/chat.c: retrieval, budget, prompt; src/chat_upstream.c: the upstream
 * call), so a slow upstream never holds one of the pool's threads. A whole answer resumes the
 * connection with a JSON reply. A streamed answer resumes it with a 200 callback response once
 * the upstream's stream has begun (an upstream error before that is still a JSON error with the
 * upstream's status); the worker queues each filtered SSE event and the content reader hands
 * them to libmicrohttpd as they come, suspending the connection while the queue is empty. The
 * client closing its connection cancels the upstream request: noticed by libmicrohttpd while
 * writing, and by polling the socket for a hang-up while the connection is suspended.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "chat_int.h"
#include "http_int.h"
#include "ragd/chat.h"
#include "ragd/log.h"
#include "ragd/log_event.h"
#include "ragd/util.h"

enum { CHAT_WORKING = 0, CHAT_REPLY, CHAT_STREAM };

struct http_chat {
    pthread_mutex_t mu;
    int refs;               /* the request, the worker, the streaming response */
    http_server *server;    /* borrowed */
    engine *engine;         /* borrowed */
    const ragd_cfg *cfg;    /* borrowed */
    struct MHD_Connection *conn;
    int fd;                 /* the client socket, polled for a hang-up while suspended */
    char request_id[RAGD_REQUEST_ID_MAX];
    chat_request req;
    chat_plan plan;
    int state;              /* CHAT_* */
    int suspended;          /* the connection is suspended by us */
    int taken;              /* the reply or the response went to the connection */
    http_reply reply;       /* CHAT_REPLY */
    util_buf queue;         /* CHAT_STREAM: SSE bytes not yet handed to libmicrohttpd */
    size_t queue_off;
    int producer_done;      /* the worker queued its last byte */
    int client_gone;
    double t0;
};

static void chat_unref(http_chat *c)
{
    pthread_mutex_lock(&c->mu);
    int left = --c->refs;
    pthread_mutex_unlock(&c->mu);
    if (left > 0) return;
    chat_request_free(&c->req);
    chat_plan_free(&c->plan);
    json_decref(c->reply.body);
    util_buf_free(&c->queue);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Resumes the connection if we suspended it. Call with c->mu held. */
static void wake(http_chat *c)
{
    if (c->suspended) {
        c->suspended = 0;
        MHD_resume_connection(c->conn);
    }
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

/* Sets the worker's result and wakes the connection. */
static void reply_ready(http_chat *c, http_reply r)
{
    pthread_mutex_lock(&c->mu);
    c->reply = r;
    c->state = CHAT_REPLY;
    wake(c);
    pthread_mutex_unlock(&c->mu);
}

/* Queues SSE bytes for the client. Returns: 0, or -1 when the client is gone. */
static int queue_push(http_chat *c, const char *data, size_t len, int last)
{
    pthread_mutex_lock(&c->mu);
    int gone = c->client_gone;
    if (!gone && len > 0 && util_buf_append(&c->queue, data, len) != 0) gone = 1;
    if (last) c->producer_done = 1;
    if (c->state == CHAT_STREAM) wake(c);
    pthread_mutex_unlock(&c->mu);
    return gone ? -1 : 0;
}

/* ---- the upstream's callbacks (worker thread) --------------------------------------------- */

typedef struct stream_ctx {
    http_chat *chat;
    chat_stream stream;
    util_buf out;
} stream_ctx;

static int on_cancelled(void *ctx)
{
    http_chat *c = ((stream_ctx *)ctx)->chat;
    pthread_mutex_lock(&c->mu);
    /* While suspended, libmicrohttpd does not look at the socket: a closed client shows up
     * only here. The descriptor stays valid: a suspended connection is never closed. */
    if (!c->client_gone && c->suspended && c->fd >= 0) {
        struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};
        if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
            c->client_gone = 1;
    }
    int gone = c->client_gone;
    pthread_mutex_unlock(&c->mu);
    return gone;
}

static int on_start(void *ctx)
{
    http_chat *c = ((stream_ctx *)ctx)->chat;
    pthread_mutex_lock(&c->mu);
    c->state = CHAT_STREAM;
    wake(c);
    int gone = c->client_gone;
    pthread_mutex_unlock(&c->mu);
    return gone ? -1 : 0;
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
            pthread_mutex_lock(&c->mu);
            c->queue = out;
            c->producer_done = 1;
            c->state = CHAT_STREAM;
            wake(c);
            pthread_mutex_unlock(&c->mu);
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
    chat_unref(c);
    http_server_worker_leave(s);
    return NULL;
}

/* ---- libmicrohttpd's side (pool threads) ---------------------------------------------------- */

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
    pthread_mutex_init(&c->mu, NULL);
    c->refs = 1; /* the reply's, then the request's */
    c->engine = req->engine;
    c->cfg = req->cfg;
    c->req = parsed;
    c->fd = -1;
    snprintf(c->request_id, sizeof c->request_id, "%s", req->request_id ? req->request_id : "");
    return (http_reply){.status = 202, .chat = c};
}

int http_chat_start(http_server *s, struct MHD_Connection *conn, http_chat *c,
                    const char *request_id, http_chat **out, http_reply *reply)
{
    *out = NULL;
    c->server = s;
    c->conn = conn;
    c->t0 = util_now_ms();
    if (request_id) snprintf(c->request_id, sizeof c->request_id, "%s", request_id);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) c->fd = ci->connect_fd;
    if (http_server_worker_enter(s) != 0) {
        chat_unref(c);
        *reply = http_reply_error(RAGD_ERR_UNAVAILABLE, NULL, "ragd is shutting down");
        return 0;
    }
    pthread_mutex_lock(&c->mu);
    c->refs++; /* the worker's */
    MHD_suspend_connection(conn);
    c->suspended = 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t tid;
    int prc = pthread_create(&tid, &attr, chat_worker, c);
    pthread_attr_destroy(&attr);
    if (prc != 0) {
        c->suspended = 0;
        MHD_resume_connection(conn);
        c->refs--;
    }
    pthread_mutex_unlock(&c->mu);
    if (prc != 0) {
        http_server_worker_leave(s);
        chat_unref(c);
        *reply = http_reply_error(RAGD_ERR_UNAVAILABLE, NULL, "cannot start the chat thread");
        return 0;
    }
    *out = c;
    return 1;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    http_chat *c = cls;
    pthread_mutex_lock(&c->mu);
    ssize_t n;
    size_t have = c->queue.len - c->queue_off;
    if (have > 0) {
        n = (ssize_t)(have < max ? have : max);
        memcpy(buf, c->queue.data + c->queue_off, (size_t)n);
        c->queue_off += (size_t)n;
        if (c->queue_off == c->queue.len) { /* drained: reuse the buffer */
            c->queue.len = 0;
            c->queue_off = 0;
        }
    } else if (c->producer_done) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else if (c->client_gone) {
        n = MHD_CONTENT_READER_END_WITH_ERROR;
    } else {
        /* Nothing yet: returning 0 alone would spin the polling thread. The worker resumes
         * the connection when it queues the next event. */
        MHD_suspend_connection(c->conn);
        c->suspended = 1;
        n = 0;
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

static void stream_free(void *cls)
{
    chat_unref(cls);
}

int http_chat_poll(http_chat *c, http_reply *reply, struct MHD_Response **response)
{
    pthread_mutex_lock(&c->mu);
    int state = c->taken ? CHAT_WORKING : c->state;
    if (state == CHAT_REPLY) {
        *reply = c->reply;
        c->reply.body = NULL;
        c->taken = 1;
    } else if (state == CHAT_STREAM) {
        c->taken = 1;
        c->refs++; /* the response's */
    }
    pthread_mutex_unlock(&c->mu);
    if (state != CHAT_STREAM) return state == CHAT_REPLY ? 1 : 0;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, c,
                                          stream_free);
    if (resp == NULL) {
        chat_unref(c);
        *reply = http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
        return 1;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    if (c->request_id[0]) MHD_add_response_header(resp, "X-Request-Id", c->request_id);
    *response = resp;
    return 2;
}

void http_chat_release(http_chat *c)
{
    if (c == NULL) return;
    pthread_mutex_lock(&c->mu);
    if (!c->producer_done) c->client_gone = 1;
    pthread_mutex_unlock(&c->mu);
    chat_unref(c);
}
