/* SPDX-License-Identifier: MIT */
/*
 * http_front.c - ragd's HTTP/1.1 connection engine: one event-loop thread (epoll) owns the
 * listening socket and every client connection. It accepts under the connection limits
 * ([server] max_connections, max_connections_per_ip: at a limit the connection that has waited
 * longest without a request - a kept-alive idle one, or one still waiting for its head - is
 * closed to make room, else the new one gets 503 too_many_connections), reads every request
 * head of a connection through the checks of src/http_head.c (malformed heads, conflicting
 * Content-Length, unsupported Transfer-Encoding, over-long URIs and heads: a JSON 4xx), reads the
 * body by Content-Length or chunked under [server] max_body_bytes (answering "Expect:
 * 100-continue"), and holds the head and body to [server] request_timeout from the request's
 * first byte (408 JSON when they do not come). A complete request goes to src/http_server.c,
 * whose worker threads answer it through the http_exchange_* calls; the reply is written here,
 * replies in request order (keep-alive and pipelining), or, when nothing else is queued on the
 * connection and few requests are being answered, by the answering thread itself (the client
 * does not wait for the loop's wake-up; the loop finishes a partial write). A client's
 * end-of-file after a complete request does not cancel its reply: the reply is written, then
 * the connection closed. Idle kept-alive connections are closed after [server]
 * connection_timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "http_int.h"
#include "ragd/log.h"
#include "ragd/log_event.h"
#include "ragd/metrics.h"
#include "ragd/util.h"

#define READ_CHUNK 65536
#define HEAD_LOOK_MAX (HTTP_HEAD_MAX + 16384) /* bytes looked at for a head */
#define PIPELINE_MAX (HTTP_HEAD_MAX + 65536) /* input buffered while a request is answered */
#define LINGER_MS 2000                       /* reading a refused client's rest before closing */
#define IP_BUCKETS 1024
#define LINGER_REFUSED_MAX 256 /* refused connections closing at a time (else closed at once) */
#define DIRECT_BUSY_MAX 2      /* requests being answered, at most, for a reply's own write */

typedef struct ip_count {
    unsigned char key[16];
    int count;
    struct ip_count *next;
} ip_count;

enum conn_state {
    C_HEAD = 0, /* waiting for (the rest of) a request head */
    C_BODY,     /* reading a request body */
    C_BUSY,     /* the request is being answered */
    C_CLOSING   /* refused or done: our side shut, the client's rest read and dropped */
};

/* L_WRITE: a last reply still being written to a slow reader (closed when it makes no progress
 * for [server] connection_timeout) */
enum conn_list { L_WAIT = 0, L_IDLE, L_BUSY, L_CLOSING, L_WRITE, L_COUNT };

typedef struct conn {
    int fd;
    unsigned char key[16];
    int state;
    int list;          /* enum conn_list */
    double deadline;   /* ms: request_timeout, idle timeout or linger; none on L_BUSY */
    int counted;       /* counted in the limits */
    int eof;           /* the client shut its side */
    int read_paused;   /* input left in the kernel while a request is answered */
    int close_after;   /* close once the current reply is written */
    util_buf in;       /* received and not consumed */
    util_buf out;      /* to write */
    size_t out_off;
    http_exchange *x;  /* the request being read or answered */
    int chunked;       /* the current body's framing */
    size_t body_want;  /* Content-Length */
    http_chunked_pos chunk_pos; /* how far the current chunked body's framing is checked */
    int probed;        /* sent the interim 100 that tells a half-close from a hang-up */
    int dead;          /* closed during an event batch; freed after it */
    int wrote_for_x;   /* bytes of x's answer went out */
    struct conn *prev, *next;
} conn;

typedef struct conn_list_head {
    conn *head, *tail;
    size_t count;
} conn_list_head;

struct http_front {
    int listen_fd;
    int epoll_fd;
    int wake_fd; /* eventfd: answers ready, quiesce or stop */
    pthread_t thread;
    int thread_started;
    http_server *server;
    size_t max_body; /* when live is NULL */
    cfg_live *live;
    int max_total, max_per_ip;
    int request_timeout_ms, idle_timeout_ms;
    conn_list_head lists[L_COUNT]; /* loop thread only */
    int total;                      /* counted connections; loop thread only */
    int closing_uncounted;
    ip_count *ips[IP_BUCKETS];
    int in_batch;  /* handling a batch of events: closed connections wait in graveyard */
    conn *graveyard;
    pthread_mutex_t mu; /* guards what follows and every exchange's answer fields */
    pthread_cond_t cond;
    pthread_cond_t direct_done; /* an answering thread's own write ended (direct_waiter) */
    http_exchange *ready_head, *ready_tail;
    int quiesce_req, quiesced, stop_req;
};

static const char LISTEN_TAG[] = "listen", WAKE_TAG[] = "wake";
static __thread int on_loop_thread;

/* ---- accounting --------------------------------------------------------------------------- */

