/* SPDX-License-Identifier: MIT */
/*
 * http_server.c - the server around the connection engine (src/http_front.c): a fixed pool of
 * [server] threads worker threads runs the route handlers, and a second pool of the same size
 * runs the retrievals that async routes hand off (so a retrieval stuck on its upstream never
 * holds up /health; the pools are src/http_pool.c); ingests and chat turns run in threads of
 * their own. Each request gets a settings snapshot, an X-Request-Id (the client's when sane),
 * the bearer-token check before its body is read, and a count in the metrics by route and
 * status. Shutdown stops accepting (new connections refused, new requests on open ones get
 * 503), interrupts the ingest between documents, waits up to [server] shutdown_timeout for
 * requests in flight and the workers, then stops the engine.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_int.h"
#include "ragd/http.h"
#include "ragd/log.h"
#include "ragd/log_event.h"
#include "ragd/metrics.h"
#include "ragd/util.h"

#define WORKER_LOG_EVERY_S 10

/* A job of a pool: a request to route (run == NULL) or a route's task. Holds a reference to x. */
typedef struct pool_job {
    http_pool_job job; /* first: the pool's run gets it back */
    http_exchange *x;
    http_task_run run;
    void *arg;
} pool_job;

struct http_server {
    http_front *front;   /* listening socket, connections, limits, request framing */
    http_pool *handlers; /* route handlers */
    http_pool *tasks;    /* retrievals handed off by async routes */
    engine *engine;
    const ragd_cfg *cfg; /* the boot configuration: listen address, threads */
    cfg_live *live;      /* snapshots for requests; may be NULL (then cfg) */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int workers;     /* ingest and chat threads alive (waited-for and background jobs) */
    http_jobs *jobs; /* ingest jobs: the running one and recent ones */
    int stopping;    /* http_server_stop has begun: no new ingest starts */
    int in_flight;   /* requests begun and not ended (under mu) */
    int unanswered;  /* requests begun whose reply is not made yet (finish; under mu): a thread
                      * that answered is done with its request though it has yet to let go of
                      * it, which the in-flight count waits for */
};

/* ---- replies ------------------------------------------------------------------------------ */

/* Counts x's reply as made, once. Caller holds s->mu. */
static void answered(http_server *s, http_exchange *x)
{
    if (!x->answered) {
        x->answered = 1;
        s->unanswered--;
    }
}

/* Logs, counts and sends r as x's reply (steals r). */
static void finish(http_exchange *x, http_reply *r)
{
    http_server *s = x->server;
    RAGD_LOG(RAGD_LOG_DEBUG, "http", "%s %s -> %u in %.2f ms request_id=%s", x->method, x->path,
             r->status, util_now_ms() - x->t0, x->request_id);
    metrics_http_request_add(x->route_name ? x->route_name : "other", r->status);
    pthread_mutex_lock(&s->mu);
    if (s->stopping) x->keep_alive = 0; /* "Connection: close" during the drain */
    answered(s, x);
    pthread_mutex_unlock(&s->mu);
    http_exchange_reply(x, r);
}

void http_server_reply(http_exchange *x, http_reply *r)
{
    finish(x, r);
}

/* ---- pools -------------------------------------------------------------------------------- */

static void handle_reply(http_server *s, http_exchange *x, http_reply *r);

/* http_request.header over x's headers. Returns: the value (borrowed from x), or NULL. */
static const char *header_of(void *ctx, const char *name)
{
    return http_exchange_header(ctx, name);
}

/* Routes x and runs its handler (an http_request borrowing x). Returns: the handler's reply,
 * owned by the caller (send it with finish/handle_reply, or free its body and text). */
static http_reply route_run(http_server *s, http_exchange *x)
{
    http_request hr = {.method = x->method,
                       .path = x->path,
                       .id = "",
                       .args = x->args,
                       .arg_count = x->arg_count,
                       .body = x->body,
                       .body_len = x->body_len,
                       .authorized = x->authorized,
                       .engine = s->engine,
                       .cfg = x->cfg,
                       .jobs = s->jobs,
                       .request_id = x->request_id,
                       .header = header_of,
                       .header_ctx = x};
    log_record_request_id_set(x->request_id);
    http_reply r = http_dispatch(&hr, x->allow);
    log_record_request_id_set(NULL);
    return r;
}

/* Runs a job of either pool on a worker, then frees it. */
static void pool_job_run(http_pool_job *pj, size_t worker)
{
    (void)worker;
    pool_job *j = (pool_job *)pj;
    http_exchange *x = j->x;
    http_reply r;
    if (j->run) {
        r = j->run(j->arg);
        finish(x, &r);
    } else {
        r = route_run(x->server, x);
        handle_reply(x->server, x, &r);
    }
    http_exchange_unref(x);
    free(j);
}

