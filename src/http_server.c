/* SPDX-License-Identifier: MIT */
/*
 * http_server.c - the libmicrohttpd plumbing: a thread pool bound to the configured address,
 * request bodies collected under a size limit (413 beyond it), JSON replies, and long ingests run
 * in a worker thread while their connection is suspended, so the pool keeps answering retrievals.
 * Shutdown stops accepting (new connections refused, new requests on open ones get 503),
 * interrupts the ingest between documents, waits up to [server] shutdown_timeout for requests in
 * flight and the workers, then stops the daemon. Every request gets an X-Request-Id (the
 * client's when sane) and is counted in the metrics by route and status.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "http_int.h"
#include "ragd/http.h"
#include "ragd/log.h"
#include "ragd/log_event.h"
#include "ragd/metrics.h"
#include "ragd/util.h"

#define WORKER_LOG_EVERY_S 10

struct http_server {
    http_front *front;            /* listening socket, limits, head checks */
    struct MHD_Daemon **daemons;  /* one per [server] threads, fed by the front */
    size_t daemon_count;
    engine *engine;
    const ragd_cfg *cfg; /* the boot configuration: listen address, threads */
    cfg_live *live;      /* snapshots for requests; may be NULL (then cfg) */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int workers;  /* ingest worker threads alive (waited-for and background jobs) */
    http_jobs *jobs; /* ingest jobs: the running one and recent ones */
    int stopping; /* http_server_stop has begun: no new ingest starts */
    int in_flight; /* requests begun and not completed (under mu) */
};

typedef struct request {
    http_server *server;
    struct MHD_Connection *conn;
    util_buf body;
    size_t received; /* body bytes received, kept or not */
    int started; /* a worker runs the route's task; the connection is suspended */
    int done;    /* the worker finished; reply is ready */
    http_reply reply;
    double t0;
    int authorized; /* the bearer token matched (or none is configured) */
    const ragd_cfg *cfg; /* the snapshot this request runs under (a reference when s->live) */
    const char *route_name; /* for metrics; static */
    char request_id[RAGD_REQUEST_ID_MAX];
    char allow[HTTP_ALLOW_MAX];
    http_chat *chat; /* POST /v1/chat/completions in progress (src/http_chat.c) */
} request;

/* A route's task in a worker thread: waited for by its suspended request (req set), or detached. */
typedef struct task {
    http_server *server;
    request *req; /* NULL when detached */
    http_task_run run;
    void *arg;
} task;

static enum MHD_Result send_reply(struct MHD_Connection *conn, http_reply *reply,
                                  const char *request_id, int closing)
{
    char *text = reply->body ? json_dumps(reply->body, JSON_COMPACT) : NULL;
    json_decref(reply->body);
    reply->body = NULL;
    if (text == NULL && reply->text != NULL) { /* a text body, sent as is */
        char *t = reply->text;
        reply->text = NULL;
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(strlen(t), t, MHD_RESPMEM_MUST_FREE);
        if (resp == NULL) {
            free(t);
            return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                reply->content_type ? reply->content_type : "text/plain");
        if (request_id && request_id[0]) MHD_add_response_header(resp, "X-Request-Id", request_id);
        enum MHD_Result r = MHD_queue_response(conn, reply->status, resp);
        MHD_destroy_response(resp);
        return r;
    }
    if (text == NULL) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        text = strdup(oom);
        reply->status = 500;
        if (text == NULL) return MHD_NO;
    }
    size_t n = strlen(text);
    /* A trailing newline makes curl output readable; JSON parsers ignore it. */
    char *withnl = realloc(text, n + 2);
    if (withnl == NULL) {
        free(text);
        return MHD_NO;
    }
    withnl[n] = '\n';
    withnl[n + 1] = '\0';
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(n + 1, withnl, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(withnl);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (reply->allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, reply->allow);
    if (request_id && request_id[0]) MHD_add_response_header(resp, "X-Request-Id", request_id);
    if (closing) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result r = MHD_queue_response(conn, reply->status, resp);
    MHD_destroy_response(resp);
    return r;
}