static void addr_key(const struct sockaddr *sa, unsigned char key[16])
{
    memset(key, 0, 16);
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        key[10] = key[11] = 0xff; /* v4-mapped, so both families share one table */
        memcpy(key + 12, &in->sin_addr, 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

static unsigned key_bucket(const unsigned char key[16])
{
    unsigned h = 2166136261u;
    for (int i = 0; i < 16; i++) h = (h ^ key[i]) * 16777619u;
    return h % IP_BUCKETS;
}

/* Returns: the count node of key (created when create), or NULL. */
static ip_count *ip_find(http_front *f, const unsigned char key[16], int create)
{
    ip_count **slot = &f->ips[key_bucket(key)];
    for (ip_count *c = *slot; c; c = c->next)
        if (memcmp(c->key, key, 16) == 0) return c;
    if (!create) return NULL;
    ip_count *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    memcpy(c->key, key, 16);
    c->next = *slot;
    *slot = c;
    return c;
}

static void ip_release(http_front *f, const unsigned char key[16])
{
    ip_count **slot = &f->ips[key_bucket(key)];
    for (ip_count *c = *slot, *prev = NULL; c; prev = c, c = c->next) {
        if (memcmp(c->key, key, 16) != 0) continue;
        if (--c->count <= 0) {
            if (prev) prev->next = c->next;
            else *slot = c->next;
            free(c);
        }
        break;
    }
}

/* ---- lists -------------------------------------------------------------------------------- */

static void list_unlink(http_front *f, conn *c)
{
    conn_list_head *l = &f->lists[c->list];
    if (c->prev) c->prev->next = c->next;
    else l->head = c->next;
    if (c->next) c->next->prev = c->prev;
    else l->tail = c->prev;
    c->prev = c->next = NULL;
    l->count--;
}

/* Appends c (on no list) to the end of list (deadlines on a list grow with the order of
 * insertion). */
static void list_append(http_front *f, conn *c, int list, double deadline)
{
    c->list = list;
    c->deadline = deadline;
    conn_list_head *l = &f->lists[list];
    c->prev = l->tail;
    if (l->tail) l->tail->next = c;
    else l->head = c;
    l->tail = c;
    l->count++;
}

/* Moves c to the end of list. */
static void list_move(http_front *f, conn *c, int list, double deadline)
{
    list_unlink(f, c);
    list_append(f, c, list, deadline);
}

static size_t max_body_now(http_front *f)
{
    if (f->live == NULL) return f->max_body;
    const ragd_cfg *now = cfg_live_acquire(f->live);
    size_t n = now->max_body_bytes;
    cfg_live_release(now);
    return n;
}

/* ---- exchanges ---------------------------------------------------------------------------- */

static void wake(http_front *f)
{
    uint64_t one = 1;
    ssize_t w = write(f->wake_fd, &one, sizeof one);
    (void)w;
}

/* Puts x on the ready list (once), taking a reference. Under f->mu. */
static void ready_push(http_front *f, http_exchange *x)
{
    if (x->queued) return;
    x->queued = 1;
    x->refs++;
    x->next_ready = NULL;
    /* The loop empties the list (ready_run, until it finds it empty) before it waits again, so
     * only the push onto an empty list has to wake it: under load, answers finishing together
     * cost one eventfd write, not one each. */
    int was_empty = f->ready_head == NULL;
    if (f->ready_tail) f->ready_tail->next_ready = x;
    else f->ready_head = x;
    f->ready_tail = x;
    if (!on_loop_thread && was_empty) wake(f);
}

void http_exchange_ref(http_exchange *x)
{
    pthread_mutex_lock(&x->front->mu);
    x->refs++;
    pthread_mutex_unlock(&x->front->mu);
}

static void exchange_free(http_exchange *x)
{
    http_server_end(x->server, x);
    free(x->head);
    free(x->body);
    json_decref(x->reply.body);
    free(x->reply.text);
    util_buf_free(&x->stream);
    free(x);
}

void http_exchange_unref(http_exchange *x)
{
    if (x == NULL) return;
    pthread_mutex_lock(&x->front->mu);
    int left = --x->refs;
    pthread_mutex_unlock(&x->front->mu);
    if (left == 0) exchange_free(x);
}

static void reply_format(util_buf *out, const http_exchange *x, http_reply *r, int close);

/* Writes x's reply (reply->text, the JSON body) to its connection from the answering thread,
 * when the loop allowed it at dispatch, so that the client has it without waiting for the loop's
 * wake-up; what the socket does not take at once, and the bookkeeping, stay the loop's.
 * Under f->mu on entry and on return (released while formatting and writing). Returns: 1 when
 * x->reply now holds the formatted reply (reply_raw; *reply stolen), 0 when not tried or out of
 * memory (then reply->text is gone and the loop answers 500, as it would have). */
static int reply_direct(http_front *f, http_exchange *x, http_reply *reply)
{
    if (x->direct_fd < 0 || on_loop_thread || reply->text == NULL || reply->body) return 0;
    int fd = x->direct_fd, close = x->direct_close || !x->keep_alive;
    x->direct_fd = -1;
    x->direct_sending = 1;
    pthread_mutex_unlock(&f->mu);
    util_buf out = {0};
    reply_format(&out, x, reply, close); /* frees reply->text */
    reply->text = NULL;
    size_t sent = 0;
    while (out.data && sent < out.len) {
        ssize_t w = send(fd, out.data + sent, out.len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break; /* EAGAIN: the loop writes the rest; errors: the loop sees them too */
        sent += (size_t)w;
    }
    pthread_mutex_lock(&f->mu);
    x->direct_sending = 0;
    if (x->direct_waiter) pthread_cond_broadcast(&f->direct_done);
    if (out.data == NULL) return 0; /* out of memory: reply->text is gone, the loop says 500 */
    x->reply = *reply;
    x->reply.text = out.data;
    x->reply_raw = 1;
    x->raw_len = out.len;
    x->raw_sent = sent;
    if (sent == out.len) metrics_counter_add(RAGD_METRIC_HTTP_REPLIES_DIRECT, 1);
    return 1;
}

/* Takes x's socket back from its answering thread (the loop is about to write to it or close
 * it): waits for a write in progress to end. Returns: 1 when the answering thread writes (or
 * wrote) the reply itself, 0 when it will not. Loop thread, under f->mu. */
static int direct_revoke(http_front *f, http_exchange *x)
{
    x->direct_fd = -1;
    while (x->direct_sending) {
        x->direct_waiter = 1;
        pthread_cond_wait(&f->direct_done, &f->mu);
    }
    x->direct_waiter = 0;
    return x->reply_raw;
}

void http_exchange_reply(http_exchange *x, http_reply *reply)
{
    http_front *f = x->front;
    /* serialised here, in the answering thread, not in the event loop that all replies share */
    int json_text = 0;
    if (reply->body && reply->text == NULL) {
        char *t = util_json_text(reply->body, 0, NULL); /* json_dumps's text, written faster */
        if (t == NULL) t = json_dumps(reply->body, JSON_COMPACT);
        if (t) {
            json_decref(reply->body);
            reply->body = NULL;
            reply->text = t;
            json_text = 1;
        }
    }
    pthread_mutex_lock(&f->mu);
    if (x->client_gone || x->has_reply || x->stream_state) {
        pthread_mutex_unlock(&f->mu);
        json_decref(reply->body);
        free(reply->text);
    } else {
        x->reply_json = json_text; /* before reply_direct: it formats the head */
        if (!reply_direct(f, x, reply)) x->reply = *reply;
        if (x->client_gone) { /* dropped while the answering thread wrote */
            json_decref(x->reply.body);
            free(x->reply.text);
            x->reply = (http_reply){0};
            pthread_mutex_unlock(&f->mu);
            *reply = (http_reply){0};
            return;
        }
        x->reply.task_run = NULL;
        x->reply.task_arg = NULL;
        x->reply.chat = NULL;
        x->has_reply = 1;
        ready_push(f, x);
        pthread_mutex_unlock(&f->mu);
    }
    *reply = (http_reply){0};
}

int http_exchange_stream_begin(http_exchange *x, const char *content_type)
{
    http_front *f = x->front;
    pthread_mutex_lock(&f->mu);
    int gone = x->client_gone;
    if (!gone && !x->has_reply && x->stream_state == 0) {
        x->stream_state = 1;
        snprintf(x->stream_type, sizeof x->stream_type, "%s", content_type);
        ready_push(f, x);
    }
    pthread_mutex_unlock(&f->mu);
    return gone ? -1 : 0;
}

int http_exchange_stream_write(http_exchange *x, const char *data, size_t len, int last)
{
    http_front *f = x->front;
    pthread_mutex_lock(&f->mu);
    int gone = x->client_gone;
    if (!gone && x->stream_state && !x->stream_done) {
        if (len > 0 && util_buf_append(&x->stream, data, len) != 0) gone = 1;
        if (last) x->stream_done = 1;
        ready_push(f, x);
    }
    pthread_mutex_unlock(&f->mu);
    return gone ? -1 : 0;
}

int http_exchange_alone(const http_exchange *x)
{
    return on_loop_thread && x->front->total == 1; /* total: the loop's own count */
}

int http_exchange_client_gone(http_exchange *x)
{
    pthread_mutex_lock(&x->front->mu);
    int gone = x->client_gone;
    pthread_mutex_unlock(&x->front->mu);
    return gone;
}

/* ---- connections -------------------------------------------------------------------------- */

/* Drops c's exchange: the client is gone (or the engine stops). */
static void conn_drop_exchange(http_front *f, conn *c)
{
    http_exchange *x = c->x;
    if (x == NULL) return;
    c->x = NULL;
    pthread_mutex_lock(&f->mu);
    x->client_gone = 1;
    x->conn = NULL;
    direct_revoke(f, x); /* before the socket is closed: no write to a reused descriptor */
    pthread_mutex_unlock(&f->mu);
    http_exchange_unref(x);
}

static void conn_close(http_front *f, conn *c)
{
    if (c->x) {
        metrics_counter_add(RAGD_METRIC_HTTP_CONN_ABORTED, 1);
        conn_drop_exchange(f, c);
    }
    list_unlink(f, c);
    epoll_ctl(f->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->counted) {
        f->total--;
        ip_release(f, c->key);
    } else if (c->list == L_CLOSING) {
        f->closing_uncounted--;
    }
    util_buf_free(&c->in);
    util_buf_free(&c->out);
    if (f->in_batch) { /* the batch may still hold an event for c: freed after it */
        c->dead = 1;
        c->next = f->graveyard;
        f->graveyard = c;
        return;
    }
    free(c);
}

/* Reads and drops what a closing connection's client sends; closes c at its end of input. */
static void conn_drain(http_front *f, conn *c)
{
    char sink[16384];
    ssize_t n;
    while ((n = recv(c->fd, sink, sizeof sink, MSG_DONTWAIT)) > 0) {
    }
    if (n == 0) {
        c->eof = 1;
        if (c->out.len == 0) conn_close(f, c); /* else closed once the reply is written */
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        conn_close(f, c);
    }
}

/* Starts c's lingering close: our side is shut for writing, and what the client still sends is
 * read and dropped for up to LINGER_MS, so that closing with unread input does not reset the
 * connection before the client has read the reply. c's output is written already. */
static void conn_linger(http_front *f, conn *c)
{
    if (c->out.len == 0) shutdown(c->fd, SHUT_WR); /* else once the rest is written */
    if (c->eof && c->out.len == 0) {
        conn_close(f, c);
        return;
    }
    c->state = C_CLOSING;
    list_move(f, c, L_CLOSING, util_now_ms() + LINGER_MS);
    conn_drain(f, c);
}

/* Writes what c has to write. Returns: 0, or -1 when c was closed. */
static int conn_flush(http_front *f, conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0; /* EPOLLOUT resumes */
        if (w <= 0) {
            conn_close(f, c);
            return -1;
        }
        c->out_off += (size_t)w;
        /* progress: the reader is slow, not gone (a kept-alive connection whose last reply is
         * still going out sits on L_IDLE: its idle time starts when the reply is out) */
        if (c->list == L_WRITE || c->list == L_IDLE)
            list_move(f, c, c->list, util_now_ms() + f->idle_timeout_ms);
    }
    c->out.len = c->out_off = 0;
    return 0;
}

static const char *reason_phrase(unsigned status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 507: return "Insufficient Storage";
    }
    return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
}

/* Appends a JSON error reply for a refusal outside any exchange (closing the connection). */
static void out_refusal(conn *c, const char *code, const char *message)
{
    char request_id[RAGD_REQUEST_ID_MAX];
    log_record_request_id_new(request_id);
    http_reply r = http_reply_error(RAGD_OK, code, message);
    char *body = r.body ? json_dumps(r.body, JSON_COMPACT) : NULL;
    json_decref(r.body);
    metrics_http_request_add("other", r.status);
    util_buf_printf(&c->out,
                    "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                    "Connection: close\r\nX-Request-Id: %s\r\n%s\r\n%s\n",
                    r.status, reason_phrase(r.status), (body ? strlen(body) : 0) + 1, request_id,
                    r.status == 503 ? "Retry-After: 1\r\n" : "", body ? body : "");
    free(body);
}

/* Refuses c's current request (no exchange, or one not yet begun) with a JSON error and starts
 * its lingering close. */
static void conn_refuse(http_front *f, conn *c, const char *code, const char *message)
{
    metrics_counter_add(RAGD_METRIC_HTTP_HEAD_REFUSED, 1);
    out_refusal(c, code, message);
    c->close_after = 1;
    if (conn_flush(f, c) == 0) conn_linger(f, c);
}

/* Appends x's reply r (head and body; frees r's text) to out, closing the connection after it
 * when close is set. */
static void reply_format(util_buf *out, const http_exchange *x, http_reply *r, int close)
{
    char *text = NULL;
    size_t len = 0;
    const char *type = "application/json";
    int json_body = 1;
    if (r->body) {
        text = json_dumps(r->body, JSON_COMPACT);
        if (text == NULL) r->status = 500;
    } else if (r->text) {
        text = r->text;
        r->text = NULL;
        if (!x->reply_json) {
            json_body = 0;
            type = r->content_type ? r->content_type : "text/plain";
        }
    }
    if (text == NULL) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        r->status = 500;
        text = strdup(oom);
    }
    len = text ? strlen(text) : 0;
    util_buf_printf(out, "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n",
                    r->status, reason_phrase(r->status), type, len + (json_body ? 1 : 0));
    if (r->allow) util_buf_printf(out, "Allow: %s\r\n", r->allow);
    if (x->request_id[0]) util_buf_printf(out, "X-Request-Id: %s\r\n", x->request_id);
    if (r->status == 503) util_buf_puts(out, "Retry-After: 1\r\n");
    if (close) util_buf_puts(out, "Connection: close\r\n");
    else if (!x->http11) util_buf_puts(out, "Connection: keep-alive\r\n");
    util_buf_puts(out, "\r\n");
    if (!x->head_request && text) {
        util_buf_append(out, text, len);
        if (json_body) util_buf_puts(out, "\n");
    }
    free(text);
}

