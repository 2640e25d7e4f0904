/* SPDX-License-Identifier: MIT */
/*
 * http_int.h - the HTTP module's internals, shared by its files and its unit tests, not by the
 * rest of ragd: the request and reply types, the handler type, the route table (src/http_router.c,
 * the one place a route exists), the field specs that validate request bodies
 * (src/http_fields.c), the one ragd_rc -> HTTP status/code mapping (src/http_error.c), the ingest
 * job table (src/http_jobs.c), and the handlers, one file per concern (http_health.c,
 * http_retrieve.c, http_ingest.c, http_documents.c, http_jobs.c).
 *
 * Adding a route: write `http_reply handle_x(const http_request *req)` in its own file, declare it
 * below under "handlers", and add one row to the table in src/http_router.c. Auth (every route
 * but the HTTP_ROUTE_PUBLIC ones needs the bearer token when one is set), 404/405 with Allow,
 * HEAD for GET, the metrics label, the GET / endpoint list and the JSON error shape all follow
 * from the row.
 */
#ifndef RAGD_HTTP_INT_H
#define RAGD_HTTP_INT_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "ragd/cfg.h"
#include "ragd/cfg_snapshot.h"
#include "ragd/engine.h"
#include "ragd/http.h"
#include "ragd/log_event.h"
#include "ragd/util.h"

typedef struct http_jobs http_jobs;

/* ---- request and reply -------------------------------------------------------------------- */

#define HTTP_ARGS_MAX 16   /* query arguments kept per request; more are ignored */
#define HTTP_ALLOW_MAX 64  /* bytes of an Allow header value */

typedef struct http_arg {
    const char *name, *value; /* borrowed for the request's life */
} http_arg;

/* One request as a handler sees it. Everything is borrowed for the handler's call. */
typedef struct http_request {
    const char *method;
    const char *path;   /* without the query string */
    const char *id;     /* prefix routes: the non-empty rest of the path ("/jobs/<id>"); else "" */
    const http_arg *args;
    size_t arg_count;
    const char *body;   /* may be NULL */
    size_t body_len;
    int authorized;     /* the bearer token matched, or none is configured */
    engine *engine;
    const ragd_cfg *cfg; /* the configuration snapshot this request runs under */
    http_jobs *jobs;    /* may be NULL (unit tests): /ingest and /jobs then answer 503 */
    const char *request_id;
    /* Request headers: header(header_ctx, name) returns a value (borrowed for the request's
     * life) or NULL; header may be NULL (unit tests): no headers. Read with
     * http_request_header. */
    const char *(*header)(void *header_ctx, const char *name);
    void *header_ctx;
} http_request;

/* Returns: the value of query argument name (borrowed), or NULL when absent. */
const char *http_request_arg(const http_request *req, const char *name);

/* Returns: the value of request header name (borrowed), or NULL when absent. */
const char *http_request_header(const http_request *req, const char *name);

struct http_reply;
/* Work a handler hands to a worker thread (see http_reply.task_run). */
typedef struct http_reply (*http_task_run)(void *arg);
/* Frees a task's arg when its run never happens; why is the reply the client gets instead. */
typedef void (*http_task_drop)(void *arg, const struct http_reply *why);

typedef struct http_reply {
    unsigned status;
    json_t *body;      /* new reference, owned by the reply */
    const char *allow; /* set for 405; borrowed (the router's buffer) until the reply is sent */
    char *text;               /* instead of body: a text body, owned (free()); e.g. /metrics */
    const char *content_type; /* static; the text body's type */
    /* Asynchronous routes only (HTTP_ROUTE_ASYNC): when task_run is set, the server runs
     * task_run(task_arg) in a worker thread. With task_detached 0 the connection waits (suspended,
     * the pool keeps serving) and the task's reply is sent; with 1 this reply is sent at once and
     * the task's reply is dropped. When no worker can start (shutting down), task_drop(task_arg,
     * &the 503) runs instead. The task owns task_arg. */
    http_task_run task_run;
    http_task_drop task_drop;
    void *task_arg;
    int task_detached;
    int task_in_drain; /* 1: the task may start while the server drains (a request already in
                        * flight finishing, e.g. a retrieval); 0: refused with a 503 then */
    int task_quick;    /* 1: the task waits on nothing outside the process and its work is
                        * bounded (a quick retrieval): with nothing else in flight the event
                        * loop runs it itself, saving the hand-off's two thread wake-ups */
    /* POST /v1/chat/completions only (src/http_chat.c): a checked chat turn the server starts
     * with http_chat_start once the handler returns (a worker thread, the connection suspended
     * until the answer or its stream begins). Owned by the reply: a reply that is not started
     * drops it with http_chat_release. */
    struct http_chat *chat;
} http_reply;