static void *task_worker(void *arg)
{
    task *t = arg;
    http_server *s = t->server;
    http_reply reply = t->run(t->arg);
    pthread_mutex_lock(&s->mu);
    if (t->req) {
        t->req->reply = reply;
        t->req->done = 1;
        MHD_resume_connection(t->req->conn);
    } else {
        json_decref(reply.body);
        free(reply.text);
    }
    s->workers--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    free(t);
    return NULL;
}

/* Starts fn(arg) in a detached thread counted in s->workers, unless the server is stopping.
 * Returns: 0, or -1 (*stopping says why). */
static int worker_start(http_server *s, void *(*fn)(void *), void *arg, request *suspend,
                        int in_drain, int *stopping)
{
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&s->mu);
    int prc = -1;
    if (!s->stopping || in_drain) {
        if (suspend) {
            MHD_suspend_connection(suspend->conn);
            suspend->started = 1;
        }
        s->workers++;
        prc = pthread_create(&tid, &attr, fn, arg);
        if (prc != 0) {
            s->workers--;
            if (suspend) {
                suspend->started = 0;
                MHD_resume_connection(suspend->conn);
            }
        }
    }
    *stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    pthread_attr_destroy(&attr);
    return prc == 0 ? 0 : -1;
}

int http_server_worker_enter(http_server *s)
{
    pthread_mutex_lock(&s->mu);
    int stopping = s->stopping;
    if (!stopping) s->workers++;
    pthread_mutex_unlock(&s->mu);
    return stopping ? -1 : 0;
}

