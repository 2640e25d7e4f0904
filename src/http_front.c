/* SPDX-License-Identifier: MIT */
/*
 * http_front.c - the listening socket and what happens before libmicrohttpd sees a connection.
 * One acceptor thread (epoll) accepts, applies the connection limits ([server] max_connections,
 * max_connections_per_ip: at a limit the connection that has waited longest without a complete
 * request head is closed to make room, else the new one gets 503 too_many_connections), waits for
 * the first request head under [server] request_timeout (408 when it does not come: clients that
 * connect and say nothing, or drip a byte now and then, hold nothing for long), and checks the
 * head (src/http_head.c): malformed request lines and headers, conflicting Content-Length,
 * Transfer-Encoding other than chunked, over-long URIs and heads get a JSON 4xx here, where
 * libmicrohttpd would answer in HTML or wait. A good head's connection is handed to one of the
 * libmicrohttpd daemons (MHD_add_connection). A client that has already half-closed (sent its
 * request, then shut down its side) is served through a socketpair relay, because libmicrohttpd
 * closes a connection as soon as it reads end-of-file, sometimes before the reply is out.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "http_int.h"
#include "ragd/log.h"
#include "ragd/log_event.h"
#include "ragd/metrics.h"
#include "ragd/util.h"

#define PEEK_MAX (HTTP_HEAD_MAX + 16384) /* a head and a small body, looked at before hand-off */
#define LINGER_MS 2000                   /* reading a refused client's rest before closing */
#define IP_BUCKETS 1024
#define RELAYS_MAX 64
#define LINGER_REFUSED_MAX 256 /* refused connections closing at a time (else closed at once) */

typedef struct ip_count {
    unsigned char key[16];
    int count;
    struct ip_count *next;
} ip_count;

/* A connection the front holds: waiting for its first head, or closing after a refusal. */
typedef struct pending {
    int fd;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    unsigned char key[16];
    double deadline;   /* ms: the head's (request_timeout), or the lingering close's */
    int closing;       /* refused: draining input until EOF or the deadline */
    int counted;       /* counted in the limits (released when the front closes it) */
    struct pending *prev, *next; /* its list, oldest first (so in deadline order) */
} pending;

typedef struct pending_list {
    pending *head, *tail;
} pending_list;

struct http_front {
    int listen_fd;
    int epoll_fd;
    int stop_fd; /* eventfd: wakes the acceptor to stop */
    pthread_t thread;
    int thread_started;
    struct MHD_Daemon **daemons;
    size_t daemon_count, next_daemon;
    size_t max_body; /* when live is NULL */
    cfg_live *live;  /* [server] max_body_bytes is live: read from the current snapshot */
    int max_total, max_per_ip;
    int request_timeout_ms;
    pending_list waiting; /* for a head; acceptor thread only */
    pending_list closing; /* refused, lingering; acceptor thread only */
    int closing_uncounted; /* of those, the ones refused over the limits (not counted there) */
    pthread_mutex_t mu;   /* guards what follows */
    pthread_cond_t cond;
    int total;
    int relays;
    ip_count *ips[IP_BUCKETS];
};

static const char LISTEN_TAG[] = "listen", STOP_TAG[] = "stop";

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

/* Returns: the count node of key (created when create), or NULL. Under f->mu. */
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

static void count_release(http_front *f, const unsigned char key[16])
{
    pthread_mutex_lock(&f->mu);
    f->total--;
    ip_release(f, key);
    pthread_mutex_unlock(&f->mu);
}

void http_front_conn_closed(http_front *f, const struct sockaddr *addr)
{
    unsigned char key[16];
    addr_key(addr, key);
    count_release(f, key);
}

/* ---- the pending list --------------------------------------------------------------------- */

static pending_list *list_of(http_front *f, pending *p)
{
    return p->closing ? &f->closing : &f->waiting;
}

