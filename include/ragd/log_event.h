/* SPDX-License-Identifier: MIT */
/*
 * log_event.h - the retrieval/ingest event log: one JSON object per line (JSONL) in a file
 * (`[log] file`, default var/logs/rag.log), for audits and offline analysis. Two parts:
 *
 * The writer (src/log_event.c): a bounded queue drained by its own thread, so a request only
 * copies its line into memory and never waits on the disk. When the queue is full the line is
 * dropped and counted (ragd_log_dropped_lines_total). log_event_reopen() makes the thread reopen
 * the path before its next write: after logrotate renamed the file, SIGHUP starts a new one.
 *
 * The records (src/log_record.c): what a retrieval or an ingest writes, and the metrics each
 * feeds; the per-thread request id (X-Request-Id) that ties a log line to an HTTP exchange.
 */
#ifndef RAGD_LOG_EVENT_H
#define RAGD_LOG_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "ragd/engine.h"
#include "ragd/ragd.h"

/* ---- writer ------------------------------------------------------------------------------- */
typedef struct log_event log_event;

/* Opens path for appending (creating it and its parent directories) and starts the writer
 * thread; at most capacity lines wait in memory. Returns: *out new (free with log_event_close),
 * or RAGD_ERR_IO naming the path. */
ragd_rc log_event_open(const char *path, size_t capacity, log_event **out, ragd_err *err);

/* Queues one line (len bytes, no newline: one is added). Never blocks on I/O.
 * Returns: 0 when queued, -1 when dropped (queue full, closing, out of memory). */
int log_event_write(log_event *w, const char *line, size_t len);

/* Asks the writer to reopen its path before writing anything else (for logrotate). */
void log_event_reopen(log_event *w);

/* Waits until every line queued so far is written (and a requested reopen done). */
void log_event_flush(log_event *w);

/* Stops (1) or resumes (0) the writing while lines still queue: lets tests fill the queue. */
void log_event_pause(log_event *w, int paused);

/* Returns: lines dropped so far by this writer. */
uint64_t log_event_dropped(log_event *w);

/* Writes what is queued, stops the thread, closes the file, frees w. w may be NULL. */
void log_event_close(log_event *w);

/* The process's event log, used by the log_record_* functions; NULL (the default) writes
 * nothing. w is borrowed until it is replaced. */
void log_event_global_set(log_event *w);

/* Returns: the process's event log, or NULL; borrowed. */
log_event *log_event_global(void);

/* ---- request ids -------------------------------------------------------------------------- */
#define RAGD_REQUEST_ID_MAX 65 /* 64 characters and the NUL */

/* Returns: 1 when an incoming X-Request-Id can be used as is: 1..64 characters from
 * [A-Za-z0-9._:-]; 0 otherwise (a new one is generated instead). */
int log_record_request_id_valid(const char *id);

/* Writes a new random request id (16 lowercase hex characters) into out. */
void log_record_request_id_new(char out[RAGD_REQUEST_ID_MAX]);

/* Sets this thread's current request id (copied; NULL clears it). */
void log_record_request_id_set(const char *id);

/* Returns: this thread's current request id, "" when none; valid until the next set. */
const char *log_record_request_id(void);

/* ---- records ------------------------------------------------------------------------------ */
typedef struct log_retrieval {
    const char *query; /* borrowed; hashed, written raw only when log_queries */
    size_t query_len;
    const char *intent; /* borrowed; NULL when the request gave none */
    int k;
    int rag_enabled;
    size_t results;   /* results returned; 0 is a miss */
    int low_confidence; /* the answer was low-confidence: a miss whatever the results */
    double top_score; /* score of the first result (ignored when results is 0) */
    /* Query-embedding cache: 1 hit (memory or Redis), 0 miss, -1 not consulted (RAG off, keyword
     * mode, failure); cache_ms negative when not consulted. Left out of the line when -1. */
    int cache_hit;
    double cache_ms;
    double embed_ms, search_ms, fetch_ms, total_ms;
    ragd_rc rc;               /* RAGD_OK, or why the retrieval failed */
    const char *error_message; /* borrowed; NULL when rc is RAGD_OK */
    const char *collection;    /* borrowed; the collection searched; NULL: left out */
} log_retrieval;

/* Records one retrieval: hit or miss counter, latency histograms, the embedder's outcome (for
 * /health), and a JSONL line in the event log with this thread's request id. */
void log_record_retrieval(const log_retrieval *r, int log_queries);

/* Records one ingest of path: report when it finished (may have per-file errors), else err
 * (the ingest failed as a whole). Counts it, notes it for /health, writes a JSONL line. */
void log_record_ingest(const char *path, const engine_ingest_report *report, const ragd_err *err);

#endif