/* Queues a job on p (takes a reference to x). Returns: 0, -1 (OOM) or -2 (p is stopping: the
 * loop can still hand a request over while the server shuts down after its drain). */
static int pool_push(http_pool *p, http_exchange *x, const http_reply *task)
{
    pool_job *j = calloc(1, sizeof *j);
    if (j == NULL) return -1;
    j->job.run = pool_job_run;
    j->x = x;
    if (task) {
        j->run = task->task_run;
        j->arg = task->task_arg;
    }
    http_exchange_ref(x);
    if (http_pool_push(p, &j->job) != 0) {
        http_exchange_unref(x);
        free(j);
        return -2;
    }
    return 0;
}

/* ---- threads of their own (ingests, chat turns) -------------------------------------------- */

typedef struct task {
    http_server *server;
    http_exchange *x; /* NULL when detached */
    http_task_run run;
    void *arg;
} task;

static void *task_thread(void *arg)
{
    task *t = arg;
    http_server *s = t->server;
    http_reply reply = t->run(t->arg);
    if (t->x) {
        finish(t->x, &reply);
        http_exchange_unref(t->x);
    } else {
        json_decref(reply.body);
        free(reply.text);
    }
    http_server_worker_leave(s);
    free(t);
    return NULL;
}

/* Starts fn(arg) in a detached thread counted in s->workers, unless the server is stopping
 * (in_drain: also then). Returns: 0, or -1 (*stopping says why). */