static int conn_advance(http_front *f, conn *c);
static void conn_read(http_front *f, conn *c);

/* c's exchange is answered in full: the next request, or the close. */
static void conn_exchange_done(http_front *f, conn *c)
{
    http_exchange *x = c->x;
    c->x = NULL;
    pthread_mutex_lock(&f->mu);
    x->conn = NULL;
    pthread_mutex_unlock(&f->mu);
    http_exchange_unref(x);
    c->probed = c->wrote_for_x = 0;
    if (conn_flush(f, c) != 0) return;
    if (c->close_after || (c->eof && c->in.len == 0)) {
        if (c->out.len > 0) { /* EPOLLOUT finishes the write, then the close */
            list_move(f, c, L_WRITE, util_now_ms() + f->idle_timeout_ms);
            return;
        }
        conn_linger(f, c);
        return;
    }
    c->state = C_HEAD;
    if (c->in.len == 0) list_move(f, c, L_IDLE, util_now_ms() + f->idle_timeout_ms);
    else list_move(f, c, L_WAIT, util_now_ms() + f->request_timeout_ms);
    if (conn_advance(f, c) != 0) return;
    if (c->read_paused) {
        c->read_paused = 0;
        conn_read(f, c);
    }
}

/* Takes what x has for c: its reply, its stream's head and bytes. Loop thread. */
static void conn_take(http_front *f, conn *c)
{
    http_exchange *x = c->x;
    http_reply r = {0};
    int has_reply = 0, stream_head = 0, done = 0;
    util_buf bytes = {0};
    pthread_mutex_lock(&f->mu);
    if (x->has_reply) {
        r = x->reply;
        x->reply = (http_reply){0};
        x->has_reply = 0;
        has_reply = done = 1;
    } else if (x->stream_state) {
        if (x->stream_state == 1) stream_head = 1, x->stream_state = 2;
        bytes = x->stream;
        x->stream = (util_buf){0};
        done = x->stream_done;
    }
    pthread_mutex_unlock(&f->mu);
    if (!x->keep_alive) c->close_after = 1; /* e.g. a reply during the drain */
    if (has_reply && x->reply_raw) { /* formatted, and maybe sent in part, by its thread */
        if (x->raw_sent < x->raw_len)
            util_buf_append(&c->out, r.text + x->raw_sent, x->raw_len - x->raw_sent);
        json_decref(r.body);
        free(r.text);
    } else if (has_reply) {
        reply_format(&c->out, x, &r, c->close_after);
        json_decref(r.body);
        free(r.text);
    }
    if (stream_head) {
        if (!x->http11) c->close_after = 1; /* the stream ends with the connection */
        util_buf_printf(&c->out,
                        "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-cache\r\n"
                        "X-Accel-Buffering: no\r\n",
                        x->stream_type);
        if (x->request_id[0]) util_buf_printf(&c->out, "X-Request-Id: %s\r\n", x->request_id);
        util_buf_puts(&c->out, x->http11 ? "Transfer-Encoding: chunked\r\n" : "");
        util_buf_puts(&c->out, c->close_after ? "Connection: close\r\n\r\n" : "\r\n");
    }
    if (bytes.len > 0 && !x->head_request) {
        if (x->http11) util_buf_printf(&c->out, "%zx\r\n", bytes.len);
        util_buf_append(&c->out, bytes.data, bytes.len);
        if (x->http11) util_buf_puts(&c->out, "\r\n");
    }
    util_buf_free(&bytes);
    if (done && x->stream_state && x->http11 && !x->head_request)
        util_buf_puts(&c->out, "0\r\n\r\n");
    c->wrote_for_x = 1;
    if (done) conn_exchange_done(f, c);
    else conn_flush(f, c);
}

