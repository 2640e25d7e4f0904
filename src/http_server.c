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
    struct MHD_Daemon *daemon;
    engine *engine;
    const ragd_cfg *cfg;
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
    int started; /* the ingest worker was started */
    int done;    /* the worker finished; reply is ready */
    http_reply reply;
    http_ingest_req ingest;
    char job_id[HTTP_JOB_ID_MAX];
    double t0;
    const char *route_name; /* for metrics; static */
    char request_id[RAGD_REQUEST_ID_MAX];
} request;

/* A background ingest job (POST /ingest with "wait": false): owns its request. */
typedef struct job_task {
    http_server *server;
    http_ingest_req ingest;
    char job_id[HTTP_JOB_ID_MAX];
    char request_id[RAGD_REQUEST_ID_MAX];
} job_task;

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

static void *ingest_worker(void *arg)
{
    request *req = arg;
    http_server *s = req->server;
    log_record_request_id_set(req->request_id);
    http_reply reply = http_ingest_req_run(s->engine, s->jobs, req->job_id, &req->ingest);
    log_record_request_id_set(NULL);
    pthread_mutex_lock(&s->mu);
    req->reply = reply;
    req->done = 1;
    MHD_resume_connection(req->conn);
    s->workers--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void *job_worker(void *arg)
{
    job_task *t = arg;
    http_server *s = t->server;
    log_record_request_id_set(t->request_id);
    http_reply reply = http_ingest_req_run(s->engine, s->jobs, t->job_id, &t->ingest);
    log_record_request_id_set(NULL);
    json_decref(reply.body);
    http_ingest_req_free(&t->ingest);
    free(t);
    pthread_mutex_lock(&s->mu);
    s->workers--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Starts fn(arg) in a detached thread counted in s->workers, unless the server is stopping.
 * Returns: 0, or -1 (*stopping says why). */
static int worker_start(http_server *s, void *(*fn)(void *), void *arg, request *suspend,
                        int *stopping)
{
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&s->mu);
    int prc = -1;
    if (!s->stopping) {
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

static enum MHD_Result finish(request *req, const char *method, const char *url,
                              http_reply *reply)
{
    RAGD_LOG(RAGD_LOG_DEBUG, "http", "%s %s -> %u in %.2f ms request_id=%s", method, url,
             reply->status, util_now_ms() - req->t0, req->request_id);
    metrics_http_request_add(req->route_name ? req->route_name : "other", reply->status);
    pthread_mutex_lock(&req->server->mu);
    int closing = req->server->stopping;
    pthread_mutex_unlock(&req->server->mu);
    return send_reply(req->conn, reply, req->request_id, closing);
}

static http_reply reply_too_large(const http_server *s)
{
    char msg[128];
    snprintf(msg, sizeof msg, "request body over the limit of %zu bytes", s->cfg->max_body_bytes);
    return http_reply_error(RAGD_ERR_TOO_LARGE, NULL, msg);
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
        const char *allow_unused = NULL;
        int method_unused = 1;
        http_route route = http_route_find(method, url, &allow_unused, &method_unused);
        req->route_name = route == RAGD_ROUTE_NONE ? "other" : http_route_name(route);
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
        /* Every endpoint but /health needs the bearer token when one is configured; checked
         * before routing and before any of the body is read. */
        if (strcmp(url, "/health") != 0 && strcmp(url, "/health/") != 0 &&
            !http_auth_ok(s->cfg, MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                               MHD_HTTP_HEADER_AUTHORIZATION))) {
            http_reply r = http_reply_error(RAGD_ERR_UNAUTHORIZED, NULL,
                                            "missing or wrong bearer token (Authorization: "
                                            "Bearer <token>)");
            return finish(req, method, url, &r);
        }
        /* Refuse an announced oversized body before reading any of it. */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)s->cfg->max_body_bytes) {
            http_reply r = reply_too_large(s);
            return finish(req, method, url, &r);
        }
        return MHD_YES;
    }

    if (*upload_data_size > 0) {
        /* A body without Content-Length (chunked) that goes over the limit is read and dropped
         * so the client gets its 413 (MHD cannot answer mid-upload), but only up to a bound:
         * past it the connection is closed rather than tie up a pool thread. */
        req->received += *upload_data_size;
        if (req->received > s->cfg->max_body_bytes) {
            util_buf_free(&req->body);
            if (req->received / 4 > s->cfg->max_body_bytes) return MHD_NO;
        } else if (util_buf_append(&req->body, upload_data, *upload_data_size) != 0) {
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (req->done) { /* resumed after the ingest worker finished */
        http_reply r = req->reply;
        req->reply.body = NULL;
        return finish(req, method, url, &r);
    }
    if (req->started) return MHD_YES; /* spurious call while suspended */

    if (req->received > s->cfg->max_body_bytes) {
        http_reply r = reply_too_large(s);
        return finish(req, method, url, &r);
    }

    const char *allow = NULL;
    int method_ok = 1;
    http_route route = http_route_find(method, url, &allow, &method_ok);
    http_reply r;
    if (route == RAGD_ROUTE_NONE) {
        char msg[256];
        snprintf(msg, sizeof msg, "no such endpoint: %.100s %.60s; see GET / for the list",
                 method, url);
        r = http_reply_error(RAGD_ERR_NOT_FOUND, NULL, msg);
        return finish(req, method, url, &r);
    }
    if (!method_ok) {
        char msg[256];
        snprintf(msg, sizeof msg, "%.60s is not allowed on %.60s; use %.10s", method, url, allow);
        r = http_reply_error(RAGD_ERR_INVALID, "method_not_allowed", msg);
        r.allow = allow;
        return finish(req, method, url, &r);
    }
    if (route == RAGD_ROUTE_DOCUMENTS || route == RAGD_ROUTE_DOCUMENT) {
        r = http_documents_handle(
            s->engine, s->cfg, method, url,
            MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "offset"),
            MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit"), req->body.data,
            req->body.len);
        return finish(req, method, url, &r);
    }
    if (route == RAGD_ROUTE_JOB) {
        json_t *job = http_jobs_json(s->jobs, url + strlen("/jobs/"));
        r = job ? (http_reply){.status = 200, .body = job}
                : http_reply_error(RAGD_ERR_NOT_FOUND, NULL, "no such job (jobs are kept in "
                                   "memory: the last 64 of this daemon's run)");
        return finish(req, method, url, &r);
    }
    if (route != RAGD_ROUTE_INGEST) {
        log_record_request_id_set(req->request_id);
        r = http_route_handle(s->engine, s->cfg, route, req->body.data, req->body.len);
        log_record_request_id_set(NULL);
        return finish(req, method, url, &r);
    }

    if (http_ingest_req_parse(s->cfg, req->body.data, req->body.len, &req->ingest, &r) != 0)
        return finish(req, method, url, &r);
    ragd_err jerr = {0};
    if (http_jobs_start(s->jobs, req->ingest.path, req->ingest.reset, req->ingest.wait,
                        req->job_id, &jerr) != RAGD_OK) {
        r = http_reply_error(jerr.rc, NULL, jerr.msg);
        if (jerr.rc == RAGD_ERR_BUSY)
            json_object_set_new(json_object_get(r.body, "error"), "job_id",
                                json_string(req->job_id));
        return finish(req, method, url, &r);
    }
    int stopping = 0;
    if (!req->ingest.wait) {
        job_task *t = calloc(1, sizeof *t);
        if (t != NULL) {
            t->server = s;
            t->ingest = req->ingest;
            memcpy(t->job_id, req->job_id, sizeof t->job_id);
            memcpy(t->request_id, req->request_id, sizeof t->request_id);
            memset(&req->ingest, 0, sizeof req->ingest);
        }
        if (t != NULL && worker_start(s, job_worker, t, NULL, &stopping) == 0) {
            r = (http_reply){.status = 202};
            r.body = json_pack("{s:s, s:s, s:s}", "job_id", req->job_id, "state", "running",
                               "status_url", "/jobs/");
            if (r.body) {
                char status_url[HTTP_JOB_ID_MAX + 8];
                snprintf(status_url, sizeof status_url, "/jobs/%s", req->job_id);
                json_object_set_new(r.body, "status_url", json_string(status_url));
            }
            return finish(req, method, url, &r);
        }
        if (t != NULL) http_ingest_req_free(&t->ingest);
        free(t);
        r = http_reply_error(RAGD_ERR_UNAVAILABLE, NULL,
                             stopping ? "ragd is shutting down; no ingest starts"
                                      : "cannot start the ingest thread");
        http_jobs_finish(s->jobs, req->job_id, &r);
        return finish(req, method, url, &r);
    }
    if (worker_start(s, ingest_worker, req, req, &stopping) != 0) {
        r = http_reply_error(RAGD_ERR_UNAVAILABLE, NULL,
                             stopping ? "ragd is shutting down; no ingest starts"
                                      : "cannot start the ingest thread");
        http_jobs_finish(s->jobs, req->job_id, &r);
        return finish(req, method, url, &r);
    }
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    (void)conn;
    (void)toe;
    request *req = *con_cls;
    if (req == NULL) return;
    pthread_mutex_lock(&s->mu);
    s->in_flight--;
    metrics_in_flight_add(-1);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    util_buf_free(&req->body);
    json_decref(req->reply.body);
    free(req->reply.text);
    http_ingest_req_free(&req->ingest);
    free(req);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    RAGD_LOG(RAGD_LOG_WARN, "http", "libmicrohttpd: %s", msg);
}

