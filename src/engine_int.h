/* SPDX-License-Identifier: MIT */
/*
 * engine_int.h - engine internals shared by the engine's files: src/engine.c (open, the data-dir
 * lock, stats), src/engine_ingest.c (the write path), src/engine_retrieve.c (the read path) and
 * src/engine_docs.c (pushed documents). Not part of the public interface.
 *
 * The engine sees the store only through the store interface (ragd/store.h): every file of the
 * engine includes this header, which defines RAGD_STORE_INTERFACE_ONLY first, so a call into a
 * backend's own functions does not compile here.
 */
#ifndef RAGD_ENGINE_INT_H
#define RAGD_ENGINE_INT_H

#define RAGD_STORE_INTERFACE_ONLY
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "ragd/cache.h"
#include "ragd/embed.h"
#include "ragd/engine.h"
#include "ragd/ingest.h"
#include "ragd/store.h"

/* ---- write faults (src/engine_fault.c) -------------------------------------------------------
 * A write to the data dir failed: retrievals go on from memory, writes are refused until a probe
 * succeeds. The engine_fault_* functions are thread-safe. */
typedef struct engine_fault {
    pthread_mutex_t mu;
    int active;           /* a write failed and no probe has succeeded since */
    char reason[384];     /* "what: why" of the latest failure */
    int64_t since;        /* unix seconds of the first failure of this episode */
    double next_probe_ms; /* monotonic; no probe before */
    uint64_t failures;    /* failures noted since start */
} engine_fault;

/* One sample of the machine's CPU time (parallel_sides auto), in /proc/stat's ticks. */
typedef struct engine_cpu_sample {
    unsigned long long idle, total; /* /proc/stat's aggregate line: idle + iowait, all */
    unsigned long long own;         /* this process's CPU time */
} engine_cpu_sample;

/* How much of the machine's cores other processes leave free, sampled for [retrieve]
 * parallel_sides auto (src/engine_cpu.c). */
typedef struct engine_cpu {
    pthread_mutex_t mu;             /* held by the request refreshing the sample (trylock) */
    double sampled_at;              /* util_now_ms() of the last sample, 0 before the first */
    engine_cpu_sample last;         /* the last sample */
    int online;                     /* online CPUs (the aggregate line's scale) */
    atomic_int free_milli;          /* cores x 1000 idle or used by this process over the last
                                     * interval, -1 unknown */
} engine_cpu;

/* ---- keyword-side helper threads (src/engine_sides.c) -------------------------------------- */

typedef enum engine_side_job_state {
    RAGD_SIDE_JOB_QUEUED,   /* waiting for a helper thread */
    RAGD_SIDE_JOB_RUNNING,  /* a helper thread runs it */
    RAGD_SIDE_JOB_DONE,     /* run by a helper thread */
    RAGD_SIDE_JOB_DECLINED, /* a helper thread picked it up, its run returned 0: not done */
    RAGD_SIDE_JOB_TAKEN     /* taken back from the queue unrun (engine_sides_finish) */
} engine_side_job_state;

/* A job for the helper threads: run(arg) returns 1 when it did the work, 0 when it declined
 * (the submitter then does it). Owned by the submitter, which must call engine_sides_finish
 * before freeing it. */
typedef struct engine_side_job {
    int (*run)(void *arg);
    void *arg;
    engine_side_job_state state; /* under the pool's mu */
    struct engine_side_job *next;
} engine_side_job;

typedef struct engine_sides {
    pthread_mutex_t mu;
    pthread_cond_t work, done;   /* a job queued; a job finished */
    engine_side_job *head, *tail; /* queued jobs, oldest first */
    pthread_t *threads;          /* started on demand */
    int max, count, idle, stopping; /* threads at most, started, waiting for a job */
} engine_sides;

#define RAGD_SIDES_THREADS_MAX 16 /* the engine's helper threads at most */

/* Consistency model. A write transaction of the store is one or several documents (or one
 * removal); the engine holds the write side of `rw` across it and retrievals hold the read side
 * across vector search, keyword search and chunk fetch, so they see a document either wholly
 * before or wholly after its update, whatever the backend. */
