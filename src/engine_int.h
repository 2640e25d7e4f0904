/* SPDX-License-Identifier: MIT */
/*
 * engine_int.h - engine internals shared between src/engine.c (which owns the engine's state and
 * its write path) and src/engine_docs.c (pushed documents); not part of the public interface.
 */
#ifndef RAGD_ENGINE_INT_H
#define RAGD_ENGINE_INT_H

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

/* The reranking stage of a retrieval (src/engine_rerank.c): scores a's results with r and keeps
 * the best k in the reranker's order; when the reranker fails or times out, keeps the first k
 * in the fused order and records why in a->rerank. No engine lock is held by the caller.
 * Returns: RAGD_OK, or RAGD_ERR_NOMEM. */
ragd_rc engine_rerank_apply(retrieve_reranker *r, const engine_query *q, engine_answer *a,
                            size_t k, ragd_err *err);

#endif