static void list_unlink(http_front *f, pending *p)
{
    pending_list *l = list_of(f, p);
    if (p->prev) p->prev->next = p->next;
    else l->head = p->next;
    if (p->next) p->next->prev = p->prev;
    else l->tail = p->prev;
    p->prev = p->next = NULL;
}

static void list_append(http_front *f, pending *p)
{
    pending_list *l = list_of(f, p);
    p->prev = l->tail;
    p->next = NULL;
    if (l->tail) l->tail->next = p;
    else l->head = p;
    l->tail = p;
}

/* Returns: 1 when p is on one of the lists (not freed). */
static int pending_alive(http_front *f, const pending *p)
{
    for (pending *q = f->waiting.tail; q; q = q->prev)
        if (q == p) return 1;
    for (pending *q = f->closing.tail; q; q = q->prev)
        if (q == p) return 1;
    return 0;
}

/* Closes and frees p. */
static void pending_close(http_front *f, pending *p)
{
    list_unlink(f, p);
    epoll_ctl(f->epoll_fd, EPOLL_CTL_DEL, p->fd, NULL);
    close(p->fd);
    if (p->counted) count_release(f, p->key);
    else if (p->closing) f->closing_uncounted--;
    free(p);
}

/* ---- replies from the front --------------------------------------------------------------- */

static const char *reason_phrase(unsigned status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    }
    return "Error";
}

/* Writes a JSON error reply on fd (non-blocking, best effort: it is small and the socket's send
 * buffer is empty). */
static void front_reply(int fd, ragd_rc rc, const char *code, const char *message)
{
    char request_id[RAGD_REQUEST_ID_MAX];
    log_record_request_id_new(request_id);
    http_reply r = http_reply_error(rc, code, message);
    char *body = r.body ? json_dumps(r.body, JSON_COMPACT) : NULL;
    json_decref(r.body);
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\nX-Request-Id: %s\r\n%s\r\n",
                     r.status, reason_phrase(r.status), (body ? strlen(body) : 0) + 1, request_id,
                     r.status == 503 ? "Retry-After: 1\r\n" : "");
    metrics_http_request_add("other", r.status);
    if (n > 0 && (size_t)n < sizeof head) {
        struct iovec iov[3] = {{head, (size_t)n}, {body ? body : "", body ? strlen(body) : 0},
                               {"\n", 1}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 3};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
    free(body);
}

/* Reads and drops what a refused client sent; closes p at its end of input. */
static void pending_drain(http_front *f, pending *p)
{
    char sink[16384];
    ssize_t n;
    while ((n = recv(p->fd, sink, sizeof sink, MSG_DONTWAIT)) > 0) {
    }
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        pending_close(f, p);
}

/* Answers p with an error and starts its lingering close: our side is shut for writing, and
 * what the client still sends is read and dropped for up to LINGER_MS, so that closing with
 * unread input does not reset the connection before the client has read the reply. */
static void pending_refuse(http_front *f, pending *p, ragd_rc rc, const char *code,
                           const char *message)
{
    front_reply(p->fd, rc, code, message);
    shutdown(p->fd, SHUT_WR);
    list_unlink(f, p);
    p->closing = 1;
    p->deadline = util_now_ms() + LINGER_MS;
    list_append(f, p);
    pending_drain(f, p); /* what is buffered now brings no new edge-triggered event */
}

/* ---- relay for half-closed clients -------------------------------------------------------- */

typedef struct relay {
    http_front *front;
    int client;
    int inner; /* our end of the socketpair; the daemon has the other */
    int head_request; /* HEAD: the reply has no body */
} relay;

/* Writes all of buf. Returns: 0, or -1. */
static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Returns: the total length of the first final (non-1xx) response in buf[0..n), or 0 when it is
 * not complete yet. *skip: bytes of interim 1xx responses before it. */