ragd_rc http_server_start(engine *e, const ragd_cfg *cfg, http_server **out, ragd_err *err)
{
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->listen_port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(cfg->listen_host, port, &hints, &ai);
    if (gai != 0)
        return ragd_err_set(err, RAGD_ERR_CONFIG, "cannot resolve listen address %s: %s",
                            cfg->listen_host, gai_strerror(gai));

    http_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        freeaddrinfo(ai);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    s->engine = e;
    s->cfg = cfg;
    s->jobs = http_jobs_new();
    if (s->jobs == NULL) {
        freeaddrinfo(ai);
        free(s);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    errno = 0;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->listen_port, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
    int en = errno;
    freeaddrinfo(ai);
    if (s->daemon == NULL) {
        http_jobs_free(s->jobs);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cond);
        free(s);
        return ragd_err_set(err, RAGD_ERR_IO, "cannot listen on %s:%d: %s", cfg->listen_host,
                            cfg->listen_port, en ? strerror(en) : "libmicrohttpd failed to start");
    }
    *out = s;
    return RAGD_OK;
}

int http_server_stop(http_server *s)
{
    if (s == NULL) return 0;
    /* Stop accepting; connections already open are still served (new requests on them get a
     * 503 and are closed). */
    MHD_socket lsock = MHD_quiesce_daemon(s->daemon);
    /* Refuse new connections at once instead of leaving them in the backlog until the drain
     * ends: shutdown() takes a listening socket out of LISTEN on Linux; the descriptor itself
     * stays open (MHD's threads may still hold it) until after MHD_stop_daemon. */
    if (lsock != MHD_INVALID_SOCKET) shutdown(lsock, SHUT_RDWR);
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    engine_ingest_cancel(s->engine);
    int timeout_s = __atomic_load_n(&s->cfg->shutdown_timeout_s, __ATOMIC_RELAXED);
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
    MHD_stop_daemon(s->daemon);
    /* The quiesced listening socket is ours to close, after the daemon's threads are gone. */
    if (lsock != MHD_INVALID_SOCKET) close(lsock);
    http_jobs_free(s->jobs);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    free(s);
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