/* Answers the exchanges that have something for their connection. Loop thread. */
static void ready_run(http_front *f)
{
    for (;;) {
        pthread_mutex_lock(&f->mu);
        http_exchange *x = f->ready_head;
        if (x) {
            f->ready_head = x->next_ready;
            if (f->ready_head == NULL) f->ready_tail = NULL;
            x->queued = 0;
        }
        conn *c = x ? x->conn : NULL;
        pthread_mutex_unlock(&f->mu);
        if (x == NULL) return;
        if (c && c->x == x) conn_take(f, c);
        http_exchange_unref(x); /* the ready list's */
    }
}

/* ---- requests ----------------------------------------------------------------------------- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes s in place ('+' as a space too when plus); a decoded NUL ends it. */
static void unescape(char *s, int plus)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '%' && hexval(r[1]) >= 0 && hexval(r[2]) >= 0) {
            *w++ = (char)(hexval(r[1]) * 16 + hexval(r[2]));
            r += 2;
        } else if (*r == '+' && plus) {
            *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    /* a decoded NUL ends the string: C strings downstream */
}

/* Returns: the value of header name in x (borrowed), or NULL. */
static const char *exchange_header(const http_exchange *x, const char *name)
{
    for (size_t i = 0; i < x->header_count; i++)
        if (strcasecmp(x->headers[i].name, name) == 0) return x->headers[i].value;
    return NULL;
}

