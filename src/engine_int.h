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

#include "ragd/cache.h"
#include "ragd/embed.h"
#include "ragd/engine.h"
#include "ragd/ingest.h"
#include "ragd/store.h"

/* Consistency model. A write transaction of the store is one document (or one removal); the
 * engine holds the write side of `rw` across it and retrievals hold the read side across vector
 * search, keyword search and chunk fetch, so they see a document either wholly before or wholly
 * after its update, whatever the backend. */
struct engine {
    const ragd_cfg *cfg;
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
    int model_pending;          /* store has another model; only an ingest with reset may run */
    const char *ingest_collection; /* the running ingest's collection (under ingest_mu) */
    int64_t last_ingest_at;
    int last_ingest_ok;
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

/* The reranking stage of a retrieval (src/engine_rerank.c): scores a's results with r and keeps
 * the best k in the reranker's order; when the reranker fails or times out, keeps the first k
 * in the fused order and records why in a->rerank. No engine lock is held by the caller.
 * Returns: RAGD_OK, or RAGD_ERR_NOMEM. */
ragd_rc engine_rerank_apply(retrieve_reranker *r, const engine_query *q, engine_answer *a,
                            size_t k, ragd_err *err);

#endif