static size_t response_complete(const char *buf, size_t n, int head_request)
{
    size_t off = 0;
    for (;;) {
        const char *end = memmem(buf + off, n - off, "\r\n\r\n", 4);
        if (end == NULL) return 0;
        size_t head_len = (size_t)(end - (buf + off)) + 4;
        int status = 0;
        if (n - off > 12) status = atoi(buf + off + 9);
        if (status >= 100 && status < 200) {
            off += head_len;
            continue;
        }
        long long cl = 0;
        const char *p = buf + off;
        while (p < end) {
            const char *eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
            if (eol == NULL) break;
            if ((size_t)(eol - p) > 15 && strncasecmp(p, "Content-Length:", 15) == 0)
                cl = atoll(p + 15);
            p = eol + 2;
        }
        if (head_request || status == 204 || status == 304) cl = 0;
        size_t total = off + head_len + (size_t)cl;
        return n >= total ? total : 0;
    }
}

static void *relay_thread(void *arg)
{
    relay *r = arg;
    http_front *f = r->front;
    /* the client finished sending: read all of it, bounded (a larger body gets its 413) */
    util_buf req = {0};
    size_t cap = f->max_body + HTTP_HEAD_MAX + 4096;
    char buf[16384];
    for (;;) {
        ssize_t n = recv(r->client, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (req.len < cap && util_buf_append(&req, buf, (size_t)n) != 0) break;
    }
    util_buf resp = {0};
    if (req.len > 0 && write_all(r->inner, req.data, req.len) == 0) {
        size_t done = 0;
        while (done == 0) {
            ssize_t n = recv(r->inner, buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            if (util_buf_append(&resp, buf, (size_t)n) != 0) break;
            done = response_complete(resp.data, resp.len, r->head_request);
        }
        if (resp.len > 0) write_all(r->client, resp.data, done ? done : resp.len);
    }
    util_buf_free(&req);
    util_buf_free(&resp);
    shutdown(r->client, SHUT_WR);
    close(r->client);
    close(r->inner); /* the daemon sees end-of-file after its reply: nothing lost */
    pthread_mutex_lock(&f->mu);
    f->relays--;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
    free(r);
    return NULL;
}

/* Serves p (complete head, client half-closed) through a relay. Returns: 0 (p's fd is the
 * relay's now), or -1 (p untouched). */
static int relay_start(http_front *f, pending *p, int head_request)
{
    pthread_mutex_lock(&f->mu);
    int ok = f->relays < RELAYS_MAX;
    if (ok) f->relays++;
    pthread_mutex_unlock(&f->mu);
    if (!ok) return -1;
    int sp[2];
    relay *r = calloc(1, sizeof *r);
    if (r == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
        free(r);
        goto undo;
    }
    /* blocking I/O in the relay thread, bounded by the request timeout */
    struct timeval tv = {.tv_sec = f->request_timeout_ms / 1000,
                         .tv_usec = (f->request_timeout_ms % 1000) * 1000};
    int fl = fcntl(p->fd, F_GETFL);
    fcntl(p->fd, F_SETFL, fl & ~O_NONBLOCK);
    setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(sp[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(sp[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    *r = (relay){.front = f, .client = p->fd, .inner = sp[0], .head_request = head_request};
    struct MHD_Daemon *d = f->daemons[f->next_daemon++ % f->daemon_count];
    /* the daemon counts this connection (and releases it when it closes) */
    if (MHD_add_connection(d, sp[1], (struct sockaddr *)&p->addr, p->addr_len) != MHD_YES) {
        close(sp[0]); /* sp[1] is closed by MHD in any case */
        fcntl(p->fd, F_SETFL, fl);
        free(r);
        goto undo;
    }
    p->counted = 0;
    pthread_t tid;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&tid, &attr, relay_thread, r);
    pthread_attr_destroy(&attr);
    if (rc != 0) { /* no thread: the daemon's side closes, the client gets nothing */
        close(sp[0]);
        close(p->fd);
        free(r);
        pthread_mutex_lock(&f->mu);
        f->relays--;
        pthread_mutex_unlock(&f->mu);
    }
    list_unlink(f, p);
    epoll_ctl(f->epoll_fd, EPOLL_CTL_DEL, p->fd, NULL);
    free(p);
    return 0;
undo:
    pthread_mutex_lock(&f->mu);
    f->relays--;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
    return -1;
}

/* ---- the acceptor ------------------------------------------------------------------------- */

/* Hands p's connection to a daemon. */
static void handoff(http_front *f, pending *p)
{
    list_unlink(f, p);
    epoll_ctl(f->epoll_fd, EPOLL_CTL_DEL, p->fd, NULL);
    struct MHD_Daemon *d = f->daemons[f->next_daemon++ % f->daemon_count];
    /* from here the daemon's connection-closed notification releases the count */
    if (MHD_add_connection(d, p->fd, (struct sockaddr *)&p->addr, p->addr_len) != MHD_YES)
        count_release(f, p->key); /* the socket is closed by MHD in any case */
    free(p);
}

/* Looks at what p's client has sent so far. */
static void pending_read(http_front *f, pending *p)
{
    if (p->closing) {
        pending_drain(f, p);
        return;
    }
    static __thread char buf[PEEK_MAX];
    ssize_t n = recv(p->fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        metrics_counter_add(RAGD_METRIC_HTTP_CONN_ABORTED, 1);
        pending_close(f, p);
        return;
    }
    if (n == 0) { /* closed before a request: nothing to answer */
        metrics_counter_add(RAGD_METRIC_HTTP_CONN_ABORTED, 1);
        pending_close(f, p);
        return;
    }
    size_t max_body = f->max_body;
    if (f->live) {
        const ragd_cfg *now = cfg_live_acquire(f->live);
        max_body = now->max_body_bytes;
        cfg_live_release(now);
    }
    http_head h;
    int rc = http_head_check(buf, (size_t)n, max_body, &h);
    /* has the client shut down its side (all it will send is in the buffer)? */
    struct pollfd pfd = {.fd = p->fd, .events = POLLRDHUP};
    int half_closed = poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP));
    if (rc < 0) {
        metrics_counter_add(RAGD_METRIC_HTTP_HEAD_REFUSED, 1);
        pending_refuse(f, p, RAGD_OK, h.code, h.message);
        return;
    }
    if (rc == 0) {
        if (half_closed) {
            metrics_counter_add(RAGD_METRIC_HTTP_HEAD_REFUSED, 1);
            pending_refuse(f, p, RAGD_OK, "bad_request", "incomplete request head (the client "
                                                         "closed its side)");
        }
        return; /* wait for the rest */
    }
    /* What of a chunked body is here already has its framing checked (libmicrohttpd would
     * answer a malformed one in HTML). The body itself is not awaited: a request whose head
     * arrived is in flight (and counted so by the daemon). */
    size_t want = h.head_len + (h.content_length > 0 ? (size_t)h.content_length : 0);
    int body_complete = (size_t)n >= want;
    if (h.chunked) {
        int c = http_chunked_check(buf + h.head_len, (size_t)n - h.head_len);
        if (c < 0) {
            metrics_counter_add(RAGD_METRIC_HTTP_HEAD_REFUSED, 1);
            pending_refuse(f, p, RAGD_OK, "bad_request", "malformed chunked body framing");
            return;
        }
        body_complete = c == 1;
    }
    if (half_closed) {
        /* all the client will send is here: a body cut short is refused here; a complete
         * request goes through a relay so that the daemon never reads end-of-file */
        if (!body_complete && (size_t)n < sizeof buf) {
            metrics_counter_add(RAGD_METRIC_HTTP_HEAD_REFUSED, 1);
            pending_refuse(f, p, RAGD_OK, "bad_request", "incomplete request body (the client "
                                                         "closed its side)");
            return;
        }
        int head_request = h.method_len == 4 && memcmp(buf, "HEAD", 4) == 0;
        if (relay_start(f, p, head_request) == 0) return;
    }
    handoff(f, p);
}

/* Makes room for one more connection from key. Returns: 1 when there is room. Acceptor only. */
static int room_make(http_front *f, const unsigned char key[16])
{
    for (;;) {
        pthread_mutex_lock(&f->mu);
        ip_count *c = ip_find(f, key, 0);
        int over_ip = c && c->count >= f->max_per_ip;
        int over_total = f->total >= f->max_total;
        pthread_mutex_unlock(&f->mu);
        if (!over_ip && !over_total) return 1;
        /* a refused one still lingering, else the oldest connection still waiting for its head
         * (of this address, when that is the limit hit) */
        pending *victim = NULL;
        for (pending *p = f->closing.head; p && !victim; p = p->next)
            if (p->counted && (!over_ip || memcmp(p->key, key, 16) == 0)) victim = p;
        for (pending *p = f->waiting.head; p && !victim; p = p->next)
            if (p->counted && (!over_ip || memcmp(p->key, key, 16) == 0)) victim = p;
        if (victim == NULL) return 0;
        metrics_counter_add(RAGD_METRIC_HTTP_CONN_EVICTED, 1);
        pending_close(f, victim);
    }
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
                pending *victim = f->closing.head ? f->closing.head : f->waiting.head;
                if (victim) {
                    metrics_counter_add(RAGD_METRIC_HTTP_CONN_EVICTED, 1);
                    pending_close(f, victim);
                }
            }
            return;
        }
        unsigned char key[16];
        addr_key((struct sockaddr *)&addr, key);
        if (!room_make(f, key)) {
            metrics_counter_add(RAGD_METRIC_HTTP_CONN_REFUSED, 1);
            /* answered, then closed lingering (not counted in the limits, at most
             * LINGER_REFUSED_MAX at a time) so that the client reads the 503 */
            pending *q = f->closing_uncounted < LINGER_REFUSED_MAX ? calloc(1, sizeof *q)
                                                                     : NULL;
            struct epoll_event qev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = q};
            if (q == NULL || epoll_ctl(f->epoll_fd, EPOLL_CTL_ADD, fd, &qev) != 0) {
                front_reply(fd, RAGD_OK, "too_many_connections",
                            "too many open connections ([server] max_connections / "
                            "max_connections_per_ip); retry shortly");
                free(q);
                close(fd);
                continue;
            }
            q->fd = fd;
            q->deadline = util_now_ms() + f->request_timeout_ms;
            list_append(f, q); /* on the waiting list only until pending_refuse moves it */
            f->closing_uncounted++;
            pending_refuse(f, q, RAGD_OK, "too_many_connections",
                           "too many open connections ([server] max_connections / "
                           "max_connections_per_ip); retry shortly");
            continue;
        }
        pending *p = calloc(1, sizeof *p);
        int ok = p != NULL;
        if (ok) {
            pthread_mutex_lock(&f->mu);
            ip_count *c = ip_find(f, key, 1);
            if (c) {
                c->count++;
                f->total++;
            }
            pthread_mutex_unlock(&f->mu);
            ok = c != NULL;
        }
        if (!ok) {
            free(p);
            close(fd);
            continue;
        }
        p->fd = fd;
        memcpy(&p->addr, &addr, len);
        p->addr_len = len;
        memcpy(p->key, key, 16);
        p->counted = 1;
        p->deadline = util_now_ms() + f->request_timeout_ms;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = p};
        list_append(f, p);
        if (epoll_ctl(f->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            pending_close(f, p);
            continue;
        }
        pending_read(f, p); /* data may be there already */
    }
}