void http_server_worker_leave(http_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->workers--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

/* http_request.header over libmicrohttpd's request headers. */
static const char *header_lookup(void *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

static enum MHD_Result finish(request *req, const char *method, const char *url,
                              http_reply *reply)
{
    RAGD_LOG(RAGD_LOG_DEBUG, "http", "%s %s -> %u in %.2f ms request_id=%s", method, url,
             reply->status, util_now_ms() - req->t0, req->request_id);
    metrics_http_request_add(req->route_name ? req->route_name : "other", reply->status);
    pthread_mutex_lock(&req->server->mu);
    int closing = req->server->stopping;
    pthread_mutex_unlock(&req->server->mu);
    MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT,
                              (unsigned)req->cfg->connection_timeout_s);
    return send_reply(req->conn, reply, req->request_id, closing);
}

static http_reply reply_too_large(const ragd_cfg *cfg)
{
    char msg[128];
    snprintf(msg, sizeof msg, "request body over the limit of %zu bytes", cfg->max_body_bytes);
    return http_reply_error(RAGD_ERR_TOO_LARGE, NULL, msg);
}

typedef struct args_ctx {
    http_arg *args;
    size_t count;
} args_ctx;

static enum MHD_Result arg_collect(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    args_ctx *c = cls;
    if (c->count < HTTP_ARGS_MAX) c->args[c->count++] = (http_arg){key, value ? value : ""};
    return MHD_YES;
}

/* Hands a reply's task to a worker thread: with req, the connection is suspended until the task's
 * reply is ready; without, the task runs detached. Returns: 0, or -1 with the task dropped and
 * *reply replaced by the 503. */
static int task_start(http_server *s, request *req, http_reply *reply)
{
    task *t = calloc(1, sizeof *t);
    int stopping = 0;
    if (t != NULL) {
        *t = (task){.server = s, .req = reply->task_detached ? NULL : req, .run = reply->task_run,
                    .arg = reply->task_arg};
        if (worker_start(s, task_worker, t, t->req, reply->task_in_drain && t->req != NULL,
                         &stopping) == 0)
            return 0;
        free(t);
    }
    http_reply why = http_reply_error(RAGD_ERR_UNAVAILABLE, NULL,
                                      stopping ? "ragd is shutting down; no ingest starts"
                                               : "cannot start a worker thread");
    if (reply->task_drop) reply->task_drop(reply->task_arg, &why);
    json_decref(reply->body);
    free(reply->text);
    *reply = why;
    return -1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    http_server *s = cls;
    request *req = *con_cls;
    if (req == NULL) {
        req = calloc(1, sizeof *req);
        if (req == NULL) return MHD_NO;
        req->server = s;
        req->conn = conn;
        req->t0 = util_now_ms();
        req->cfg = s->live ? cfg_live_acquire(s->live) : s->cfg;
        req->route_name = http_route_name_of(url);
        /* the whole request (its body) within request_timeout, even when nothing more comes;
         * finish() gives the connection its idle timeout back for keep-alive */
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
                                  (unsigned)req->cfg->request_timeout_s);
        *con_cls = req;
        const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        if (log_record_request_id_valid(rid))
            snprintf(req->request_id, sizeof req->request_id, "%s", rid);
        else
            log_record_request_id_new(req->request_id);
        pthread_mutex_lock(&s->mu);
        s->in_flight++;
        metrics_in_flight_add(1);
        int stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stopping) { /* a new request on a kept-alive connection during shutdown */
            http_reply r = http_reply_error(RAGD_ERR_UNAVAILABLE, NULL,
                                            "ragd is shutting down; retry on another instance");
            return finish(req, method, url, &r);
        }
        req->authorized = http_auth_ok(req->cfg, MHD_lookup_connection_value(
                                                   conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_AUTHORIZATION));
        /* Routes that need the token are refused before any of the body is read. */
        const char *id = NULL;
        const http_route *route = http_route_find(method, url, &id, req->allow);
        if (!req->authorized && (route == NULL || !(route->flags & HTTP_ROUTE_PUBLIC))) {
            http_reply r = http_reply_error(RAGD_ERR_UNAUTHORIZED, NULL,
                                            "missing or wrong bearer token (Authorization: "
                                            "Bearer <token>)");
            return finish(req, method, url, &r);
        }
        /* Refuse an announced oversized body before reading any of it. */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)req->cfg->max_body_bytes) {
            http_reply r = reply_too_large(req->cfg);
            return finish(req, method, url, &r);
        }
        return MHD_YES;
    }

    if (*upload_data_size > 0) {
        /* the whole request's deadline: a body dripped a byte at a time does not hold a
         * connection open without end (MHD's own timeout only sees idleness) */
        if (util_now_ms() - req->t0 > 1000.0 * req->cfg->request_timeout_s) {
            metrics_counter_add(RAGD_METRIC_HTTP_REQUEST_TIMEOUTS, 1);
            return MHD_NO;
        }
        /* A body without Content-Length (chunked) that goes over the limit is read and dropped
         * so the client gets its 413 (MHD cannot answer mid-upload), but only up to a bound:
         * past it the connection is closed rather than tie up a pool thread. */
        req->received += *upload_data_size;
        if (req->received > req->cfg->max_body_bytes) {
            util_buf_free(&req->body);
            if (req->received / 4 > req->cfg->max_body_bytes) return MHD_NO;
        } else if (util_buf_append(&req->body, upload_data, *upload_data_size) != 0) {
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (req->chat != NULL) { /* resumed by the chat turn's worker */
        struct MHD_Response *stream = NULL;
        http_reply r = {0};
        int ready = http_chat_poll(req->chat, &r, &stream);
        if (ready == 0) return MHD_YES;
        if (ready == 1) return finish(req, method, url, &r);
        metrics_http_request_add(req->route_name, 200);
        enum MHD_Result qr = MHD_queue_response(conn, 200, stream);
        MHD_destroy_response(stream);
        return qr;
    }
    if (req->done) { /* resumed after the worker finished */
        http_reply r = req->reply;
        req->reply = (http_reply){0};
        return finish(req, method, url, &r);
    }
    if (req->started) return MHD_YES; /* spurious call while suspended */

    if (req->received > req->cfg->max_body_bytes) {
        http_reply r = reply_too_large(req->cfg);
        return finish(req, method, url, &r);
    }

    http_arg args[HTTP_ARGS_MAX];
    args_ctx ac = {args, 0};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, arg_collect, &ac);
    http_request hr = {.method = method,
                       .path = url,
                       .id = "",
                       .args = args,
                       .arg_count = ac.count,
                       .body = req->body.data,
                       .body_len = req->body.len,
                       .authorized = req->authorized,
                       .engine = s->engine,
                       .cfg = req->cfg,
                       .jobs = s->jobs,
                       .request_id = req->request_id,
                       .header = header_lookup,
                       .header_ctx = conn};
    log_record_request_id_set(req->request_id);
    http_reply r = http_dispatch(&hr, req->allow);
    log_record_request_id_set(NULL);
    if (r.chat) { /* a checked chat turn: its worker answers or streams */
        http_chat *turn = r.chat;
        r.chat = NULL;
        json_decref(r.body);
        r.body = NULL;
        if (http_chat_start(s, conn, turn, req->request_id, &req->chat, &r)) return MHD_YES;
    }
    if (r.task_run) {
        int detached = r.task_detached;
        if (task_start(s, req, &r) == 0 && !detached) {
            /* the connection is suspended; the worker's reply is sent when it resumes */
            json_decref(r.body);
            free(r.text);
            return MHD_YES;
        }
    }
    return finish(req, method, url, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    (void)conn;
    request *req = *con_cls;
    if (req == NULL) return;
    if (toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT || toe == MHD_REQUEST_TERMINATED_READ_ERROR ||
        toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
        metrics_counter_add(RAGD_METRIC_HTTP_CONN_ABORTED, 1);
    pthread_mutex_lock(&s->mu);
    s->in_flight--;
    metrics_in_flight_add(-1);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    http_chat_release(req->chat);
    util_buf_free(&req->body);
    json_decref(req->reply.body);
    free(req->reply.text);
    if (s->live) cfg_live_release(req->cfg);
    free(req);
    *con_cls = NULL;
}

/* libmicrohttpd's messages about clients that went away are normal on a busy server: they are
 * counted (ragd_http_connections_aborted_total, in on_completed) and logged at debug level only. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    /* also the socket-option notes on the relay's socketpair (no TCP there: nothing is lost) */
    static const char *const client_side[] = {"closed", "reset", "disconnect", "timed out",
                                              "timeout", "Broken pipe", "aborted", "shut",
                                              "TCP_NODELAY", "TCP_CORK", "push the data"};
    int level = RAGD_LOG_WARN;
    for (size_t i = 0; i < sizeof client_side / sizeof client_side[0]; i++)
        if (strstr(msg, client_side[i])) level = RAGD_LOG_DEBUG;
    RAGD_LOG(level, "http", "libmicrohttpd: %s", msg);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    http_server *s = cls;
    (void)socket_context;
    if (code != MHD_CONNECTION_NOTIFY_CLOSED) return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    http_front_conn_closed(s->front, ci ? ci->client_addr : NULL);
}

static void server_free(http_server *s)
{
    for (size_t i = 0; i < s->daemon_count; i++)
        if (s->daemons[i]) MHD_stop_daemon(s->daemons[i]);
    http_front_free(s->front);
    free(s->daemons);
    http_jobs_free(s->jobs);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    free(s);
}

ragd_rc http_server_start(engine *e, const ragd_cfg *cfg, cfg_live *live, http_server **out,
                          ragd_err *err)
{
    http_server *s = calloc(1, sizeof *s);
    if (s == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    s->engine = e;
    s->cfg = cfg;
    s->live = live;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->jobs = http_jobs_new();
    s->daemon_count = (size_t)cfg->threads;
    s->daemons = calloc(s->daemon_count, sizeof *s->daemons);
    if (s->jobs == NULL || s->daemons == NULL) {
        server_free(s);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    ragd_rc rc = http_front_new(cfg, live, &s->front, err);
    if (rc != RAGD_OK) {
        server_free(s);
        return rc;
    }
    /* Daemons without a listening socket, each with its own epoll thread: the front hands them
     * connections whose first request head passed its checks. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    for (size_t i = 0; i < s->daemon_count; i++) {
        s->daemons[i] = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout_s,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
            MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections + 16,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
            on_connection, s, MHD_OPTION_END);
        if (s->daemons[i] == NULL) {
            server_free(s);
            return ragd_err_set(err, RAGD_ERR_IO, "libmicrohttpd failed to start");
        }
    }
    rc = http_front_run(s->front, s->daemons, s->daemon_count, err);
    if (rc != RAGD_OK) {
        server_free(s);
        return rc;
    }
    *out = s;
    return RAGD_OK;
}

int http_server_stop(http_server *s)
{
    if (s == NULL) return 0;
    /* Stop accepting: new connections are refused at once; connections already open are still
     * served (new requests on them get a 503 and are closed). */
    http_front_quiesce(s->front);
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    engine_ingest_cancel(s->engine);
    const ragd_cfg *now = s->live ? cfg_live_acquire(s->live) : s->cfg;
    int timeout_s = now->shutdown_timeout_s;
    if (s->live) cfg_live_release(now);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_s;
    double t0 = util_now_ms(), next_note = t0 + WORKER_LOG_EVERY_S * 1000.0;
    int timed_out = 0;
    RAGD_LOG(RAGD_LOG_INFO, "http", "draining: %d requests in flight, up to %d s",
             s->in_flight, timeout_s);
    /* The ingest stops after the document it is on; requests in flight finish. */
    while ((s->in_flight > 0 || s->workers > 0) && !timed_out) {
        timed_out = pthread_cond_timedwait(&s->cond, &s->mu, &deadline) == ETIMEDOUT;
        if (util_now_ms() >= next_note && (s->in_flight > 0 || s->workers > 0)) {
            next_note += WORKER_LOG_EVERY_S * 1000.0;
            RAGD_LOG(RAGD_LOG_INFO, "http", "still draining: %d requests in flight%s",
                     s->in_flight, s->workers ? ", the ingest finishing its current document"
                                              : "");
        }
    }
    int left = s->in_flight, workers = s->workers;
    pthread_mutex_unlock(&s->mu);
    if (workers > 0) {
        /* The ingest worker still uses the daemon and the engine: neither can be freed. */
        RAGD_LOG(RAGD_LOG_ERROR, "http", "shutdown deadline (%d s) passed with the ingest still "
                 "running its current document", timeout_s);
        return -1;
    }
    if (left > 0)
        RAGD_LOG(RAGD_LOG_WARN, "http", "shutdown deadline (%d s) passed; closing %d requests "
                 "still in flight", timeout_s, left);
    else
        RAGD_LOG(RAGD_LOG_INFO, "http", "drained in %.0f ms", util_now_ms() - t0);
    server_free(s);
    return left > 0 ? 1 : 0;
}

ragd_rc http_server_ingest_job(http_server *s, const char *path, ragd_err *err)
{
    http_ingest_req req = {.path = realpath(path, NULL), .wait = 0};
    if (req.path == NULL)
        return ragd_err_set(err, errno == ENOENT ? RAGD_ERR_NOT_FOUND : RAGD_ERR_IO,
                            "cannot resolve %s: %s", path, strerror(errno));
    pthread_mutex_lock(&s->mu);
    int stopping = s->stopping;
    if (!stopping) s->workers++; /* drained by http_server_stop like a job's worker */
    pthread_mutex_unlock(&s->mu);
    if (stopping) {
        http_ingest_req_free(&req);
        return ragd_err_set(err, RAGD_ERR_UNAVAILABLE, "ragd is shutting down; no ingest starts");
    }
    char id[HTTP_JOB_ID_MAX];
    ragd_err jerr = {0};
    ragd_rc rc = http_jobs_start(s->jobs, req.path, 0, 0, id, &jerr);
    if (rc != RAGD_OK) {
        ragd_err_set(err, rc, "%s", jerr.msg);
    } else {
        RAGD_LOG(RAGD_LOG_INFO, "ingest", "start-up ingest of %s: job %s", req.path, id);
        http_reply reply = http_ingest_req_run(s->engine, s->jobs, id, &req);
        if (reply.status != 200) {
            json_t *e = json_object_get(reply.body, "error");
            const char *code = json_string_value(json_object_get(e, "code"));
            const char *msg = json_string_value(json_object_get(e, "message"));
            /* the job keeps the full error; the caller needs to know shutdown and busy */
            rc = code && strcmp(code, "unavailable") == 0 ? RAGD_ERR_UNAVAILABLE
                 : code && strcmp(code, "busy") == 0      ? RAGD_ERR_BUSY
                                                          : RAGD_ERR_IO;
            ragd_err_set(err, rc, "%s", msg ? msg : "ingest failed");
        }
        json_decref(reply.body);
        free(reply.text);
    }
    http_ingest_req_free(&req);
    pthread_mutex_lock(&s->mu);
    s->workers--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return rc;
}