/* Returns: 1 when the comma-separated header value list holds token (case-insensitive). */
static int list_has(const char *list, const char *token)
{
    size_t tl = strlen(token);
    for (const char *p = list; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t')) t--;
        if ((size_t)(t - p) == tl && strncasecmp(p, token, tl) == 0) return 1;
        p = e;
    }
    return 0;
}

/* Makes c's exchange from the head at the start of c->in (checked by http_head_check).
 * Returns: the exchange (new, one reference: c's), or NULL on OOM. */
static http_exchange *exchange_new(http_front *f, conn *c, const http_head *h)
{
    http_exchange *x = calloc(1, sizeof *x);
    char *head = x ? malloc(h->head_len + 1) : NULL;
    if (head == NULL) {
        free(x);
        return NULL;
    }
    memcpy(head, c->in.data, h->head_len);
    head[h->head_len] = '\0';
    x->head = head;
    x->front = f;
    x->refs = 1;
    x->direct_fd = -1;
    x->conn = c;
    x->t0 = util_now_ms();
    x->http11 = h->http11;
    /* request line */
    char *eol = strchr(head, '\n');
    *eol = '\0';
    char *sp = strchr(head, ' ');
    *sp = '\0';
    x->method = head;
    char *target = sp + 1;
    char *sp2 = strchr(target, ' ');
    *sp2 = '\0';
    x->head_request = strcmp(x->method, "HEAD") == 0;
    char *query = strchr(target, '?');
    if (query) *query++ = '\0';
    unescape(target, 0);
    x->path = target;
    for (char *p = query; p && *p && x->arg_count < HTTP_ARGS_MAX;) {
        char *amp = strchr(p, '&');
        if (amp) *amp = '\0';
        if (*p) {
            char *eq = strchr(p, '=');
            if (eq) *eq = '\0';
            unescape(p, 1);
            if (eq) unescape(eq + 1, 1);
            x->args[x->arg_count++] = (http_arg){p, eq ? eq + 1 : ""};
        }
        p = amp ? amp + 1 : NULL;
    }
    /* header fields (their syntax was checked) */
    for (char *line = eol + 1; *line && x->header_count < HTTP_HEADERS_MAX;) {
        char *e = strchr(line, '\n');
        if (e) *e = '\0';
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\r') line[--n] = '\0';
        if (n == 0) break;
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t') v++;
            char *ve = v + strlen(v);
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) *--ve = '\0';
            x->headers[x->header_count++] = (http_header){line, v};
        }
        if (e == NULL) break;
        line = e + 1;
    }
    const char *connection = exchange_header(x, "Connection");
    x->keep_alive = x->http11 ? !list_has(connection, "close")
                              : list_has(connection, "keep-alive");
    return x;
}

const char *http_exchange_header(const http_exchange *x, const char *name)
{
    return exchange_header(x, name);
}

/* The request's body is complete: hand it to the server. */
static void conn_dispatch(http_front *f, conn *c)
{
    c->state = C_BUSY;
    list_move(f, c, L_BUSY, 0);
    if (!c->x->keep_alive) c->close_after = 1;
    /* Nothing before this reply, and few requests being answered: its thread may write it.
     * (Under concurrency the loop's writes, several per wake-up, measured better: c8 p50
     * x0.85 with the loop writing, bench/NOTES.md "Session 6, part F".) */
    if (c->out.len == 0 && f->lists[L_BUSY].count <= DIRECT_BUSY_MAX) {
        pthread_mutex_lock(&f->mu);
        c->x->direct_fd = c->fd;
        c->x->direct_close = c->close_after;
        pthread_mutex_unlock(&f->mu);
    }
    http_server_run(f->server, c->x);
}

/* Answers c's exchange x from the front (408, 400, 413) and closes after it. */
static void conn_fail_exchange(http_front *f, conn *c, ragd_rc rc, const char *code,
                               const char *message)
{
    c->close_after = 1;
    c->state = C_BUSY;
    list_move(f, c, L_BUSY, 0);
    http_reply r = http_reply_error(rc, code, message);
    metrics_http_request_add(c->x->route_name ? c->x->route_name : "other", r.status);
    http_exchange_reply(c->x, &r);
}

/* Reads what of c's body is buffered. */
static void conn_body(http_front *f, conn *c)
{
    http_exchange *x = c->x;
    if (!c->chunked) {
        if (c->in.len < c->body_want) {
            if (c->eof) {
                metrics_counter_add(RAGD_METRIC_HTTP_CONN_ABORTED, 1);
                conn_fail_exchange(f, c, RAGD_OK, "bad_request",
                                   "incomplete request body (the client closed its side)");
            }
            return;
        }
        if (c->body_want > 0) {
            x->body = malloc(c->body_want + 1);
            if (x->body == NULL) {
                conn_fail_exchange(f, c, RAGD_ERR_NOMEM, NULL, "out of memory");
                return;
            }
            memcpy(x->body, c->in.data, c->body_want);
            x->body[c->body_want] = '\0';
            x->body_len = c->body_want;
            memmove(c->in.data, c->in.data + c->body_want, c->in.len - c->body_want);
            c->in.len -= c->body_want;
        }
        conn_dispatch(f, c);
        return;
    }
    size_t consumed = 0, data_len = 0;
    size_t max_body = x->cfg->max_body_bytes;
    int rc = http_chunked_resume(c->in.data ? c->in.data : "", c->in.len, &c->chunk_pos,
                                 &consumed, &data_len, NULL);
    if (rc < 0) {
        conn_fail_exchange(f, c, RAGD_OK, "bad_request", "malformed chunked body framing");
        return;
    }
    if (data_len > max_body || (rc == 0 && c->in.len > 2 * max_body + 65536)) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body over the limit of %zu bytes", max_body);
        conn_fail_exchange(f, c, RAGD_ERR_TOO_LARGE, NULL, msg);
        return;
    }
    if (rc == 0) {
        if (c->eof) {
            metrics_counter_add(RAGD_METRIC_HTTP_CONN_ABORTED, 1);
            conn_fail_exchange(f, c, RAGD_OK, "bad_request",
                               "incomplete request body (the client closed its side)");
        }
        return;
    }
    util_buf body = {0};
    if (http_chunked_parse(c->in.data, consumed, &consumed, &data_len, &body) != 1) {
        util_buf_free(&body);
        conn_fail_exchange(f, c, RAGD_ERR_NOMEM, NULL, "out of memory");
        return;
    }
    x->body_len = body.len;
    x->body = body.len ? util_buf_steal(&body) : NULL;
    util_buf_free(&body);
    memmove(c->in.data, c->in.data + consumed, c->in.len - consumed);
    c->in.len -= consumed;
    conn_dispatch(f, c);
}

