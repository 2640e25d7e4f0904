/* SPDX-License-Identifier: MIT */
/*
 * http_jobs.c - bookkeeping for ingest jobs: every POST /ingest becomes a job (waited for by the
 * request when "wait" is true, the default; answered 202 with its id otherwise). The table holds
 * the running job and the last finished ones (oldest dropped first) with their progress and final
 * report, for GET /jobs/{id}. It also enforces one ingest at a time: starting a job while another
 * runs fails with the running job's id. All under one mutex; the engine's progress callback
 * updates the counters.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "ragd/util.h"

#define JOBS_KEPT 64

typedef struct job {
    char id[HTTP_JOB_ID_MAX];
    char *path;
    int reset, wait;
    int running;
    int64_t created_at, finished_at;
    engine_ingest_progress progress; /* .relative unused */
    json_t *result; /* new reference: the report (200) or the error body, once finished */
    unsigned status; /* HTTP status of the result */
} job;

struct http_jobs {
    pthread_mutex_t mu;
    job *items[JOBS_KEPT]; /* ring: oldest first */
    size_t count;
    unsigned long next;
    int64_t epoch;
};

http_jobs *http_jobs_new(void)
{
    http_jobs *j = calloc(1, sizeof *j);
    if (j == NULL) return NULL;
    pthread_mutex_init(&j->mu, NULL);
    j->epoch = util_unix_time();
    return j;
}

static void job_free(job *jb)
{
    if (jb == NULL) return;
    free(jb->path);
    json_decref(jb->result);
    free(jb);
}

void http_jobs_free(http_jobs *j)
{
    if (j == NULL) return;
    for (size_t i = 0; i < j->count; i++) job_free(j->items[i]);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

static job *job_find(http_jobs *j, const char *id)
{
    for (size_t i = 0; i < j->count; i++)
        if (strcmp(j->items[i]->id, id) == 0) return j->items[i];
    return NULL;
}

ragd_rc http_jobs_start(http_jobs *j, const char *path, int reset, int wait,
                        char id[HTTP_JOB_ID_MAX], ragd_err *err)
{
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; i < j->count; i++) {
        if (j->items[i]->running) {
            snprintf(id, HTTP_JOB_ID_MAX, "%s", j->items[i]->id);
            pthread_mutex_unlock(&j->mu);
            return ragd_err_set(err, RAGD_ERR_BUSY, "an ingest is already running (job %s); "
                                "one ingest runs at a time per store", id);
        }
    }
    job *jb = calloc(1, sizeof *jb);
    char *p = strdup(path);
    if (jb == NULL || p == NULL) {
        free(jb);
        free(p);
        pthread_mutex_unlock(&j->mu);
        return ragd_err_set(err, RAGD_ERR_NOMEM, "out of memory");
    }
    /* ids are unique across restarts of the daemon too: start time, then a counter */
    snprintf(jb->id, sizeof jb->id, "%llx-%lu", (unsigned long long)j->epoch, ++j->next);
    jb->path = p;
    jb->reset = reset;
    jb->wait = wait;
    jb->running = 1;
    jb->created_at = util_unix_time();
    if (j->count == JOBS_KEPT) {
        /* drop the oldest finished job (the running one is never dropped: it is the newest) */
        job_free(j->items[0]);
        memmove(j->items, j->items + 1, sizeof j->items[0] * (JOBS_KEPT - 1));
        j->count--;
    }
    j->items[j->count++] = jb;
    snprintf(id, HTTP_JOB_ID_MAX, "%s", jb->id);
    pthread_mutex_unlock(&j->mu);
    return RAGD_OK;
}

void http_jobs_progress(http_jobs *j, const char *id, const engine_ingest_progress *p)
{
    pthread_mutex_lock(&j->mu);
    job *jb = job_find(j, id);
    if (jb) {
        jb->progress = *p;
        jb->progress.relative = NULL;
    }
    pthread_mutex_unlock(&j->mu);
}

void http_jobs_finish(http_jobs *j, const char *id, const http_reply *reply)
{
    pthread_mutex_lock(&j->mu);
    job *jb = job_find(j, id);
    if (jb) {
        jb->running = 0;
        jb->finished_at = util_unix_time();
        jb->status = reply->status;
        jb->result = reply->body ? json_deep_copy(reply->body) : NULL;
        if (reply->status == 200) {
            /* the report's counts are final: the progress agrees with them */
            json_t *docs = json_object_get(jb->result, "documents");
            json_t *chunks = json_object_get(jb->result, "chunks");
            jb->progress.files_done = jb->progress.files_total;
            jb->progress.chunks_embedded = json_integer_value(json_object_get(chunks, "embedded"));
            jb->progress.errors = json_integer_value(json_object_get(docs, "failed"));
        }
    }
    pthread_mutex_unlock(&j->mu);
}

json_t *http_jobs_json(http_jobs *j, const char *id)
{
    pthread_mutex_lock(&j->mu);
    job *jb = job_find(j, id);
    json_t *o = NULL;
    if (jb) {
        const char *state = jb->running ? "running" : jb->status == 200 ? "done" : "failed";
        o = json_pack("{s:s, s:s, s:s, s:b, s:b, s:I, s:o, s:{s:I, s:I, s:I, s:I}}", "id", jb->id,
                      "state", state, "path", jb->path, "reset", jb->reset, "wait", jb->wait,
                      "created_at", (json_int_t)jb->created_at,
                      "finished_at", jb->running ? json_null()
                                                 : json_integer((json_int_t)jb->finished_at),
                      "progress", "files_done", (json_int_t)jb->progress.files_done,
                      "files_total", (json_int_t)jb->progress.files_total, "chunks_embedded",
                      (json_int_t)jb->progress.chunks_embedded, "errors",
                      (json_int_t)jb->progress.errors);
        if (o && !jb->running) {
            json_t *res = jb->result ? json_incref(jb->result) : json_null();
            if (jb->status == 200) {
                json_object_set_new(o, "report", res);
                json_object_set_new(o, "error", json_null());
            } else {
                json_object_set_new(o, "report", json_null());
                json_t *e = json_object_get(res, "error");
                json_object_set(o, "error", e ? e : json_null());
                json_decref(res);
            }
        } else if (o) {
            json_object_set_new(o, "report", json_null());
            json_object_set_new(o, "error", json_null());
        }
    }
    pthread_mutex_unlock(&j->mu);
    return o;
}

http_reply http_handle_job(const http_request *req)
{
    json_t *job = req->jobs ? http_jobs_json(req->jobs, req->id) : NULL;
    if (job) return (http_reply){.status = 200, .body = job};
    return http_reply_error(RAGD_ERR_NOT_FOUND, NULL, "no such job (jobs are kept in memory: the "
                            "last 64 of this daemon's run)");
}
