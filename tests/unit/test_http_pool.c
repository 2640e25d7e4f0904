/* SPDX-License-Identifier: MIT */
/*
 * test_http_pool.c - unit tests for the HTTP server's worker pool (src/http_pool.c): an idle
 * pool hands job after job to the most recently idle worker (the same warm thread at
 * concurrency 1), jobs queued together spread over all the workers, a stop runs every job
 * queued before it and refuses later pushes, and http_pool_wait_idle reports what is left at its
 * deadline. No timed assertions: jobs block on gates the test opens.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../src/http_int.h"

#define WORKERS 4

/* What the jobs of a test share. */
typedef struct board {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int gate_open;   /* gated jobs wait for it */
    int started;     /* jobs that began */
    int done;        /* jobs that ended */
    size_t last_worker;
    int seen[WORKERS]; /* jobs run by each worker */
} board;

typedef struct test_job {
    http_pool_job job; /* first */
    board *b;
    int gated;
} test_job;

static void board_init(board *b)
{
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cond, NULL);
}

static void board_destroy(board *b)
{
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cond);
}

static void job_run(http_pool_job *pj, size_t worker)
{
    test_job *j = (test_job *)pj;
    board *b = j->b;
    pthread_mutex_lock(&b->mu);
    b->started++;
    if (worker < WORKERS) b->seen[worker]++;
    b->last_worker = worker;
    pthread_cond_broadcast(&b->cond);
    while (j->gated && !b->gate_open) pthread_cond_wait(&b->cond, &b->mu);
    b->done++;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
}

static test_job *job_new(board *b, int gated)
{
    test_job *j = calloc(1, sizeof *j);
    assert_non_null(j);
    j->job.run = job_run;
    j->b = b;
    j->gated = gated;
    return j;
}

static struct timespec deadline_in(int seconds)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += seconds;
    return t;
}

static void gate_open(board *b)
{
    pthread_mutex_lock(&b->mu);
    b->gate_open = 1;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
}

/* Waits (no deadline: the test hangs rather than flakes) until n jobs of b started. */
static void wait_started(board *b, int n)
{
    pthread_mutex_lock(&b->mu);
    while (b->started < n) pthread_cond_wait(&b->cond, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

/* Jobs pushed one at a time, each after the pool went idle again, all go to the worker that ran
 * the first one: the most recently idle is woken, not the longest idle. */
static void test_pool_lifo_same_worker(void **state)
{
    (void)state;
    board b;
    board_init(&b);
    http_pool *p = http_pool_new(WORKERS);
    assert_non_null(p);
    struct timespec far = deadline_in(120);
    assert_int_equal(http_pool_wait_idle(p, &far), 0); /* every worker asleep on the stack */
    test_job *jobs[24];
    size_t first = WORKERS;
    for (int i = 0; i < 24; i++) {
        jobs[i] = job_new(&b, 0);
        assert_int_equal(http_pool_push(p, &jobs[i]->job), 0);
        assert_int_equal(http_pool_wait_idle(p, &far), 0);
        pthread_mutex_lock(&b.mu);
        assert_int_equal(b.done, i + 1);
        if (i == 0) first = b.last_worker;
        assert_int_equal(b.last_worker, first);
        pthread_mutex_unlock(&b.mu);
    }
    assert_int_equal(b.seen[first], 24);
    http_pool_stop(p);
    http_pool_free(p);
    for (int i = 0; i < 24; i++) free(jobs[i]);
    board_destroy(&b);
}

/* As many jobs as workers, all blocked at once: each worker takes one (none waits in the queue
 * while a worker sleeps); the pool is idle again once they end. */
static void test_pool_spreads_when_busy(void **state)
{
    (void)state;
    board b;
    board_init(&b);
    http_pool *p = http_pool_new(WORKERS);
    assert_non_null(p);
    test_job *jobs[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        jobs[i] = job_new(&b, 1);
        assert_int_equal(http_pool_push(p, &jobs[i]->job), 0);
    }
    wait_started(&b, WORKERS);
    for (int w = 0; w < WORKERS; w++) assert_int_equal(b.seen[w], 1);
    struct timespec soon = deadline_in(0);
    assert_int_equal(http_pool_wait_idle(p, &soon), WORKERS); /* the deadline passed */
    gate_open(&b);
    struct timespec far = deadline_in(120);
    assert_int_equal(http_pool_wait_idle(p, &far), 0);
    assert_int_equal(b.done, WORKERS);
    http_pool_stop(p);
    http_pool_free(p);
    for (int i = 0; i < WORKERS; i++) free(jobs[i]);
    board_destroy(&b);
}

static void *stopper(void *arg)
{
    http_pool_stop(arg);
    return NULL;
}

/* A stop runs every job queued before it (behind a job still running), and refuses pushes once
 * it has begun; a NULL pool refuses too. */
static void test_pool_stop_runs_queued(void **state)
{
    (void)state;
    board b;
    board_init(&b);
    http_pool *p = http_pool_new(1);
    assert_non_null(p);
    test_job *jobs[4096];
    int pushed = 0;
    jobs[pushed] = job_new(&b, 1);
    assert_int_equal(http_pool_push(p, &jobs[pushed++]->job), 0);
    wait_started(&b, 1);
    for (int i = 0; i < 5; i++) {
        jobs[pushed] = job_new(&b, 0);
        assert_int_equal(http_pool_push(p, &jobs[pushed++]->job), 0);
    }
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stopper, p), 0);
    /* push until the stop has begun (the one worker is held by the gate meanwhile) */
    int refused = 0;
    while (!refused) {
        assert_true(pushed < 4096);
        test_job *j = job_new(&b, 0);
        if (http_pool_push(p, &j->job) == 0) {
            jobs[pushed++] = j;
            if (pushed == 4096) { /* the stopper has not run yet: let it */
                gate_open(&b);
                break;
            }
            nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL); /* the stopper's turn */
        } else {
            refused = 1;
            free(j);
        }
    }
    gate_open(&b);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(b.done, pushed); /* every accepted job ran */
    test_job extra = {.job.run = job_run, .b = &b};
    assert_int_equal(http_pool_push(p, &extra.job), -2);
    assert_int_equal(http_pool_push(NULL, &extra.job), -2);
    assert_int_equal(b.done, pushed);
    http_pool_free(p);
    for (int i = 0; i < pushed; i++) free(jobs[i]);
    board_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_lifo_same_worker),
        cmocka_unit_test(test_pool_spreads_when_busy),
        cmocka_unit_test(test_pool_stop_runs_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
