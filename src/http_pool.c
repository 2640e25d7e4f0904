/* SPDX-License-Identifier: MIT */
/*
 * http_pool.c - a fixed pool of worker threads running queued jobs, used by the HTTP server for
 * its route handlers and for the retrievals that async routes hand off (src/http_server.c).
 * Jobs run in the order queued. An idle worker sleeps on its own condition on a stack, the most
 * recently idle on top, and a push wakes the top one: at low concurrency the same warm thread
 * (its stack, its caches, the per-thread buffers of the search below it) takes request after
 * request, instead of each going to the longest-idle, coldest thread as one shared condition
 * would have it. The pool allocates nothing per job: the job is the caller's (http_pool_job
 * embedded in its own struct).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "http_int.h"

/* A worker of a pool, asleep on its own condition while on the pool's idle stack. */
typedef struct pool_worker {
    struct http_pool *pool;
    size_t index;
    pthread_cond_t cond;       /* a job queued for it (taken off the stack), or stop */
    int idle;                  /* on the idle stack (under the pool's mu) */
    struct pool_worker *below; /* the next on the idle stack */
} pool_worker;

struct http_pool {
    pthread_t *threads;
    pool_worker *workers; /* count of them, their conditions initialised */
    size_t count, started;
    pthread_mutex_t mu;
    pool_worker *idle_top; /* the most recently idle worker */
    size_t idle_count;     /* workers on the idle stack */
    pthread_cond_t idle;   /* http_pool_wait_idle: a job finished or a worker went idle */
    int idle_waiters;      /* callers in http_pool_wait_idle (then the workers signal idle) */
    http_pool_job *head, *tail;
    int stop;
    int running; /* jobs being run */
};

/* Takes w off p's idle stack if it is there. Caller holds p->mu. */
static void idle_remove(http_pool *p, pool_worker *w)
{
    for (pool_worker **at = &p->idle_top; *at; at = &(*at)->below)
        if (*at == w) {
            *at = w->below;
            p->idle_count--;
            break;
        }
    w->idle = 0;
    w->below = NULL;
}

static void *worker_main(void *arg)
{
    pool_worker *w = arg;
    http_pool *p = w->pool;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        /* From the end of a job to the idle stack under one hold of mu: when http_pool_wait_idle
         * sees nothing running, every worker that ran something is back on the stack. */
        while (!p->stop && p->head == NULL) {
            w->below = p->idle_top;
            p->idle_top = w;
            w->idle = 1;
            p->idle_count++;
            if (p->idle_waiters) pthread_cond_broadcast(&p->idle);
            /* a push or the stop takes w off the stack (idle 0) before it signals; a spurious
             * wake-up waits again */
            while (w->idle && !p->stop) pthread_cond_wait(&w->cond, &p->mu);
            if (w->idle) idle_remove(p, w);
        }
        http_pool_job *j = p->head;
        if (j == NULL) break; /* stopping, nothing left */
        p->head = j->next;
        if (p->head == NULL) p->tail = NULL;
        p->running++;
        pthread_mutex_unlock(&p->mu);
        j->run(j, w->index); /* may free j */
        pthread_mutex_lock(&p->mu);
        p->running--;
        if (p->idle_waiters) pthread_cond_broadcast(&p->idle);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

http_pool *http_pool_new(size_t n)
{
    if (n == 0) n = 1;
    http_pool *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->idle, NULL);
    p->threads = calloc(n, sizeof *p->threads);
    p->workers = calloc(n, sizeof *p->workers);
    if (p->threads == NULL || p->workers == NULL) {
        http_pool_free(p);
        return NULL;
    }
    p->count = n;
    for (size_t i = 0; i < n; i++) {
        p->workers[i].pool = p;
        p->workers[i].index = i;
        pthread_cond_init(&p->workers[i].cond, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]) != 0) {
            http_pool_stop(p);
            http_pool_free(p);
            return NULL;
        }
        p->started++;
    }
    return p;
}

int http_pool_push(http_pool *p, http_pool_job *job)
{
    if (p == NULL) return -2;
    job->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->stop) {
        pthread_mutex_unlock(&p->mu);
        return -2;
    }
    if (p->tail) p->tail->next = job;
    else p->head = job;
    p->tail = job;
    /* No idle worker: all are running or woken already, and each looks at the queue before it
     * sleeps again. */
    pool_worker *w = p->idle_top;
    if (w) idle_remove(p, w);
    pthread_mutex_unlock(&p->mu);
    /* Signalled after the unlock: a worker woken under the lock would block on it at once. Its
     * condition lives until http_pool_free, after the last push. */
    if (w) pthread_cond_signal(&w->cond);
    return 0;
}

int http_pool_wait_idle(http_pool *p, const struct timespec *deadline)
{
    if (p == NULL) return 0;
    pthread_mutex_lock(&p->mu);
    p->idle_waiters++;
    /* a job's exchange can end (in flight 0) a moment before the job itself returns */
    while ((p->running > 0 || p->head != NULL || (!p->stop && p->idle_count < p->started)) &&
           pthread_cond_timedwait(&p->idle, &p->mu, deadline) != ETIMEDOUT) {
    }
    p->idle_waiters--;
    int n = p->running + (p->head != NULL);
    pthread_mutex_unlock(&p->mu);
    return n;
}

void http_pool_stop(http_pool *p)
{
    if (p == NULL) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    /* every idle worker woken; the others see stop when the queue is empty */
    for (pool_worker *w = p->idle_top, *below; w; w = below) {
        below = w->below;
        w->idle = 0;
        w->below = NULL;
        pthread_cond_signal(&w->cond);
    }
    p->idle_top = NULL;
    p->idle_count = 0;
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->started; i++) pthread_join(p->threads[i], NULL);
    p->started = 0;
}

void http_pool_free(http_pool *p)
{
    if (p == NULL) return;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->idle);
    for (size_t i = 0; p->workers && i < p->count; i++) pthread_cond_destroy(&p->workers[i].cond);
    free(p->workers);
    free(p->threads);
    free(p);
}