/* Moves c on with what it has received: heads, bodies, requests. */
/* Returns: 0, or -1 when c was closed or is closing (do not touch it). */
static int conn_advance(http_front *f, conn *c)
{
    if (c->state == C_BODY) {
        conn_body(f, c);
        return 0;
    }
    if (c->state != C_HEAD) return 0;
    if (c->in.len == 0) {
        if (c->eof) {
            if (c->list != L_IDLE) metrics_counter_add(RAGD_METRIC_HTTP_CONN_ABORTED, 1);
            conn_close(f, c); /* closed between requests: nothing to answer */
            return -1;
        }
        return 0;
    }
    if (c->list == L_IDLE) /* the first byte of the next request: its deadline starts */
        list_move(f, c, L_WAIT, util_now_ms() + f->request_timeout_ms);
    http_head h;
    /* at most a head's worth and some: an over-long request line is told from a large head */
    size_t look = c->in.len < HEAD_LOOK_MAX ? c->in.len : HEAD_LOOK_MAX;
    int rc = http_head_check(c->in.data, look, max_body_now(f), &h);
    if (rc < 0) {
        conn_refuse(f, c, h.code, h.message);
        return -1;
    }
    if (rc == 0) {
        if (!c->eof) return 0;
        conn_refuse(f, c, "bad_request", "incomplete request head (the client closed its side)");
        return -1;
    }
    http_exchange *x = exchange_new(f, c, &h);
    if (x == NULL) {
        conn_refuse(f, c, "internal", "out of memory");
        return -1;
    }
    memmove(c->in.data, c->in.data + h.head_len, c->in.len - h.head_len);
    c->in.len -= h.head_len;
    c->x = x;
    c->chunked = h.chunked;
    c->chunk_pos = (http_chunked_pos){0};
    c->body_want = h.content_length > 0 ? (size_t)h.content_length : 0;
    c->probed = c->wrote_for_x = 0;
    if (http_server_begin(f->server, x) != 0) {
        /* answered already (401, 413, 503): the body, if any, is not read */
        if (!x->keep_alive || c->chunked || c->body_want > 0) c->close_after = 1;
        c->state = C_BUSY;
        list_move(f, c, L_BUSY, 0);
        return 0;
    }
    if (c->chunked || c->body_want > 0) {
        c->state = C_BODY;
        if (h.expect_continue && h.http11 && c->in.len == 0) {
            util_buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
            if (conn_flush(f, c) != 0) return -1;
        }
        conn_body(f, c);
        return 0;
    }
    conn_dispatch(f, c);
    return 0;
}

/* Returns: how much input c may hold in its state (the rest waits in the kernel). */
static size_t read_cap(const conn *c)
{
    if (c->state == C_BODY) {
        if (!c->chunked) return c->body_want + HEAD_LOOK_MAX;
        return 2 * c->x->cfg->max_body_bytes + 65536 + 1; /* framing included; 413 beyond */
    }
    if (c->state == C_BUSY) return PIPELINE_MAX;
    return HEAD_LOOK_MAX;
}

/* Reads what the client sent and moves c on with it. */
static void conn_read(http_front *f, conn *c)
{
    if (c->state == C_CLOSING) {
        conn_drain(f, c);
        return;
    }
    for (;;) {
        int capped = 0;
        for (;;) {
            if (c->in.len >= read_cap(c)) {
                capped = 1; /* read on once what is held is used */
                break;
            }
            if (c->in.cap - c->in.len < READ_CHUNK + 1) {
                size_t cap = c->in.cap ? c->in.cap * 2 : READ_CHUNK * 2;
                while (cap - c->in.len < READ_CHUNK + 1) cap *= 2;
                char *p = realloc(c->in.data, cap);
                if (p == NULL) {
                    conn_close(f, c);
                    return;
                }
                c->in.data = p;
                c->in.cap = cap;
            }
            ssize_t n = recv(c->fd, c->in.data + c->in.len, READ_CHUNK, MSG_DONTWAIT);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (n < 0) {
                conn_close(f, c);
                return;
            }
            if (n == 0) {
                c->eof = 1;
                break;
            }
            c->in.len += (size_t)n;
            c->in.data[c->in.len] = '\0';
        }
        if (c->state == C_BUSY) {
            if (capped) c->read_paused = 1; /* read on when the answer is out */
            /* A client that shuts its side after its request still gets the reply. A long
             * turn (chat) that has written nothing yet sends an interim "100 Continue": a
             * client that hung up answers it with a reset, which cancels the turn. */
            if (c->eof && c->x && c->x->probe_on_eof && !c->probed && !c->wrote_for_x &&
                c->x->http11) {
                c->probed = 1;
                pthread_mutex_lock(&f->mu);
                int answered = direct_revoke(f, c->x);
                pthread_mutex_unlock(&f->mu);
                if (answered) return; /* its reply is out or on its way: no probe */
                util_buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
                conn_flush(f, c);
            }
            return;
        }
        if (conn_advance(f, c) != 0 || !capped) return;
        /* it held all it may: what it holds was used (a head taken, a body dispatched, or a
         * refusal); read the rest now, as no new edge will say it is there */
    }
}

/* ---- the loop ----------------------------------------------------------------------------- */