static void *acceptor(void *arg)
{
    http_front *f = arg;
    struct epoll_event evs[64];
    for (;;) {
        int timeout = -1;
        double next = f->waiting.head ? f->waiting.head->deadline : 0;
        if (f->closing.head && (next == 0 || f->closing.head->deadline < next))
            next = f->closing.head->deadline;
        if (next > 0) {
            double left = next - util_now_ms();
            timeout = left <= 0 ? 0 : (int)left + 1;
        }
        int n = epoll_wait(f->epoll_fd, evs, 64, timeout);
        if (n < 0 && errno != EINTR) break;
        int stop = 0;
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == STOP_TAG) stop = 1;
            else if (tag == LISTEN_TAG) accept_all(f);
        }
        if (stop) break;
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == STOP_TAG || tag == LISTEN_TAG) continue;
            /* a pending closed above (eviction) may still have an event in this batch */
            if (pending_alive(f, tag)) pending_read(f, tag);
        }
        double now = util_now_ms();
        while (f->closing.head && f->closing.head->deadline <= now)
            pending_close(f, f->closing.head);
        while (f->waiting.head && f->waiting.head->deadline <= now) {
            metrics_counter_add(RAGD_METRIC_HTTP_REQUEST_TIMEOUTS, 1);
            pending_refuse(f, f->waiting.head, RAGD_OK, "request_timeout",
                           "the request head did not arrive within [server] request_timeout");
        }
    }
    while (f->waiting.head) pending_close(f, f->waiting.head);
    while (f->closing.head) pending_close(f, f->closing.head);
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
    f->listen_fd = f->epoll_fd = f->stop_fd = -1;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cond, NULL);
    long files = nofile_raise();
    /* keep descriptors for the store, the log, the daemons and relays */
    long usable = files > 256 ? (files - 128) / 2 : 64;
    f->max_total = cfg->max_connections < usable ? cfg->max_connections : (int)usable;
    f->max_per_ip = cfg->max_connections_per_ip;
    f->max_body = cfg->max_body_bytes;
    f->live = live;
    f->request_timeout_ms = cfg->request_timeout_s * 1000;
    int one = 1, en = 0;
    f->listen_fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f->listen_fd < 0 ||
        setsockopt(f->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(f->listen_fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(f->listen_fd, 4096) != 0)
        en = errno;
    freeaddrinfo(ai);
    if (en == 0) {
        f->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        f->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event lev = {.events = EPOLLIN, .data.ptr = (void *)LISTEN_TAG};
        struct epoll_event sev = {.events = EPOLLIN, .data.ptr = (void *)STOP_TAG};
        if (f->epoll_fd < 0 || f->stop_fd < 0 ||
            epoll_ctl(f->epoll_fd, EPOLL_CTL_ADD, f->listen_fd, &lev) != 0 ||
            epoll_ctl(f->epoll_fd, EPOLL_CTL_ADD, f->stop_fd, &sev) != 0)
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

ragd_rc http_front_run(http_front *f, struct MHD_Daemon **daemons, size_t n, ragd_err *err)
{
    f->daemons = daemons;
    f->daemon_count = n;
    if (pthread_create(&f->thread, NULL, acceptor, f) != 0)
        return ragd_err_set(err, RAGD_ERR_IO, "cannot start the acceptor thread");
    f->thread_started = 1;
    return RAGD_OK;
}

void http_front_quiesce(http_front *f)
{
    if (f == NULL) return;
    if (f->thread_started) {
        uint64_t one = 1;
        ssize_t w = write(f->stop_fd, &one, sizeof one);
        (void)w;
        pthread_join(f->thread, NULL);
        f->thread_started = 0;
    }
    /* new connections are refused from now on */
    if (f->listen_fd >= 0) close(f->listen_fd);
    f->listen_fd = -1;
}

void http_front_free(http_front *f)
{
    if (f == NULL) return;
    http_front_quiesce(f);
    /* relays end when their daemon side closes (the daemons are stopped by now) */
    pthread_mutex_lock(&f->mu);
    while (f->relays > 0) pthread_cond_wait(&f->cond, &f->mu);
    pthread_mutex_unlock(&f->mu);
    if (f->epoll_fd >= 0) close(f->epoll_fd);
    if (f->stop_fd >= 0) close(f->stop_fd);
    for (size_t i = 0; i < IP_BUCKETS; i++) {
        for (ip_count *c = f->ips[i], *next; c; c = next) {
            next = c->next;
            free(c);
        }
    }
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cond);
    free(f);
}