/* ---- route table (src/http_router.c) ------------------------------------------------------ */

typedef http_reply (*http_handler)(const http_request *req);

#define HTTP_ROUTE_PUBLIC 1u /* answered without the bearer token (the handler sees authorized) */
#define HTTP_ROUTE_PREFIX 2u /* path is a prefix followed by a non-empty id: "/jobs/" + id */
#define HTTP_ROUTE_ASYNC 4u  /* the handler may hand its work to a worker thread (task_run) */

typedef struct http_route {
    const char *method; /* one method; GET rows also answer HEAD */
    const char *path;   /* exact path (one trailing slash tolerated), or a prefix */
    const char *name;   /* for logs, metrics and GET /: "/documents/{id}" */
    unsigned flags;
    http_handler handler;
} http_route;

/* Finds the route of method + path (a query string is ignored). Returns: the row (static), with
 * *id pointing into path for prefix routes ("" otherwise); NULL when no row matches: then *allow
 * holds the path's methods ("GET, POST", for 405) or "" for an unknown path (404). */
const http_route *http_route_find(const char *method, const char *path, const char **id,
                                  char allow[HTTP_ALLOW_MAX]);

/* Returns: the metrics/log name of path's route ("/retrieve"), "other" when none; static. */
const char *http_route_name_of(const char *path);

/* Routes and answers req (req->id is set here): 401 when the route (or an unknown path) needs
 * the token and req->authorized is 0, 404 for an unknown path, 405 with Allow for a known path
 * and another method, else the row's handler. allow: the buffer a 405's Allow points into; it
 * must live until the reply is sent. Returns: the reply (free its body/text, or send it). */
http_reply http_dispatch(http_request *req, char allow[HTTP_ALLOW_MAX]);

/* Returns: GET /'s endpoint list ["GET /health", ...] built from the table; new reference. */
json_t *http_route_list_json(void);

/* ---- errors (src/http_error.c) ------------------------------------------------------------ */

/* Builds an error reply {"error": {"code", "message"}} for rc: the one place where ragd_rc
 * becomes an HTTP status and an API error code. code_override (one of the HTTP-only codes in the
 * table: "invalid_json", "method_not_allowed", ...) may be NULL. message may hold any bytes: it
 * is cut to fit and made valid UTF-8. */
http_reply http_reply_error(ragd_rc rc, const char *code_override, const char *message);