static int thread_start(http_server *s, void *(*fn)(void *), void *arg, int in_drain,
                        int *stopping)
{
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&s->mu);
    int prc = -1;
    if (!s->stopping || in_drain) {
        s->workers++;
        prc = pthread_create(&tid, &attr, fn, arg);
        if (prc != 0) s->workers--;
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

/* Whether the event loop may run x's quick task itself: x's connection is the only one open and
 * x the only request in flight (no other client waits on the loop meanwhile, nothing runs in
 * the pools). The hand-off to the pool costs two thread wake-ups (the worker's, then the
 * loop's) of a 0.5 ms request on this VM (bench/NOTES.md, session 8). With other connections
 * open the loop keeps to its own work: their next requests, heads and bodies would wait behind
 * this retrieval, while the pool runs it beside them. */
static int task_inline(http_server *s, http_exchange *x, const http_reply *r)
{
    if (!r->task_quick || r->task_detached || !r->task_in_drain || !http_exchange_alone(x))
        return 0;
    pthread_mutex_lock(&s->mu);
    /* answered ones count no more: their threads are only letting go of them (else the request
     * after a handed-off one would find it still counted, and be handed off too) */
    int alone = s->unanswered == 1 && !s->stopping;
    pthread_mutex_unlock(&s->mu);
    return alone;
}

/* Frees r's body and text (its task is handed on or started) and empties it. */
static void reply_empty(http_reply *r)
{
    json_decref(r->body);
    free(r->text);
    *r = (http_reply){0};
}

/* Hands a reply's task on: quick ones alone in flight run here (task_inline), retrievals to the
 * task pool, others to a thread of their own (x waits for it), detached ones to a thread while
 * r is sent at once. Returns: 1 when x is answered (or will be, later); 0 when r is to be sent
 * now (the task started detached, or could not start: then r is the 503). */
static int task_start(http_server *s, http_exchange *x, http_reply *r)
{
    int stopping = 0;
    if (task_inline(s, x, r)) {
        http_reply answer = r->task_run(r->task_arg);
        reply_empty(r);
        metrics_counter_add(RAGD_METRIC_HTTP_RETRIEVALS_INLINE, 1);
        finish(x, &answer);
        return 1;
    }
    if (!r->task_detached && r->task_in_drain) {
        if (pool_push(s->tasks, x, r) == 0) {
            reply_empty(r);
            return 1;
        }
    } else {
        task *t = calloc(1, sizeof *t);
        if (t != NULL) {
            *t = (task){.server = s, .x = r->task_detached ? NULL : x, .run = r->task_run,
                        .arg = r->task_arg};
            /* read before the start: the thread frees t, maybe before thread_start returns */
            int later = t->x != NULL;
            if (later) http_exchange_ref(x);
            if (thread_start(s, task_thread, t, 0, &stopping) == 0) {
                r->task_run = NULL;
                if (later) reply_empty(r);
                return later;
            }
            if (later) http_exchange_unref(x);
            free(t);
        }
    }
    http_reply why = http_reply_error(RAGD_ERR_UNAVAILABLE, NULL,
                                      stopping ? "ragd is shutting down; no ingest starts"
                                               : "cannot start a worker thread");
    if (r->task_drop) r->task_drop(r->task_arg, &why);
    reply_empty(r);
    *r = why;
    return 0;
}

/* Sends a handler's reply, or starts what it handed off. */
static void handle_reply(http_server *s, http_exchange *x, http_reply *r)
{
    if (r->chat) { /* a checked chat turn: its thread answers or streams */
        http_chat *turn = r->chat;
        r->chat = NULL;
        json_decref(r->body);
        r->body = NULL;
        if (http_chat_start(s, x, turn, r)) return;
    }
    if (r->task_run) {
        if (task_start(s, x, r)) return;
    }
    finish(x, r);
}

/* ---- the front's calls -------------------------------------------------------------------- */

int http_server_begin(http_server *s, http_exchange *x)
{
    x->server = s;
    x->cfg = s->live ? cfg_live_acquire(s->live) : s->cfg;
    x->route_name = http_route_name_of(x->path);
    const char *rid = http_exchange_header(x, "X-Request-Id");
    if (log_record_request_id_valid(rid))
        snprintf(x->request_id, sizeof x->request_id, "%s", rid);
    else
        log_record_request_id_new(x->request_id);
    pthread_mutex_lock(&s->mu);
    s->in_flight++;
    s->unanswered++;
    metrics_in_flight_add(1);
    int stopping = s->stopping;
    pthread_mutex_unlock(&s->mu);
    http_reply r;
    if (stopping) { /* a new request on a kept-alive connection during shutdown */
        r = http_reply_error(RAGD_ERR_UNAVAILABLE, NULL,
                             "ragd is shutting down; retry on another instance");
        finish(x, &r);
        return 1;
    }
    x->authorized = http_auth_ok(x->cfg, http_exchange_header(x, "Authorization"));
    /* Routes that need the token are refused before any of the body is read. */
    const char *id = NULL;
    const http_route *route = http_route_find(x->method, x->path, &id, x->allow);
    if (!x->authorized && (route == NULL || !(route->flags & HTTP_ROUTE_PUBLIC))) {
        r = http_reply_error(RAGD_ERR_UNAUTHORIZED, NULL,
                             "missing or wrong bearer token (Authorization: Bearer <token>)");
        finish(x, &r);
        return 1;
    }
    return 0;
}

void http_server_run(http_server *s, http_exchange *x)
{
    const char *id = NULL;
    char allow[HTTP_ALLOW_MAX];
    const http_route *route = http_route_find(x->method, x->path, &id, allow);
    /* Async routes' handlers only check the request and hand their work on, and 404/405 are
     * answered at once: here, on the event loop. The others run in the handler pool. */
    if (route == NULL || (route->flags & HTTP_ROUTE_ASYNC)) {
        http_reply r = route_run(s, x);
        handle_reply(s, x, &r);
        return;
    }
    int pushed = pool_push(s->handlers, x, NULL);
    if (pushed != 0) {
        http_reply r = pushed == -2 ? http_reply_error(RAGD_ERR_UNAVAILABLE, NULL,
                                                       "ragd is shutting down")
                                    : http_reply_error(RAGD_ERR_NOMEM, NULL, "out of memory");
        finish(x, &r);
    }
}

void http_server_end(http_server *s, http_exchange *x)
{
    pthread_mutex_lock(&s->mu);
    s->in_flight--;
    answered(s, x); /* one the front answered itself (a timeout, a refusal), or a stream */
    metrics_in_flight_add(-1);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    if (s->live && x->cfg) cfg_live_release(x->cfg);
}

/* ---- life cycle --------------------------------------------------------------------------- */

static void server_free(http_server *s)
{
    http_pool_stop(s->handlers);
    http_pool_stop(s->tasks);
    http_front_free(s->front); /* its loop may push until here: refused, answered 503 */
    http_pool_free(s->handlers);
    http_pool_free(s->tasks);
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
    if (s->jobs == NULL) {
        server_free(s);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    ragd_rc rc = http_front_new(cfg, live, &s->front, err);
    if (rc != RAGD_OK) {
        server_free(s);
        return rc;
    }
    size_t n = (size_t)(cfg->threads > 0 ? cfg->threads : 1);
    s->handlers = http_pool_new(n);
    s->tasks = s->handlers ? http_pool_new(n) : NULL;
    if (s->tasks == NULL) {
        server_free(s);
        return ragd_err_set(err, RAGD_ERR_IO, "cannot start the HTTP worker threads");
    }
    rc = http_front_run(s->front, s, err);
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
    /* Stop accepting: new connections are refused at once; requests begun on open connections
     * are finished (new requests on them get a 503 and are closed). */
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
    int busy = http_pool_wait_idle(s->handlers, &deadline) +
               http_pool_wait_idle(s->tasks, &deadline);
    if (workers > 0 || busy > 0) {
        /* A worker still uses the engine: neither it nor the server can be freed. */
        RAGD_LOG(RAGD_LOG_ERROR, "http", "shutdown deadline (%d s) passed with the ingest or a "
                 "request still running", timeout_s);
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
