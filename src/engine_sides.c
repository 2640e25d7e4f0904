/* SPDX-License-Identifier: MIT */
/*
 * engine_sides.c - the helper threads that run hybrid retrievals' keyword sides beside their
 * vector sides ([retrieve] parallel_sides). Session 4 started a thread per request (pthread_create
 * + join, ~50-100 us of the request's latency on this machine) and only after the query
 * embedding; the pool keeps its threads, so a request hands its keyword side over at its start
 * (before the embedding) and picks the result up after its vector side.
 *
 * Threads start on demand, one more whenever a job finds none idle, up to the pool's max; past
 * that jobs wait in the queue. A job nobody has picked up yet can be taken back by its request
 * (engine_sides_finish with take_back) and run on the request's own thread: a queued job means
 * no core came free for it during the whole vector side, so waiting on would only add latency.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

/* A helper thread: runs queued jobs until the pool stops. */
static void *sides_worker(void *arg)
{
    engine_sides *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->head == NULL && !p->stopping) pthread_cond_wait(&p->work, &p->mu);
        if (p->head == NULL) break; /* stopping, queue empty */
        engine_side_job *j = p->head;
        p->head = j->next;
        if (p->head == NULL) p->tail = NULL;
        j->state = RAGD_SIDE_JOB_RUNNING;
        p->idle--;
        pthread_mutex_unlock(&p->mu);
        int ran = j->run(j->arg);
        pthread_mutex_lock(&p->mu);
        p->idle++;
        j->state = ran ? RAGD_SIDE_JOB_DONE : RAGD_SIDE_JOB_DECLINED;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void engine_sides_init(engine_sides *p, int max)
{
    memset(p, 0, sizeof *p);
    p->max = max > 0 ? max : 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
}

void engine_sides_destroy(engine_sides *p)
{
    if (p == NULL) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->count; i++) pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
}

int engine_sides_submit(engine_sides *p, engine_side_job *j)
{
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    if (p->idle == 0 && p->count < p->max) {
        if (p->threads == NULL) p->threads = calloc((size_t)p->max, sizeof *p->threads);
        if (p->threads != NULL &&
            pthread_create(&p->threads[p->count], NULL, sides_worker, p) == 0) {
            p->count++;
            p->idle++;
        }
    }
    if (p->count == 0) { /* no thread could be started: the caller runs the job itself */
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    j->state = RAGD_SIDE_JOB_QUEUED;
    j->next = NULL;
    if (p->tail != NULL)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

/* Removes j from the queue (p->mu held, j queued). */
static void queue_unlink(engine_sides *p, engine_side_job *j)
{
    engine_side_job **at = &p->head, *prev = NULL;
    while (*at != NULL && *at != j) {
        prev = *at;
        at = &(*at)->next;
    }
    if (*at == NULL) return;
    *at = j->next;
    if (p->tail == j) p->tail = prev;
    j->next = NULL;
}

engine_side_job_state engine_sides_finish(engine_sides *p, engine_side_job *j, int take_back)
{
    pthread_mutex_lock(&p->mu);
    if (take_back && j->state == RAGD_SIDE_JOB_QUEUED) {
        queue_unlink(p, j);
        j->state = RAGD_SIDE_JOB_TAKEN;
    }
    while (j->state == RAGD_SIDE_JOB_QUEUED || j->state == RAGD_SIDE_JOB_RUNNING)
        pthread_cond_wait(&p->done, &p->mu);
    engine_side_job_state s = j->state;
    pthread_mutex_unlock(&p->mu);
    return s;
}
