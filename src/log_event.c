/* SPDX-License-Identifier: MIT */
/*
 * log_event.c - the JSONL event log writer: a bounded ring of lines filled by request threads
 * (a mutex held only to store a pointer) and drained by one writer thread, which takes the whole
 * batch, releases the lock and writes it with one write() per batch to a file opened O_APPEND.
 * Writes are paced: a line into an idle writer goes out at once, lines that follow within
 * LOG_EVENT_PACE_MS of a write wait to go out together (sooner when the ring is half full, on a
 * flush, a reopen or the close). A full queue drops the line and counts it; a reopen request
 * (SIGHUP after logrotate) is honoured before the next batch, so lines never go to a renamed
 * file for long.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ragd/log.h"
#include "ragd/log_event.h"
#include "ragd/metrics.h"
#include "ragd/util.h"

/* The least time between two writes while lines keep coming, in ms. Without it every retrieval
 * woke the writer (a futex wake on the request's thread, a context switch, a write() per line):
 * at concurrency 1, 603 us of daemon CPU per request before the pacing, 555 after
 * (bench/NOTES.md, session 8). A crash loses at most what the ring holds, as before, plus these
 * few ms of lines. */
#define LOG_EVENT_PACE_MS 10

struct log_event {
    char *path;
    int fd;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work;    /* lines queued, reopen asked, pause lifted or closing */
    pthread_cond_t drained; /* the writer finished a batch */
    char **ring;            /* capacity slots; lines end with '\n' */
    size_t *lens;
    size_t capacity, head, count;
    int reopen, paused, closing, busy;
    int flushers;   /* log_event_flush callers waiting: no pacing */
    double last_ms; /* util_now_ms() after the last write */
    atomic_uint_fast64_t dropped;
};

static _Atomic(log_event *) global_log;

static int file_open(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

static void drop(log_event *w)
{
    atomic_fetch_add(&w->dropped, 1);
    metrics_counter_add(RAGD_METRIC_LOG_DROPPED, 1);
}

static void reopen_now(log_event *w)
{
    int fd = file_open(w->path);
    if (fd < 0) {
        /* Keep writing to the old file rather than lose lines. */
        RAGD_LOG(RAGD_LOG_WARN, "log", "cannot reopen %s: %s; still writing to the old file",
                 w->path, strerror(errno));
        return;
    }
    if (w->fd >= 0) close(w->fd);
    w->fd = fd;
    RAGD_LOG(RAGD_LOG_INFO, "log", "reopened %s", w->path);
}

/* Writes n lines; counts the lines of a failed write as dropped. */
static void batch_write(log_event *w, char **lines, size_t *lens, size_t n)
{
    util_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        if (util_buf_append(&b, lines[i], lens[i]) != 0) drop(w);
        free(lines[i]);
    }
    size_t off = 0;
    while (off < b.len) {
        ssize_t put = write(w->fd, b.data + off, b.len - off);
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) {
            static atomic_int warned;
            if (!atomic_exchange(&warned, 1))
                RAGD_LOG(RAGD_LOG_WARN, "log", "cannot write %s: %s; lines are dropped", w->path,
                         strerror(errno));
            for (size_t i = 0; i < n; i++) drop(w);
            break;
        }
        off += (size_t)put;
    }
    util_buf_free(&b);
}

/* Waits, while lines are queued, until LOG_EVENT_PACE_MS after the last write, unless the ring
 * is half full or a flush, reopen, pause or close asks for the writer. Caller holds w->mu. */
static void pace(log_event *w)
{
    double due = w->last_ms + LOG_EVENT_PACE_MS;
    while (!w->closing && !w->reopen && !w->paused && w->flushers == 0 &&
           w->count < w->capacity / 2) {
        double left = due - util_now_ms();
        if (left <= 0.0) break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long ns = (long long)ts.tv_nsec + (long long)(left * 1e6) + 1;
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        pthread_cond_timedwait(&w->work, &w->mu, &ts); /* on CLOCK_MONOTONIC (log_event_open) */
    }
}

static void *writer_main(void *arg)
{
    log_event *w = arg;
    char **lines = calloc(w->capacity, sizeof *lines);
    size_t *lens = calloc(w->capacity, sizeof *lens);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->closing && !w->reopen && (w->count == 0 || w->paused))
            pthread_cond_wait(&w->work, &w->mu);
        if (w->reopen) {
            w->reopen = 0;
            w->busy = 1;
            pthread_mutex_unlock(&w->mu);
            reopen_now(w);
            pthread_mutex_lock(&w->mu);
            w->busy = 0;
            pthread_cond_broadcast(&w->drained);
            continue;
        }
        if (w->count == 0 || (w->paused && !w->closing)) {
            if (w->closing) break;
            continue;
        }
        pace(w);
        if (w->reopen || (w->paused && !w->closing)) continue;
        size_t n = 0;
        while (w->count > 0) {
            size_t i = w->head;
            if (lines != NULL && lens != NULL) {
                lines[n] = w->ring[i];
                lens[n] = w->lens[i];
                n++;
            } else {
                free(w->ring[i]);
                drop(w);
            }
            w->ring[i] = NULL;
            w->head = (w->head + 1) % w->capacity;
            w->count--;
        }
        w->busy = 1;
        pthread_mutex_unlock(&w->mu);
        batch_write(w, lines, lens, n);
        pthread_mutex_lock(&w->mu);
        w->busy = 0;
        w->last_ms = util_now_ms();
        pthread_cond_broadcast(&w->drained);
    }
    pthread_cond_broadcast(&w->drained);
    pthread_mutex_unlock(&w->mu);
    free(lines);
    free(lens);
    return NULL;
}