struct engine {
    const ragd_cfg *cfg;
    size_t max_file_bytes;      /* the running ingest's file limit (engine_ingest_opts); read and
                                 * written only by the ingest thread, under ingest_mu */
    int readonly;
    int lock_fd;
    store *st;                  /* the backend [store] vector_backend names */
    embed_provider *embedder;
    cache_query *cache;         /* query embeddings: in-process LRU, then Redis */
    retrieve_reranker *reranker; /* [rerank]; NULL when provider = none */
    struct prefetch *prefetch;  /* the running ingest's prefetched embeddings; read and written
                                 * only by the ingest thread, under write_mu */
    pthread_rwlock_t rw;        /* the commit point; see above */
    pthread_mutex_t ingest_mu;  /* one ingest at a time */
    pthread_mutex_t write_mu;   /* the store's writer: an ingest holds it per document, a pushed
                                 * document for its upsert */
    pthread_mutex_t status_mu;  /* the last_* fields below */
    atomic_int ingest_running;
    atomic_int cancelled;       /* engine_ingest_cancel was called */
    atomic_int retrievals;      /* engine_retrieve calls in flight ([retrieve] parallel_sides
                                 * auto) */
    int cpus;                   /* CPUs this process may run on (at engine_open) */
    engine_cpu cpu;             /* the machine's idle cores, sampled (parallel_sides auto) */
    engine_sides sides;         /* helper threads for hybrid keyword sides (parallel_sides) */
    atomic_uint_fast64_t writes; /* write transactions committed or rolled back: bumped under the
                                  * write side of rw, so stable under its read side */
    int model_pending;          /* store has another model; only an ingest with reset may run */
    const char *ingest_collection; /* the running ingest's collection (under ingest_mu) */
    int64_t last_ingest_at;
    int last_ingest_ok;
    engine_fault fault;         /* a write to the data dir failed (src/engine_fault.c) */
};

/* Stores one document given as extracted text under row->path: when the stored row has the
 * same checksum nothing happens (RAGD_PUSH_UNCHANGED); otherwise it is chunked, embedded (stored
 * embeddings re-used) and committed. Takes the engine's write turn. doc is stolen (zeroed) when
 * the document is (re)built. Returns: RAGD_OK, *outcome, *chunks. */
ragd_rc engine_doc_upsert(engine *e, const store_doc *row, ingest_doc *doc,
                          engine_push_outcome *outcome, int64_t *chunks, ragd_err *err);

/* Deletes the document stored under path in collection (NULL: "default").
 * Returns: RAGD_OK or RAGD_ERR_NOT_FOUND. */
ragd_rc engine_doc_remove_path(engine *e, const char *collection, const char *path,
                               int64_t *chunks, ragd_err *err);

/* ---- parallel sides (src/engine_cpu.c) ---------------------------------------------------- */

/* [retrieve] parallel_sides: whether a hybrid retrieval runs its keyword side in a thread of its
 * own, for setting 0 (never), 1 (always) or RAGD_CFG_BOOL_AUTO: only while the retrievals in
 * flight, this one included, are fewer than cpus and other processes left at least a core and a
 * half free (free_milli, from engine_cpu_free_milli; < 0: unknown, not held against it).
 * Returns: 1 or 0. */
int engine_sides_parallel(int setting, int searching, int cpus, int free_milli);

/* An empty pool that starts up to max helper threads (at least 1) as jobs come. */
void engine_sides_init(engine_sides *p, int max);
/* Stops the helper threads (after the queued jobs ran). No job may be submitted after it. */
void engine_sides_destroy(engine_sides *p);
/* Queues j for a helper thread, starting one when none is idle. Returns: 0, or -1 when no helper
 * thread exists nor can be started (the caller runs the job itself). */
int engine_sides_submit(engine_sides *p, engine_side_job *j);
/* Waits until j has been run or declined by a helper thread; take_back: a job still queued is
 * taken out of the queue instead (RAGD_SIDE_JOB_TAKEN; the caller runs it). Returns: the job's
 * final state (DONE, DECLINED or TAKEN). */
engine_side_job_state engine_sides_finish(engine_sides *p, engine_side_job *j, int take_back);

/* Takes and gives back the write side of e->rw, counting the write in e->writes (a keyword side
 * run by a helper thread under a read lock of its own compares it with the request's). */