/* http_reply_error with a printf-style message. */
http_reply http_reply_errorf(ragd_rc rc, const char *code_override, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Returns: the HTTP status an error code is sent with (400 for an unknown code). */
unsigned http_error_status(const char *code);

/* ---- request bodies: field specs (src/http_fields.c) -------------------------------------- */

typedef enum http_field_type {
    HTTP_FIELD_STRING = 1, /* bounds: byte length */
    HTTP_FIELD_INT,        /* bounds: value */
    HTTP_FIELD_NUMBER,     /* bounds: value; finite */
    HTTP_FIELD_BOOL,
    HTTP_FIELD_OBJECT,
    HTTP_FIELD_STRINGS,    /* an array of strings; bounds: element count */
    HTTP_FIELD_ANY         /* any JSON value: the handler checks it */
} http_field_type;

#define HTTP_FIELD_REQUIRED 1u
#define HTTP_FIELD_NONBLANK 2u /* a string with a character other than white space */

typedef struct http_field {
    const char *name;
    http_field_type type;
    unsigned flags;
    double min, max;            /* min == max == 0: unbounded */
    const char *const *choices; /* STRING: the allowed values, NULL-terminated; may be NULL */
    int (*max_of)(const ragd_cfg *cfg); /* INT: the upper bound, read from the config */
} http_field;

/* Parses a request body that must be a JSON object. Returns: new reference, or NULL with *reply
 * set (400 invalid_json / invalid_request). */
json_t *http_body_object(const char *body, size_t len, http_reply *reply);

/* Checks obj against the n fields of spec: unknown keys refused (the message lists the known
 * ones), required ones present, each present one of its type, within its bounds and choices.
 * prefix is put before field names in messages ("filters.", "documents[2]."; may be ""). cfg may
 * be NULL when no field uses max_of. Returns: 0, or -1 with *reply set to the 400. */
int http_fields_check(json_t *obj, const http_field *spec, size_t n, const char *prefix,
                      const ragd_cfg *cfg, http_reply *reply);

/* ---- request heads (src/http_head.c) ------------------------------------------------------ */

#define HTTP_HEAD_MAX 16384   /* bytes of a request head (request line and header fields) */
#define HTTP_URI_MAX 8192     /* bytes of a request target */
#define HTTP_HEADERS_MAX 100  /* header fields in a head */

typedef struct http_head {
    size_t head_len;          /* bytes up to and with the empty line */
    size_t method_len;
    long long content_length; /* -1: none */
    int chunked;
    int http11;
    int expect_continue;      /* Expect: 100-continue: the body follows the daemon's 100 */
    /* when refused: */
    unsigned status;
    const char *code;         /* static: a code of the error table */
    char message[160];
} http_head;

/* Checks the request head at the start of buf[0..len) (the bytes received so far). Bodies over
 * max_body announced by Content-Length are refused (413). Returns: 1 when a complete head passed
 * (h->head_len etc. set); 0 when the head is not complete yet and nothing is wrong so far; -1 when
 * it is refused (h->status, h->code, h->message set). */
int http_head_check(const char *buf, size_t len, size_t max_body, http_head *h);

/* Checks the framing of a chunked body's first len bytes (chunk sizes, line ends, the last chunk
 * and trailers). Returns: 1 when the body is complete and well framed; 0 when nothing is wrong so
 * far but it continues past len; -1 when it is malformed. */
int http_chunked_check(const char *buf, size_t len);

/* http_chunked_check that also measures and decodes: *data_len is the body's decoded length so
 * far (all of it when complete), *consumed (when complete) the bytes of buf the chunked body
 * takes, trailers and the final empty line included; with out non-NULL, the decoded data is
 * appended to it (-1 also when that fails). */
int http_chunked_parse(const char *buf, size_t len, size_t *consumed, size_t *data_len,
                       util_buf *out);

/* Where a chunked body's scan can go on: offset (in the body's bytes) of the first chunk not yet
 * complete, and the decoded length of the chunks before it. Zero: the body's start. */
typedef struct http_chunked_pos {
    size_t offset, decoded;
} http_chunked_pos;

/* http_chunked_parse from *pos instead of the start, for a body that arrives in pieces: each
 * call walks only what came since the last whole chunk, so a body sent in many tiny chunks
 * costs linear time, not quadratic. *pos moves past every whole chunk seen; buf must hold the
 * same bytes as before up to pos->offset. Returns and fills what http_chunked_parse does (with
 * out, only the chunks from *pos on are appended). */
int http_chunked_resume(const char *buf, size_t len, http_chunked_pos *pos, size_t *consumed,
                        size_t *data_len, util_buf *out);

/* ---- the connection engine (src/http_front.c) and its requests (src/http_server.c) ------- */

/* One request in flight: made by the front when its head arrived, answered through the
 * http_exchange_* calls below from any thread. */
typedef struct http_exchange http_exchange;
typedef struct http_front http_front;

typedef struct http_header {
    const char *name, *value; /* borrowed from the exchange (its copy of the head) */
} http_header;

struct http_exchange {
    /* the request, set by the front before http_server_begin; read-only afterwards */
    char *head;                /* owned copy of the head, split in place */
    const char *method;
    char *path;                /* percent-decoded, without the query string */
    http_arg args[HTTP_ARGS_MAX];
    size_t arg_count;
    http_header headers[HTTP_HEADERS_MAX];
    size_t header_count;
    char *body;                /* owned; NULL when none */
    size_t body_len;
    int head_request;          /* HEAD: the reply goes without its body */
    int http11;
    int keep_alive;            /* the client wants the connection kept after the reply */
    double t0;
    /* the server's, set in http_server_begin */
    http_server *server;
    const ragd_cfg *cfg;       /* the snapshot the request runs under */
    const char *route_name;    /* static */
    int authorized;
    int probe_on_eof;          /* a long turn: the front probes a client that sends EOF */
    char request_id[RAGD_REQUEST_ID_MAX];
    char allow[HTTP_ALLOW_MAX];
    int answered;              /* its reply is made (under the server's mu) */
    /* the answer, under the front's lock */
    http_front *front;
    int refs;
    int has_reply;             /* reply is set and not yet taken by the front */
    int reply_json;            /* reply.text is the JSON body, serialised by the answering thread */
    http_reply reply;
    int stream_state;          /* 0 none, 1 begun (head not yet sent), 2 head sent */
    char stream_type[64];
    util_buf stream;           /* stream bytes not yet taken by the front */
    int stream_done;           /* the producer wrote its last byte */
    int client_gone;           /* the connection is lost: nothing more is delivered */
    /* The answering thread's own write of its reply (saves the loop's wake-up on the way):
     * direct_fd is the connection's socket while it may (set by the loop at dispatch when
     * nothing is waiting to be written before this reply; -1 otherwise, and once revoked or
     * used); direct_sending while it writes (the loop waits for its end before it closes the
     * socket or writes itself); reply_raw: reply.text is the whole formatted reply (raw_len
     * bytes), of which raw_sent went out already. */
    int direct_fd;
    int direct_close;          /* the reply closes the connection (as decided at dispatch) */
    int direct_sending;
    int direct_waiter;         /* the loop waits for direct_sending's end */
    int reply_raw;
    size_t raw_len, raw_sent;
    int queued;                /* on the front's ready list */
    http_exchange *next_ready;
    void *conn;                /* the front's connection; front thread only */
};

/* Answers x (steals reply; its task fields are ignored). Any thread; once per exchange. */
void http_exchange_reply(http_exchange *x, http_reply *reply);

/* Starts a 200 streamed reply of content_type (static or copied) on x. Any thread.
 * Returns: 0, or -1 when the client is gone. */
int http_exchange_stream_begin(http_exchange *x, const char *content_type);

/* Queues len bytes of x's stream; last ends it. Returns: 0, or -1 when the client is gone. */
int http_exchange_stream_write(http_exchange *x, const char *data, size_t len, int last);

/* Returns: 1 when x's client is gone (its connection closed or failed). Any thread. */
int http_exchange_client_gone(http_exchange *x);

/* Returns: 1 when called on the event loop and x's connection is the only one open (nothing
 * else the loop would serve while it is busy with x), else 0. Any thread. */
int http_exchange_alone(const http_exchange *x);

/* Returns: the value of request header name in x (case-insensitive; borrowed), or NULL. */
const char *http_exchange_header(const http_exchange *x, const char *name);

/* Takes / drops a reference to x; the last drop frees it (and ends it for http_server_end). */
void http_exchange_ref(http_exchange *x);
void http_exchange_unref(http_exchange *x);

/* Raises the open-file limit and binds cfg's listen address; max_body_bytes is read from live's
 * current snapshot (live may be NULL: cfg's). Returns: *out new (free with http_front_free), not
 * accepting until http_front_run. */
ragd_rc http_front_new(const ragd_cfg *cfg, cfg_live *live, http_front **out, ragd_err *err);

/* Returns: the port f listens on (the one bound, also when the configured port was 0). */
int http_front_port(const http_front *f);

/* Starts the event loop thread for server s (borrowed until http_front_free).
 * Returns: RAGD_OK, or an error (nothing started). */
ragd_rc http_front_run(http_front *f, http_server *s, ragd_err *err);

/* Stops accepting: closes the listening socket (new connections are refused) and the connections
 * waiting for a request; requests in flight go on. Idempotent. */
void http_front_quiesce(http_front *f);

/* Stops the event loop, closes every connection, frees f. f may be NULL. */
void http_front_free(http_front *f);

/* The server's side, called by the front on its thread:
 * http_server_begin: a head arrived (x's request fields set, no body yet): settings snapshot,
 * request id, route, auth; counted in flight. Returns: 0 to go on (read the body, then
 * http_server_run), or 1 when x was answered already (refused: 401, 413, 503). */
int http_server_begin(http_server *s, http_exchange *x);
/* The request is complete (x->body set): runs its route, here or in a worker. */
void http_server_run(http_server *s, http_exchange *x);
/* Logs and counts r (by x's route and r's status) and sends it as x's reply (steals r). Any
 * thread. */
void http_server_reply(http_exchange *x, http_reply *r);
/* x is freed: no longer in flight. */
void http_server_end(http_server *s, http_exchange *x);

/* ---- worker pools (src/http_pool.c) ------------------------------------------------------- */
typedef struct http_pool http_pool;

/* A job of a pool, embedded in the caller's own struct: the pool allocates nothing per job. run
 * is called once on a worker, with the worker's index (0..n-1); it may free job. */
typedef struct http_pool_job http_pool_job;
struct http_pool_job {
    void (*run)(http_pool_job *job, size_t worker);
    http_pool_job *next; /* the pool's */
};

/* Starts n (>= 1) workers. An idle push wakes the most recently idle worker. Returns: new pool
 * (stop with http_pool_stop, then free with http_pool_free), or NULL (nothing left running). */
http_pool *http_pool_new(size_t n);
/* Queues job (borrowed until its run is called). Returns: 0, or -2 when p is stopping or NULL
 * (the front can still hand a request over while the server shuts down after its drain). */
int http_pool_push(http_pool *p, http_pool_job *job);
/* Waits until p has no job queued or running and every worker waits for one, or until the
 * CLOCK_REALTIME deadline. Returns: jobs queued or running (0 when idle). */
int http_pool_wait_idle(http_pool *p, const struct timespec *deadline);
/* Stops p's workers after the jobs queued (they run); later pushes get -2. p may be NULL. */
void http_pool_stop(http_pool *p);
/* Frees a stopped pool. p may be NULL. */
void http_pool_free(http_pool *p);

/* ---- handlers (one file per concern) ------------------------------------------------------ */

/* src/http_health.c */
http_reply http_handle_root(const http_request *req);
http_reply http_handle_health(const http_request *req);
http_reply http_handle_metrics(const http_request *req);
/* src/http_retrieve.c */
http_reply http_handle_retrieve(const http_request *req);
http_reply http_handle_context(const http_request *req);
/* Check a body as POST /retrieve (and /context) and POST /documents do, without running it (for
 * the fuzz targets). Returns: 0 when accepted; -1 with *reply set to the 4xx. */
int http_retrieve_body_check(const ragd_cfg *cfg, const char *body, size_t len, http_reply *reply);
int http_documents_body_check(const ragd_cfg *cfg, const char *body, size_t len,
                              http_reply *reply);
/* src/http_ingest.c */
http_reply http_handle_ingest(const http_request *req);
/* src/http_jobs.c */
http_reply http_handle_job(const http_request *req);
/* src/http_documents.c */
http_reply http_handle_documents_post(const http_request *req);
http_reply http_handle_documents_list(const http_request *req);
http_reply http_handle_document_get(const http_request *req);
http_reply http_handle_document_delete(const http_request *req);
/* src/http_collections.c */
http_reply http_handle_collections_list(const http_request *req);
http_reply http_handle_collection_delete(const http_request *req);

/* Checks a collection name given in a query string (?collection=; NULL: "default").
 * Returns: 0, or -1 with *reply set to the 400. (src/http_collections.c) */
int http_collection_arg(const char *arg, http_reply *reply);

/* Returns: 1 when v is a JSON string naming a valid collection (engine_collection_valid, no
 * embedded NUL). (src/http_collections.c) */
int http_collection_json_ok(json_t *v);

/* The rule a collection name follows, for error messages. */
#define HTTP_COLLECTION_RULE                                                                       \
    "a collection name is 1..64 ASCII letters, digits, '_', '-' or '.', not starting with '.'"

/* src/http_chat.c */
http_reply http_handle_chat(const http_request *req);

/* ---- jobs (src/http_jobs.c) ---------------------------------------------------------------- */
#define HTTP_JOB_ID_MAX 40

/* Returns: a new empty table (free with http_jobs_free), or NULL on OOM. */
http_jobs *http_jobs_new(void);
void http_jobs_free(http_jobs *j);

/* Registers a running job. Fails with RAGD_ERR_BUSY when one is running, with its id in id.
 * Returns: RAGD_OK and the new job's id in id. */
ragd_rc http_jobs_start(http_jobs *j, const char *path, int reset, int wait,
                        char id[HTTP_JOB_ID_MAX], ragd_err *err);

/* Records progress / the final reply (its body is copied) of job id. */
void http_jobs_progress(http_jobs *j, const char *id, const engine_ingest_progress *p);
void http_jobs_finish(http_jobs *j, const char *id, const http_reply *reply);

/* Returns: the job as JSON (new reference), or NULL when there is no such job. */
json_t *http_jobs_json(http_jobs *j, const char *id);

/* ---- POST /ingest (src/http_ingest.c) ------------------------------------------------------- */
typedef struct http_ingest_req {
    char *path; /* the real path (inside an allowed root); owned */
    int reset;
    int wait;   /* default 1 */
    char **include; /* owned; NULL when the request gave none */
    size_t include_count;
    char **exclude;
    size_t exclude_count;
    size_t max_file_bytes; /* [ingest] max_file_bytes of the request's snapshot (live) */
    char *collection; /* owned; NULL: "default" */
} http_ingest_req;

/* Parses and checks a POST /ingest body: fields, globs, and that the path resolves inside the
 * allowed roots (403 otherwise; 404 for a missing path inside them). Returns: 0 and *out (free
 * with http_ingest_req_free), or -1 with *reply set. */
int http_ingest_req_parse(const ragd_cfg *cfg, const char *body, size_t len, http_ingest_req *out,
                          http_reply *reply);
void http_ingest_req_free(http_ingest_req *r);

/* Runs the ingest of job job_id, recording its progress and result in jobs. */
http_reply http_ingest_req_run(engine *e, http_jobs *jobs, const char *job_id,
                               const http_ingest_req *r);

/* Returns: 1 if the Authorization header value carries cfg's bearer token (constant-time
 * compare), or no token is configured; 0 otherwise. header may be NULL. */
int http_auth_ok(const ragd_cfg *cfg, const char *header);

/* ---- reranking in answers and /health (src/http_rerank.c) --------------------------------- */
/* Adds "rerank" (requested, applied, provider..., fallback, error, ms, candidates, cache_hits) to
 * the answer object o, and "rerank_score" (null when not reranked) to each of results' items. */
void http_rerank_answer(const engine_answer *a, json_t *results, json_t *o);
/* Adds "reranker" (provider, model, calls, failures, timeouts, cache, tokens, spend, last call)
 * to a /health body. */
void http_rerank_health(const engine_stats *s, json_t *body);

/* ---- the chat endpoint's connection handling (src/http_chat.c) ------------------------------ */
typedef struct http_chat http_chat;

/* Counts a worker thread of s that uses the engine (the shutdown waits for it).
 * Returns: 0, or -1 when the server is stopping (nothing counted). */
int http_server_worker_enter(http_server *s);
void http_server_worker_leave(http_server *s);

/* Starts the chat turn c (steals it) for exchange x: a worker thread runs it and answers x (a
 * JSON reply, or a server-sent events stream). Returns: 1, or 0 with *reply set (no worker
 * could start) and c released. */
int http_chat_start(http_server *s, http_exchange *x, http_chat *c, http_reply *reply);

/* Frees a turn that was never started. c may be NULL. */
void http_chat_release(http_chat *c);

#endif