ragd_rc log_event_open(const char *path, size_t capacity, log_event **out, ragd_err *err)
{
    if (path == NULL || path[0] == '\0' || capacity == 0)
        return ragd_err_set(err, RAGD_ERR_INVALID, "event log needs a path and a capacity");
    char *copy = strdup(path);
    if (copy == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    ragd_rc rc = util_mkdir_p(dirname(copy), err);
    free(copy);
    if (rc != RAGD_OK) return rc;
    log_event *w = calloc(1, sizeof *w);
    if (w == NULL) return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    w->path = strdup(path);
    w->ring = calloc(capacity, sizeof *w->ring);
    w->lens = calloc(capacity, sizeof *w->lens);
    w->capacity = capacity;
    w->fd = -1;
    if (w->path == NULL || w->ring == NULL || w->lens == NULL) {
        free(w->path);
        free(w->ring);
        free(w->lens);
        free(w);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    w->fd = file_open(path);
    if (w->fd < 0) {
        int en = errno;
        free(w->path);
        free(w->ring);
        free(w->lens);
        free(w);
        return ragd_err_set(err, RAGD_ERR_IO, "cannot open log file %s: %s", path, strerror(en));
    }
    atomic_init(&w->dropped, 0);
    w->last_ms = -LOG_EVENT_PACE_MS; /* the first line goes out at once */
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC); /* pace()'s deadlines */
    pthread_cond_init(&w->work, &monotonic);
    pthread_condattr_destroy(&monotonic);
    pthread_cond_init(&w->drained, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        close(w->fd);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->work);
        pthread_cond_destroy(&w->drained);
        free(w->path);
        free(w->ring);
        free(w->lens);
        free(w);
        return ragd_err_set(err, RAGD_ERR_IO, "cannot start the log writer thread");
    }
    *out = w;
    return RAGD_OK;
}

int log_event_write(log_event *w, const char *line, size_t len)
{
    if (w == NULL) return -1;
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        drop(w);
        return -1;
    }
    memcpy(copy, line, len);
    copy[len] = '\n';
    pthread_mutex_lock(&w->mu);
    if (w->closing || w->count == w->capacity) {
        pthread_mutex_unlock(&w->mu);
        free(copy);
        drop(w);
        return -1;
    }
    size_t slot = (w->head + w->count) % w->capacity;
    w->ring[slot] = copy;
    w->lens[slot] = len + 1;
    /* Only the first line into an empty queue wakes the writer: it takes every queued line
     * before it waits again, so a wake per line under load was spent finding them taken. A
     * half-full ring cuts its pacing short. The signal follows the unlock, or the woken writer
     * blocks on the lock at once (the condition outlives every write: log_event_close runs
     * after the last one). */
    ++w->count;
    int wake = w->count == 1 || w->count == w->capacity / 2;
    pthread_mutex_unlock(&w->mu);
    if (wake) pthread_cond_signal(&w->work);
    return 0;
}

void log_event_reopen(log_event *w)
{
    if (w == NULL) return;
    pthread_mutex_lock(&w->mu);
    w->reopen = 1;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
}

void log_event_flush(log_event *w)
{
    if (w == NULL) return;
    pthread_mutex_lock(&w->mu);
    w->flushers++; /* the writer stops pacing */
    pthread_cond_signal(&w->work);
    while ((w->count > 0 && !w->paused) || w->reopen || w->busy)
        pthread_cond_wait(&w->drained, &w->mu);
    w->flushers--;
    pthread_mutex_unlock(&w->mu);
}

void log_event_pause(log_event *w, int paused)
{
    if (w == NULL) return;
    pthread_mutex_lock(&w->mu);
    w->paused = paused != 0;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
}

uint64_t log_event_dropped(log_event *w)
{
    return w ? atomic_load(&w->dropped) : 0;
}

void log_event_close(log_event *w)
{
    if (w == NULL) return;
    log_event *self = w;
    atomic_compare_exchange_strong(&global_log, &self, NULL);
    pthread_mutex_lock(&w->mu);
    w->closing = 1;
    w->paused = 0;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    for (size_t i = 0; i < w->count; i++) free(w->ring[(w->head + i) % w->capacity]);
    if (w->fd >= 0) close(w->fd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->work);
    pthread_cond_destroy(&w->drained);
    free(w->path);
    free(w->ring);
    free(w->lens);
    free(w);
}

void log_event_global_set(log_event *w)
{
    atomic_store(&global_log, w);
}

log_event *log_event_global(void)
{
    return atomic_load(&global_log);
}