void engine_write_lock(engine *e);
void engine_write_unlock(engine *e);

void engine_cpu_init(engine_cpu *c);
void engine_cpu_destroy(engine_cpu *c);

/* Returns: the cores other processes left free (idle, or used by this process) x 1000 over the
 * last sample interval (refreshed from /proc/stat and this process's CPU time when stale, without
 * waiting on another thread doing it), or -1 when unknown (no sample yet, no /proc/stat). */
int engine_cpu_free_milli(engine_cpu *c);

/* Parses the aggregate "cpu ..." line of /proc/stat into idle (idle + iowait) and total
 * jiffies. Returns: 0, or -1 when line is not one. */
int engine_cpu_stat_parse(const char *line, unsigned long long *idle, unsigned long long *total);

/* Returns: the cores x 1000 idle or used by this process between two samples of a machine with
 * cpus online CPUs (at most cpus x 1000), or -1 when the samples do not move forwards. */
int engine_cpu_free_between(const engine_cpu_sample *s0, const engine_cpu_sample *s1, int cpus);

void engine_fault_init(engine_fault *f);
void engine_fault_destroy(engine_fault *f);
/* Records (and logs) a failed write: what was being written, why it failed. */
void engine_fault_note(engine_fault *f, const char *what, const char *why);
/* Returns: 1 while a fault is active, with its reason copied to reason[0..size) and the unix time
 * it began in *since (either may be NULL). */
int engine_fault_get(engine_fault *f, char *reason, size_t size, int64_t *since);
/* Returns: 1 when a fault is active and a recovery probe is due; the caller runs it (the next one
 * is due a period later whatever the outcome). */
int engine_fault_probe_claim(engine_fault *f);
/* Ends the fault (a probe succeeded) and logs the recovery. */
void engine_fault_clear(engine_fault *f);
/* Writes bytes to a probe file in dir, fsyncs and removes it. Returns: RAGD_OK, or RAGD_ERR_IO
 * with the system's reason (ENOSPC: "No space left on device"). */
ragd_rc engine_fault_space_check(const char *dir, size_t bytes, ragd_err *err);
/* Test-only failure injection, for the full-disk test on machines where it cannot mount a small
 * tmpfs, and for a flush failing after a commit (tests/integration/test_faults.py): while the
 * file named by $RAGD_TEST_WRITE_FAILURE exists, the engine's writes to the data dir fail as on a
 * full disk: all of them when the file is empty or says "all", else those named in its first
 * line, comma-separated, among "commit", "delete", "flush" and "probe". Unset (always, outside
 * those tests) it costs one getenv.
 * Returns: 1 and err set ("what: No space left on device") when injected, else 0. */
int engine_fault_injected(const char *what, ragd_err *err);

/* The engine's side of write faults (src/engine_fault.c); callers hold write_mu. */
/* A write failed: recorded (writes refused, /health degraded), and the store asked to give back
 * the space it can (store_reclaim: the WAL truncated). */
void engine_write_failed(engine *e, const char *what, const char *why);
/* store_flush (sync + the backend's derived state, e.g. the index file) through the test-only
 * injection. Returns: as store_flush. */
ragd_rc engine_store_flush(engine *e, ragd_err *err);
/* Runs a due recovery probe (a space probe, a flush, the WAL truncated). Returns: 1 when writes
 * work (no fault, or the probe succeeded and ended it). */
int engine_writes_recover(engine *e);
/* store_sync through the test-only injection (its name there is "flush" too). */
ragd_rc engine_store_sync(engine *e, ragd_err *err);
/* Returns: RAGD_OK when writes may proceed, else RAGD_ERR_UNAVAILABLE with the fault's reason. */
ragd_rc engine_writes_allowed(engine *e, ragd_err *err);
/* The reranking stage of a retrieval (src/engine_rerank.c): scores a's results with r and keeps
 * the best k in the reranker's order; when the reranker fails or times out, keeps the first k
 * in the fused order and records why in a->rerank. No engine lock is held by the caller.
 * Returns: RAGD_OK, or RAGD_ERR_NOMEM. */
ragd_rc engine_rerank_apply(retrieve_reranker *r, const engine_query *q, engine_answer *a,
                            size_t k, ragd_err *err);

#endif
