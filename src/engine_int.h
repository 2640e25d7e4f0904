/* SPDX-License-Identifier: MIT */
/*
 * engine_int.h - engine internals shared between src/engine.c (which owns the engine's state and
 * its write path) and src/engine_docs.c (pushed documents); not part of the public interface.
 */
#ifndef RAGD_ENGINE_INT_H
#define RAGD_ENGINE_INT_H

#include <pthread.h>
#include <stdint.h>

#include "ragd/engine.h"
#include "ragd/ingest.h"
#include "ragd/store.h"

/* Stores one document given as extracted text under row->path: when the stored row has the
 * same checksum nothing happens (RAGD_PUSH_UNCHANGED); otherwise it is chunked, embedded (stored
 * embeddings re-used) and committed. Takes the engine's write turn. doc is stolen (zeroed) when
 * the document is (re)built. Returns: RAGD_OK, *outcome, *chunks. */
ragd_rc engine_doc_upsert(engine *e, const store_doc *row, ingest_doc *doc,
                          engine_push_outcome *outcome, int64_t *chunks, ragd_err *err);

/* Deletes the document stored under path. Returns: RAGD_OK or RAGD_ERR_NOT_FOUND. */
ragd_rc engine_doc_remove_path(engine *e, const char *path, int64_t *chunks, ragd_err *err);

/* ---- write faults (src/engine_fault.c) -------------------------------------------------------
 * A write to the data dir failed: retrievals go on from memory, writes are refused until a probe
 * succeeds. All functions are thread-safe. */
typedef struct engine_fault {
    pthread_mutex_t mu;
    int active;           /* a write failed and no probe has succeeded since */
    char reason[384];     /* "what: why" of the latest failure */
    int64_t since;        /* unix seconds of the first failure of this episode */
    double next_probe_ms; /* monotonic; no probe before */
    uint64_t failures;    /* failures noted since start */
} engine_fault;

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
 * line, comma-separated, among "index" (save), "commit", "delete", "flush" and "probe". Unset
 * (always, outside those tests) it costs one getenv.
 * Returns: 1 and err set ("what: No space left on device") when injected, else 0. */
int engine_fault_injected(const char *what, ragd_err *err);

#endif