/* Makes room for one more connection from key. Returns: 1 when there is room. */
static int room_make(http_front *f, const unsigned char key[16])
{
    for (;;) {
        ip_count *ic = ip_find(f, key, 0);
        int over_ip = ic && ic->count >= f->max_per_ip;
        int over_total = f->total >= f->max_total;
        if (!over_ip && !over_total) return 1;
        /* a refused one still lingering, else the oldest kept-alive idle one, else the oldest
         * still waiting for (the rest of) a head (of this address, when that is the limit) */
        conn *victim = NULL;
        static const int order[] = {L_CLOSING, L_IDLE, L_WAIT};
        for (size_t i = 0; i < 3 && !victim; i++)
            for (conn *c = f->lists[order[i]].head; c && !victim; c = c->next)
                if (c->counted && c->state != C_BODY && c->x == NULL && c->out.len == 0 &&
                    (!over_ip || memcmp(c->key, key, 16) == 0))
                    victim = c;
        if (victim == NULL) return 0;
        metrics_counter_add(RAGD_METRIC_HTTP_CONN_EVICTED, 1);
        conn_close(f, victim);
    }
}

static conn *conn_new(http_front *f, int fd, int list, double deadline)
{
    conn *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->fd = fd;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(f->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        free(c);
        return NULL;
    }
    list_append(f, c, list, deadline);
    return c;
}

static void accept_all(http_front *f)
{
    for (;;) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd = accept4(f->listen_fd, (struct sockaddr *)&addr, &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE) {
                /* out of descriptors: free the oldest idle connection, try again next round */
                conn *victim = f->lists[L_CLOSING].head ? f->lists[L_CLOSING].head
                               : f->lists[L_IDLE].head  ? f->lists[L_IDLE].head
                                                        : f->lists[L_WAIT].head;
                if (victim && victim->x == NULL && victim->out.len == 0) {
                    metrics_counter_add(RAGD_METRIC_HTTP_CONN_EVICTED, 1);
                    conn_close(f, victim);
                }
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        unsigned char key[16];
        addr_key((struct sockaddr *)&addr, key);
        double now = util_now_ms();
        if (!room_make(f, key)) {
            metrics_counter_add(RAGD_METRIC_HTTP_CONN_REFUSED, 1);
            /* answered, then closed lingering (not counted in the limits, at most
             * LINGER_REFUSED_MAX at a time) so that the client reads the 503 */
            static const char msg[] = "too many open connections ([server] max_connections / "
                                      "max_connections_per_ip); retry shortly";
            conn *q = f->closing_uncounted < LINGER_REFUSED_MAX
                          ? conn_new(f, fd, L_CLOSING, now + LINGER_MS)
                          : NULL;
            if (q == NULL) {
                conn tmp = {.fd = fd};
                out_refusal(&tmp, "too_many_connections", msg);
                ssize_t w = send(fd, tmp.out.data, tmp.out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
                (void)w;
                util_buf_free(&tmp.out);
                close(fd);
                continue;
            }
            f->closing_uncounted++;
            q->state = C_CLOSING;
            out_refusal(q, "too_many_connections", msg);
            if (conn_flush(f, q) == 0) {
                shutdown(fd, SHUT_WR);
                conn_drain(f, q);
            }
            continue;
        }
        ip_count *ic = ip_find(f, key, 1);
        conn *c = ic ? conn_new(f, fd, L_WAIT, now + f->request_timeout_ms) : NULL;
        if (c == NULL) {
            if (ic && ic->count == 0) {
                ic->count = 1;
                ip_release(f, key);
            }
            close(fd);
            continue;
        }
        ic->count++;
        f->total++;
        memcpy(c->key, key, 16);
        c->counted = 1;
        c->state = C_HEAD;
        conn_read(f, c); /* data may be there already */
    }
}

static void conn_event(http_front *f, conn *c, uint32_t events)
{
    if (events & (EPOLLERR | EPOLLHUP)) {
        /* reset, or both directions closed: nothing can be delivered any more */
        if (c->x == NULL && c->list == L_WAIT)
            metrics_counter_add(RAGD_METRIC_HTTP_CONN_ABORTED, 1);
        conn_close(f, c); /* counts an exchange it drops as aborted */
        return;
    }
    if (events & EPOLLOUT && c->out.len > 0) {
        if (conn_flush(f, c) != 0) return;
        if (c->out.len == 0 && c->x == NULL &&
            (c->state == C_BUSY || (c->close_after && c->list == L_WRITE))) {
            conn_linger(f, c); /* a closing reply is out */
            return;
        }
        if (c->out.len == 0 && c->state == C_CLOSING) { /* a refusal is out */
            shutdown(c->fd, SHUT_WR);
            if (c->eof) {
                conn_close(f, c);
                return;
            }
        }
    }
    if (events & (EPOLLIN | EPOLLRDHUP)) conn_read(f, c);
}

static void quiesce_now(http_front *f)
{
    if (f->listen_fd >= 0) {
        epoll_ctl(f->epoll_fd, EPOLL_CTL_DEL, f->listen_fd, NULL);
        close(f->listen_fd);
        f->listen_fd = -1;
    }
    /* connections between requests are closed; requests begun are finished, and a reply still
     * going out is written to its end first (then the connection closes) */
    while (f->lists[L_IDLE].head) {
        conn *c = f->lists[L_IDLE].head;
        if (c->out.len == 0) {
            conn_close(f, c);
            continue;
        }
        c->close_after = 1;
        list_move(f, c, L_WRITE, util_now_ms() + f->idle_timeout_ms);
    }
    for (conn *c = f->lists[L_WAIT].head, *next; c; c = next) {
        next = c->next;
        if (c->state == C_HEAD) conn_close(f, c);
    }
}

static void *loop_thread(void *arg)
{
    http_front *f = arg;
    on_loop_thread = 1;
    struct epoll_event evs[128];
    for (;;) {
        int timeout = -1;
        double next = 0;
        for (int l = 0; l < L_COUNT; l++) {
            if (l == L_BUSY || f->lists[l].head == NULL) continue;
            if (next == 0 || f->lists[l].head->deadline < next) next = f->lists[l].head->deadline;
        }
        if (next > 0) {
            double left = next - util_now_ms();
            timeout = left <= 0 ? 0 : (int)left + 1;
        }
        int n = epoll_wait(f->epoll_fd, evs, 128, timeout);
        if (n < 0 && errno != EINTR) break;
        int woken = 0;
        f->in_batch = 1;
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == WAKE_TAG) {
                uint64_t v;
                ssize_t r = read(f->wake_fd, &v, sizeof v);
                (void)r;
                woken = 1;
            } else if (tag == LISTEN_TAG) {
                if (f->listen_fd >= 0) accept_all(f);
            }
        }
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == WAKE_TAG || tag == LISTEN_TAG) continue;
            /* a connection closed above (eviction) may still have an event in this batch */
            if (!((conn *)tag)->dead) conn_event(f, tag, evs[i].events);
        }
        f->in_batch = 0;
        while (f->graveyard) {
            conn *c = f->graveyard;
            f->graveyard = c->next;
            free(c);
        }
        ready_run(f);
        if (woken) {
            pthread_mutex_lock(&f->mu);
            int quiesce = f->quiesce_req && !f->quiesced, stop = f->stop_req;
            pthread_mutex_unlock(&f->mu);
            if (quiesce) {
                quiesce_now(f);
                pthread_mutex_lock(&f->mu);
                f->quiesced = 1;
                pthread_cond_broadcast(&f->cond);
                pthread_mutex_unlock(&f->mu);
            }
            if (stop) break;
        }
        double now = util_now_ms();
        while (f->lists[L_CLOSING].head && f->lists[L_CLOSING].head->deadline <= now)
            conn_close(f, f->lists[L_CLOSING].head);
        while (f->lists[L_WRITE].head && f->lists[L_WRITE].head->deadline <= now)
            conn_close(f, f->lists[L_WRITE].head); /* a reader that stopped reading */
        while (f->lists[L_IDLE].head && f->lists[L_IDLE].head->deadline <= now)
            conn_close(f, f->lists[L_IDLE].head);
        while (f->lists[L_WAIT].head && f->lists[L_WAIT].head->deadline <= now) {
            conn *c = f->lists[L_WAIT].head;
            metrics_counter_add(RAGD_METRIC_HTTP_REQUEST_TIMEOUTS, 1);
            if (c->x) /* the body did not come */
                conn_fail_exchange(f, c, RAGD_OK, "request_timeout",
                                   "the request body did not arrive within [server] "
                                   "request_timeout");
            else
                conn_refuse(f, c, "request_timeout",
                            "the request head did not arrive within [server] request_timeout");
        }
        ready_run(f);
    }
    for (int l = 0; l < L_COUNT; l++)
        while (f->lists[l].head) conn_close(f, f->lists[l].head);
    return NULL;
}

/* ---- life cycle --------------------------------------------------------------------------- */

/* Raises the soft open-file limit to the hard one. Returns: the soft limit now. */
static long nofile_raise(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
}

ragd_rc http_front_new(const ragd_cfg *cfg, cfg_live *live, http_front **out, ragd_err *err)
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
    http_front *f = calloc(1, sizeof *f);
    if (f == NULL) {
        freeaddrinfo(ai);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    f->listen_fd = f->epoll_fd = f->wake_fd = -1;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cond, NULL);
    pthread_cond_init(&f->direct_done, NULL);
    long files = nofile_raise();
    /* keep descriptors for the store, the log and the upstream clients */
    long usable = files > 256 ? files - 128 : 64;
    f->max_total = cfg->max_connections < usable ? cfg->max_connections : (int)usable;
    f->max_per_ip = cfg->max_connections_per_ip;
    f->max_body = cfg->max_body_bytes;
    f->live = live;
    f->request_timeout_ms = cfg->request_timeout_s * 1000;
    f->idle_timeout_ms = cfg->connection_timeout_s * 1000;
    int one = 1, en = 0;
    f->listen_fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f->listen_fd < 0 ||
        setsockopt(f->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(f->listen_fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(f->listen_fd, 4096) != 0)
        en = errno;
    freeaddrinfo(ai);
    if (en == 0) {
        f->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        f->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event lev = {.events = EPOLLIN, .data.ptr = (void *)LISTEN_TAG};
        struct epoll_event wev = {.events = EPOLLIN, .data.ptr = (void *)WAKE_TAG};
        if (f->epoll_fd < 0 || f->wake_fd < 0 ||
            epoll_ctl(f->epoll_fd, EPOLL_CTL_ADD, f->listen_fd, &lev) != 0 ||
            epoll_ctl(f->epoll_fd, EPOLL_CTL_ADD, f->wake_fd, &wev) != 0)
            en = errno ? errno : EIO;
    }
    if (en != 0) {
        http_front_free(f);
        return ragd_err_set(err, RAGD_ERR_IO, "cannot listen on %s:%d: %s", cfg->listen_host,
                            cfg->listen_port, strerror(en));
    }
    *out = f;
    return RAGD_OK;
}

int http_front_port(const http_front *f)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (f->listen_fd < 0 || getsockname(f->listen_fd, (struct sockaddr *)&ss, &len) != 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

ragd_rc http_front_run(http_front *f, http_server *s, ragd_err *err)
{
    f->server = s;
    if (pthread_create(&f->thread, NULL, loop_thread, f) != 0)
        return ragd_err_set(err, RAGD_ERR_IO, "cannot start the HTTP event loop thread");
    f->thread_started = 1;
    return RAGD_OK;
}

void http_front_quiesce(http_front *f)
{
    if (f == NULL) return;
    pthread_mutex_lock(&f->mu);
    f->quiesce_req = 1;
    if (f->thread_started) {
        wake(f);
        while (!f->quiesced) pthread_cond_wait(&f->cond, &f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    if (!f->thread_started && f->listen_fd >= 0) {
        close(f->listen_fd);
        f->listen_fd = -1;
    }
}

void http_front_free(http_front *f)
{
    if (f == NULL) return;
    if (f->thread_started) {
        pthread_mutex_lock(&f->mu);
        f->stop_req = 1;
        wake(f);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->thread, NULL);
        f->thread_started = 0;
    }
    /* exchanges answered after the loop stopped */
    on_loop_thread = 1;
    ready_run(f);
    on_loop_thread = 0;
    if (f->listen_fd >= 0) close(f->listen_fd);
    if (f->epoll_fd >= 0) close(f->epoll_fd);
    if (f->wake_fd >= 0) close(f->wake_fd);
    for (size_t i = 0; i < IP_BUCKETS; i++) {
        for (ip_count *c = f->ips[i], *next; c; c = next) {
            next = c->next;
            free(c);
        }
    }
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cond);
    pthread_cond_destroy(&f->direct_done);
    free(f);
}
